"""Refresh-token families (sessions) and each user's record in Redis, via lua/rt_*.lua.

Owner of these keys (every key of one user shares the hash tag ``{u:<user id>}``, so each
script touches one Redis Cluster slot):

- ``{u:<id>}:rt:<family>``: hash {cur, prev, at, sealed}: the SHA-256 of the family's
  current and previous refresh token, when it was rotated, and the current token sealed
  for the previous token's holder (a retry within the grace period gets it back); expires
  after REFRESH_TOKEN_TTL_S unused.
- ``{u:<id>}:rts``: set of the user's family ids.
- ``{u:<id>}:acct``: hash {roles, disabled}: what a refresh needs of the user, written by
  the accounts use cases whenever PostgreSQL changes, so a refresh reads no PostgreSQL.

Tokens are 256-bit random secrets: a plain SHA-256 of one is as hard to invert as the
token is to guess, so no salt or stretching is needed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

import redis.asyncio as aioredis

from nexuscart.adapters.redis_conn import Script
from nexuscart.adapters.redis_pipe import RedisPipe, ReplyError
from nexuscart.domain.accounts import RefreshToken

ISSUE: Final = Script("rt_issue")
ROTATE: Final = Script("rt_rotate")
LOGOUT: Final = Script("rt_logout")
REVOKE_ALL: Final = Script("rt_revoke_all")


def _tag(user_id: int) -> str:
    return f"{{u:{user_id}}}"


def family_key(user_id: int, family: str) -> bytes:
    return f"{_tag(user_id)}:rt:{family}".encode()


def families_key(user_id: int) -> bytes:
    return f"{_tag(user_id)}:rts".encode()


def record_key(user_id: int) -> bytes:
    return f"{_tag(user_id)}:acct".encode()


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _keystream(raw: str, n: int) -> bytes:
    return hashlib.shake_256(b"nexuscart-refresh-seal\x00" + raw.encode()).digest(n)


def seal(successor: str, presented: str) -> bytes:
    """``successor`` readable only with ``presented``: XOR with a SHAKE-256 stream keyed by
    the presented token, which is used once (a token is rotated at most once) and is never
    stored (only its SHA-256, a different function of it)."""
    return _xor(successor.encode(), presented)


def unseal(sealed: bytes, presented: str) -> str:
    return _xor(sealed, presented).decode()


def _xor(data: bytes, presented: str) -> bytes:
    n = len(data)  # as integers: a byte-by-byte loop costs ~20 us a refresh
    key = int.from_bytes(_keystream(presented, n), "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")


class Rotation(NamedTuple):
    """rt_rotate's answer: ``outcome`` ok | replay | reused | invalid | disabled | nouser;
    ``roles`` for ok and replay; ``token`` the successor for replay."""

    outcome: str
    roles: tuple[str, ...] = ()
    token: str | None = None


def _roles(raw: bytes) -> tuple[str, ...]:
    return tuple(r for r in raw.decode().split(",") if r)


class SessionStore:
    """``pipe``: the lean pipelined connection refreshes rotate on (redis-py's client costs
    several times more CPU per call); without it, the pooled client."""

    def __init__(self, client: aioredis.Redis, pipe: RedisPipe | None = None):
        self.client = client
        self.pipe = pipe
        self._issue = ISSUE.for_client(client)
        self._rotate = ROTATE.for_client(client)
        self._logout = LOGOUT.for_client(client)
        self._revoke_all = REVOKE_ALL.for_client(client)

    async def put_record(self, user_id: int, roles: Sequence[str], disabled: bool) -> None:
        await self.client.hset(
            record_key(user_id),
            mapping={"roles": ",".join(roles), "disabled": "1" if disabled else "0"},
        )

    async def issue(
        self, token: RefreshToken, ttl_s: int, roles: Sequence[str], disabled: bool
    ) -> None:
        uid = token.user_id
        await self._issue(
            keys=[family_key(uid, token.family), families_key(uid), record_key(uid)],
            args=[
                token_hash(token.raw),
                ttl_s * 1000,
                token.family,
                ",".join(roles),
                "1" if disabled else "0",
            ],
        )

    async def rotate(
        self, presented: RefreshToken, successor: RefreshToken, grace_s: int, ttl_s: int
    ) -> Rotation:
        uid = presented.user_id
        keys = [family_key(uid, presented.family), families_key(uid), record_key(uid)]
        args: list[Any] = [
            token_hash(presented.raw),
            token_hash(successor.raw),
            seal(successor.raw, presented.raw),
            grace_s * 1000,
            ttl_s * 1000,
            presented.family,
        ]
        reply: Any
        if self.pipe is None:
            reply = await self._rotate(keys=keys, args=args)
        else:
            reply = await self._rotate_on_pipe(self.pipe, keys, args)
        outcome = reply[0].decode()
        if outcome == "ok":
            return Rotation(outcome, _roles(reply[1]), successor.raw)
        if outcome == "replay":
            return Rotation(outcome, _roles(reply[1]), unseal(reply[2], presented.raw))
        return Rotation(outcome)

    @staticmethod
    async def _rotate_on_pipe(pipe: RedisPipe, keys: list[bytes], args: list[Any]) -> Any:
        call = ("EVALSHA", ROTATE.sha, len(keys), *keys, *args)
        (reply,) = await pipe.execute([call])
        if isinstance(reply, ReplyError) and str(reply).startswith("NOSCRIPT"):
            # Redis lost its script cache (a restart): load it; the refused call did not run
            await pipe.execute([("SCRIPT", "LOAD", ROTATE.source)])
            (reply,) = await pipe.execute([call])
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def logout(self, token: RefreshToken) -> str:
        """End the token's session: 'valid' (it was the current or previous token),
        'reused' (an older one: the session ends all the same) or 'invalid'."""
        uid = token.user_id
        reply: Any = await self._logout(
            keys=[family_key(uid, token.family), families_key(uid)],
            args=[token_hash(token.raw), token.family],
        )
        return str(reply.decode())

    async def revoke_all(self, user_id: int, keep: str = "") -> int:
        """End every session of the user but ``keep``; returns how many ended."""
        n: Any = await self._revoke_all(
            keys=[families_key(user_id)], args=[f"{_tag(user_id)}:rt:", keep]
        )
        return int(n)

    async def families(self, user_id: int) -> set[str]:
        members: Any = await self.client.smembers(families_key(user_id))
        return {m.decode() for m in members}


REPLAY_TTL_S: Final = 86_400


class RegistrationReplays:
    """The answer to a registration, kept 24 h under ``acct:reg:<sha256 of the normalised
    email>:<sha256 of the Idempotency-Key>``: a retried registration (same email, same key)
    gets the same answer, whether the first created the account or found it taken. Scoped
    by email, so a key reused for another email is simply another registration."""

    def __init__(self, client: aioredis.Redis):
        self.client = client

    @staticmethod
    def key(email: str, idem_key: str) -> bytes:
        e = hashlib.sha256(email.encode()).hexdigest()
        k = hashlib.sha256(idem_key.encode()).hexdigest()
        return f"acct:reg:{e}:{k}".encode()

    async def get(self, email: str, idem_key: str) -> bytes | None:
        raw: Any = await self.client.get(self.key(email, idem_key))
        return None if raw is None else bytes(raw)

    async def put(self, email: str, idem_key: str, answer: bytes) -> None:
        # NX: parallel retries under one key keep the first answer
        await self.client.set(self.key(email, idem_key), answer, ex=REPLAY_TTL_S, nx=True)
