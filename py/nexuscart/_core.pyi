"""Type stubs for ``nexuscart._core``, the compiled Rust core (crate ``core_rs``).

Checked against the built module with ``python -m mypy.stubtest nexuscart._core``.
"""

from collections.abc import Sequence
from typing import Final, final

__all__ = [
    "ADMIT",
    "BUSY",
    "MAX_SHARD_COUNT",
    "RATE_LIMITED",
    "REDIS_SLOT_COUNT",
    "SOLD_OUT",
    "AuthError",
    "Gate",
    "InvalidArgument",
    "NexusCartError",
    "OutOfRange",
    "ShardRouter",
    "TokenVerifier",
    "hashint4",
    "hashint8",
    "hashtext",
    "redis_slot",
    "redis_slots",
    "uuid_hash",
]

# -- errors ---------------------------------------------------------------------------

class NexusCartError(Exception):
    """Base class of every error raised by NexusCart's core."""

class InvalidArgument(NexusCartError, ValueError):
    """An argument has an unusable value (also a ValueError)."""

class OutOfRange(InvalidArgument):
    """A number is outside the range its parameter or target type accepts."""

class AuthError(NexusCartError):
    """An access token was rejected; the message is the reason (e.g. 'token expired')."""

# -- admission gate -------------------------------------------------------------------

ADMIT: Final = 0
SOLD_OUT: Final = 1
RATE_LIMITED: Final = 2
BUSY: Final = 3

@final
class Gate:
    """Flash-sale admission: sold-out flags, per-user and per-IP GCRA token buckets,
    and a per-sale cap on requests in flight to Redis. Thread-safe.

    Rates are tokens per second, bursts are bucket sizes in tokens. At most
    ``max_keys`` users and ``max_keys`` IPs are tracked (default 1,048,576 each).
    Ids are unsigned 64-bit ints; ``now_ns`` is a monotonic clock in nanoseconds
    (default: the process's monotonic clock).
    """

    def __new__(
        cls,
        user_rate: float,
        user_burst: int,
        ip_rate: float,
        ip_burst: int,
        max_in_flight: int,
        *,
        max_keys: int | None = None,
    ) -> Gate: ...
    @property
    def max_in_flight(self) -> int: ...
    def admit(
        self, sale_id: int, user_id: int, ip: str, now_ns: int | None = None
    ) -> tuple[int, int]:
        """``check`` then ``enter`` at once: ``(code, retry_after_ms)``."""
    def check(
        self, sale_id: int, user_id: int, ip: str, now_ns: int | None = None
    ) -> tuple[int, int]:
        """Step 1, before the body is read: ``(code, retry_after_ms)`` from the user's and
        the IP's buckets (charged when both conform, whatever follows), then the sold-out
        flag. Takes no in-flight slot: ``ADMIT`` means go on to ``enter``."""
    def enter(self, sale_id: int) -> int:
        """Step 2, just before the Redis call: ``ADMIT`` (then ``release``), ``BUSY`` or
        ``SOLD_OUT``."""
    def release(self, sale_id: int) -> bool:
        """Give back an admitted request's in-flight slot; False if none was held."""
    def mark_sold_out(self, sale_id: int, epoch: int | None = None) -> bool:
        """Flag the sale sold out; with ``epoch``, only if it was not reopened since."""
    def reopen(self, sale_id: int) -> int:
        """Clear the sold-out flag and start (and return) a new epoch."""
    def epoch(self, sale_id: int) -> int: ...
    def is_sold_out(self, sale_id: int) -> bool: ...
    def in_flight(self, sale_id: int) -> int: ...
    def sold_out_sales(self) -> list[int]: ...
    def tracked_keys(self) -> tuple[int, int]:
        """Bucket entries tracked: ``(users, ips)``."""
    def sweep(self, now_ns: int | None = None) -> int:
        """Drop bucket entries that are full again; returns how many."""

# -- shard routing --------------------------------------------------------------------

MAX_SHARD_COUNT: Final = 64000
REDIS_SLOT_COUNT: Final = 16384

@final
class ShardRouter:
    """Citus-compatible routing for a hash-distributed table with ``shard_count``
    shards: returns the shard's index in ``pg_dist_shard`` ordered by shardminvalue::int."""

    def __new__(cls, shard_count: int) -> ShardRouter: ...
    @property
    def shard_count(self) -> int: ...
    def intervals(self) -> list[tuple[int, int]]:
        """``(shardminvalue, shardmaxvalue)`` of every shard, in index order."""
    def shard_for_hash(self, h: int) -> int: ...
    def shard_for_int8(self, v: int) -> int: ...
    def shard_for_int4(self, v: int) -> int: ...
    def shard_for_text(self, s: str) -> int: ...
    def shard_for_uuid(self, b: bytes) -> int: ...
    def shards_for_int8(self, values: Sequence[int]) -> list[int]: ...
    def shards_for_text(self, values: Sequence[str]) -> list[int]: ...

def hashint4(v: int) -> int:
    """PostgreSQL ``hashint4``."""

def hashint8(v: int) -> int:
    """PostgreSQL ``hashint8``."""

def hashtext(s: str) -> int:
    """PostgreSQL ``hashtext`` (UTF-8, deterministic collation)."""

def uuid_hash(b: bytes) -> int:
    """PostgreSQL ``uuid_hash`` of the 16 uuid bytes."""

def redis_slot(key: str | bytes) -> int:
    """Redis Cluster hash slot (``CLUSTER KEYSLOT``); str is UTF-8 encoded."""

def redis_slots(keys: Sequence[bytes | str]) -> list[int]: ...

# -- buyer tokens ---------------------------------------------------------------------

@final
class TokenVerifier:
    """Verifies HS256 access tokens and caches the verified ones.

    Only ``alg`` HS256 is accepted; the signature is compared in constant time; ``exp``
    is required and at most ``max_ttl_s`` seconds ahead, ``nbf`` is checked when present,
    ``iss`` must equal ``issuer`` unless that is None, ``sub`` must be 1 to 18 ASCII
    digits, not zero; ``iat`` is required, at most 5 s ahead, and ``exp - iat`` at most
    ``max_ttl_s``; ``roles`` is absent or an array of strings (customer = 1, seller = 2,
    admin = 4; unknown names grant nothing). At most ``cache_size`` verified tokens are
    cached (the cache is cleared when full); a cached token is still rejected once
    expired or revoked. ``revoke_before`` refuses a user's tokens issued before a time;
    at most ``max_revocations`` users are kept (entries older than ``max_ttl_s`` are
    dropped when full). Thread-safe.
    """

    def __new__(
        cls,
        secret: str,
        issuer: str | None,
        cache_size: int = 65536,
        *,
        max_ttl_s: float = 86400.0,
        max_revocations: int = 1000000,
    ) -> TokenVerifier: ...
    @property
    def issuer(self) -> str | None: ...
    @property
    def max_ttl_s(self) -> float: ...
    @property
    def cache_size(self) -> int: ...
    @property
    def max_revocations(self) -> int: ...
    def user_id(self, authorization: str | None, now: float | None = None) -> int:
        """The user id of a valid ``Bearer`` token in an ``Authorization`` header value,
        at ``now`` (seconds since the epoch, default the current time); otherwise
        ``AuthError`` whose message is the reason."""
    def principal(self, authorization: str | None, now: float | None = None) -> tuple[int, int]:
        """``(user id, role bits)`` of a valid ``Bearer`` token (same checks as
        ``user_id``); otherwise ``AuthError``."""
    def revoke_before(self, user_id: int, epoch_s: float, now: float | None = None) -> None:
        """Refuse every token of ``user_id`` whose ``iat`` is before ``epoch_s``, cached or
        not ("token revoked"); a user's time only moves forward. ``InvalidArgument`` when
        ``epoch_s`` is not finite or the map is full of revocations that still matter."""
    def clear_revocations(self) -> None:
        """Forget every revocation."""
    def revocations_len(self) -> int:
        """Number of users with a revocation time."""
    def cache_len(self) -> int:
        """Number of verified tokens cached now."""
    def clear_cache(self) -> None:
        """Forget every cached token."""
