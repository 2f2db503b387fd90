"""Access-token revocations in Redis: "refuse this user's tokens issued before t".

Keys (one hash tag, so a cluster keeps them in one slot and the write is one transaction):

- ``{revocations}:not_before``: sorted set, member = user id, score = the time (seconds
  since the epoch, with milliseconds) before which the user's tokens are refused. A score
  only moves forward (``ZADD GT``). Entries older than ``KEEP_S`` are dropped on each write:
  the edge refuses tokens whose ``exp - iat`` exceeds JWT_MAX_TTL_S (at most ``KEEP_S``,
  see config), so no unexpired token can be older than that.
- ``{revocations}:feed``: stream of the writes (``user``, ``nb``), capped near
  ``FEED_MAXLEN`` entries, which every edge worker follows.

``revoke_before`` is what the account code calls (logout everywhere, password change, role
change, disable). ``RevocationFeed`` runs in each edge worker (``Deps.background``): it
loads the sorted set at start, then follows the stream with a blocking XREAD and applies
each entry to the worker's ``TokenVerifier`` (``revoke_before``): the request path never
calls Redis. A revocation reaches every worker one stream read after it is written
(milliseconds while Redis answers). While a worker cannot read Redis it keeps what it
knows and retries every ``retry_s``, reloading the whole set on reconnection and every
``resync_s`` (so trimmed or missed stream entries cannot be lost for long); at worst a
revoked token lives to its ``exp`` (ACCESS_TOKEN_TTL_S, 900 s by default).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final, cast

import redis.asyncio as aioredis

from nexuscart import _core

__all__ = ["FEED_KEY", "KEEP_S", "NOT_BEFORE_KEY", "RevocationFeed", "revoke_before"]

NOT_BEFORE_KEY: Final = "{revocations}:not_before"
FEED_KEY: Final = "{revocations}:feed"
KEEP_S: Final = 7 * 86_400  # = the largest JWT_MAX_TTL_S config accepts
FEED_MAXLEN: Final = 100_000

log = logging.getLogger("nexuscart.revocations")


def _score(epoch_s: float) -> str:
    # milliseconds are what iat carries; repr keeps the float exact for Redis' double
    return repr(float(epoch_s))


async def revoke_before(redis: aioredis.Redis, user_id: int, epoch_s: float) -> None:
    """Refuse ``user_id``'s access tokens issued (``iat``) before ``epoch_s``, on every edge
    worker within the feed's delay. Durable once it returns; idempotent; a later call with
    an earlier time changes nothing."""
    if user_id < 1:
        raise ValueError("user_id must be >= 1")
    score = _score(epoch_s)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zadd(NOT_BEFORE_KEY, {str(user_id): score}, gt=True)
        pipe.zremrangebyscore(NOT_BEFORE_KEY, "-inf", f"({time.time() - KEEP_S}")
        pipe.xadd(
            FEED_KEY,
            {"user": str(user_id), "nb": score},
            maxlen=FEED_MAXLEN,
            approximate=True,
        )
        await pipe.execute()


class RevocationFeed:
    """Keeps a verifier's revocations in step with Redis (see the module doc)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        verifier: _core.TokenVerifier,
        *,
        block_ms: int = 1000,
        retry_s: float = 0.5,
        resync_s: float = 60.0,
        batch: int = 1000,
    ):
        self.redis = redis
        self.verifier = verifier
        self.block_ms = block_ms
        self.retry_s = retry_s
        self.resync_s = resync_s
        self.batch = batch
        self.loaded = asyncio.Event()  # set once the whole set was loaded (tests, readiness)
        self.applied = 0  # entries applied, loads included

    async def run(self) -> None:
        failing = False
        while True:
            try:
                last_id = await self._load()
                if failing:
                    log.warning("revocation feed: Redis answers again; revocations reloaded")
                    failing = False
                reloaded = time.monotonic()
                while time.monotonic() - reloaded < self.resync_s:
                    last_id = await self._follow(last_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or slow: keep what we know, retry
                if not failing:  # once per outage, not every retry
                    log.warning("revocation feed: %s: %s; retrying", type(exc).__name__, exc)
                    failing = True
                await asyncio.sleep(self.retry_s)

    async def _load(self) -> bytes | str:
        # the stream position first: a write between the two reads is then seen twice
        # (harmless: times only move forward), never missed
        newest = cast("list[Any] | None", await self.redis.xrevrange(FEED_KEY, count=1))
        last_id: bytes | str = newest[0][0] if newest else "0-0"
        entries = cast(
            "list[tuple[bytes, float]]",
            await self.redis.zrangebyscore(
                NOT_BEFORE_KEY, time.time() - KEEP_S, "+inf", withscores=True
            ),
        )
        for member, score in entries:
            self._apply(int(member), float(score))
        self.loaded.set()
        return last_id

    async def _follow(self, last_id: bytes | str) -> bytes | str:
        reply = cast(
            "list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None",
            await self.redis.xread({FEED_KEY: last_id}, count=self.batch, block=self.block_ms),
        )
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                last_id = entry_id
                try:
                    user = int(fields[b"user"])
                    nb = float(fields[b"nb"])
                except (KeyError, ValueError):
                    log.warning("revocation feed: bad entry %r", entry_id)
                    continue
                self._apply(user, nb)
        return last_id

    def _apply(self, user_id: int, epoch_s: float) -> None:
        try:
            self.verifier.revoke_before(user_id, epoch_s)
            self.applied += 1
        except _core.NexusCartError as exc:  # an id out of range, or the map full
            log.error("revocation of user %s not applied: %s", user_id, exc)
