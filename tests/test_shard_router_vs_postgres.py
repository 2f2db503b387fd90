"""The Rust shard router against the real PostgreSQL of the test stack.

Each hash function is compared with PostgreSQL's own (``hashint4``, ``hashint8``,
``hashtext``, ``uuid_hash``) on thousands of seeded pseudo-random values plus the edge cases,
in ONE query per type (the values go in as one array and come back in order). The shard index
is computed on the PostgreSQL side in SQL with Citus' formulas (see ``SHARD_SQL``), for several
shard counts at once, and compared with ``ShardRouter(n).shard_for_*`` and the batch calls.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg
import pytest

from nexuscart import config
from nexuscart._core import ShardRouter, hashint4, hashint8, hashtext, uuid_hash

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SEED = 0x5EED_4  # fixed: a failure names values that reproduce
N_RANDOM = 5000
# 32 is what the tables use (citus.shard_count's default); the others cover 1 shard, a power
# of two, non-powers of two (a wider last shard) and Citus' maximum.
SHARD_COUNTS = [1, 2, 7, 32, 1000, 64000]

# PostgreSQL side of the shard index, per Citus (citusdata/citus):
#   create_shards.c, CreateShardsWithRoundRobinPolicy: hashTokenIncrement = HASH_TOKEN_COUNT
#     / shardCount with HASH_TOKEN_COUNT = 2^32 (integer division); shard i covers
#     [INT32_MIN + i * increment, INT32_MIN + (i + 1) * increment - 1], the last one up to
#     INT32_MAX.
#   shardinterval_utils.c, FindShardIntervalIndex (uniform hash layout): shardIndex =
#     (uint32) (hashedValue - INT32_MIN) / hashTokenIncrement, and an index equal to
#     shardCount (only possible when shardCount is not a power of two) becomes shardCount - 1.
# In SQL: h::bigint + 2^31 is the uint32, bigint division truncates like C's unsigned one
# (both operands are >= 0), least() is the clamp. `lo <= h <= hi` re-checks the result against
# the interval itself (what Citus' binary search, SearchCachedShardInterval, would find).
SHARD_SQL = """
SELECT t.h,
       ARRAY(SELECT least((t.h::bigint + 2147483648) / (4294967296 / c.n), c.n - 1)
             FROM unnest($2::bigint[]) WITH ORDINALITY AS c(n, k) ORDER BY c.k) AS idx,
       (SELECT bool_and(
                   t.h >= -2147483648 + s.i * (4294967296 / s.n)
               AND t.h <= CASE WHEN s.i = s.n - 1 THEN 2147483647
                               ELSE -2147483648 + (s.i + 1) * (4294967296 / s.n) - 1 END)
        FROM (SELECT c.n, least((t.h::bigint + 2147483648) / (4294967296 / c.n), c.n - 1) AS i
              FROM unnest($2::bigint[]) AS c(n)) AS s) AS in_interval
FROM (SELECT u.k, {fn}(u.v) AS h
      FROM unnest($1::{typ}[]) WITH ORDINALITY AS u(v, k)) AS t
ORDER BY t.k
"""


def _pow2_neighbours(bits: int) -> list[int]:
    out = []
    for k in range(bits - 1):
        for d in (-1, 0, 1):
            out += [2**k + d, -(2**k) + d]
    return out


INT4_EDGES = sorted(
    {0, 1, -1, 2, -2, 42, INT32_MIN, INT32_MAX, INT32_MIN + 1, INT32_MAX - 1}
    | {v for v in _pow2_neighbours(32) if INT32_MIN <= v <= INT32_MAX}
)
INT8_EDGES = sorted(
    set(INT4_EDGES)
    | {INT64_MIN, INT64_MAX, INT64_MIN + 1, INT64_MAX - 1, INT32_MIN - 1, INT32_MAX + 1}
    | {2**32, 2**32 - 1, 2**32 + 1, -(2**32), -(2**32) - 1, 0xDEADBEEF_CAFEBABE - 2**64}
    | {v for v in _pow2_neighbours(64) if INT64_MIN <= v <= INT64_MAX}
)
TEXT_EDGES = [
    "",
    "a",
    " ",
    "\x01",
    "\x7f",
    "é",
    "ß",
    "日本語",
    "🛒",
    "👨\u200d👩\u200d👧\u200d👦",  # ZWJ sequence, 25 bytes
    "e\u0301",  # combining accent: not normalised, hashed as its bytes
    "\ufeff",
    "\uffff",
    "\U0010ffff",
    "O'Reilly",
    "back\\slash",
    'quote"d',
    "tab\tnew\nline",
    "{user}:42",
    "abcdefghijk",  # 11, 12, 13 bytes: around lookup3's 12-byte block
    "abcdefghijkl",
    "abcdefghijklm",
    "x" * 1000,
    "ü" * 500,
]
UUID_EDGES = [
    uuid.UUID(int=0),
    uuid.UUID(int=2**128 - 1),
    uuid.UUID(int=1),
    uuid.UUID(int=1 << 127),
    uuid.UUID("00112233-4455-6677-8899-aabbccddeeff"),
    uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
]

# Code point ranges strings are drawn from: ASCII (no NUL: PostgreSQL text cannot hold it),
# Latin-1, Greek/Cyrillic, combining marks, CJK, the BMP's top, emoji, and other planes up to
# U+10FFFF. Surrogates are excluded: they are not encodable as UTF-8.
_RANGES = [
    (0x01, 0x7F),
    (0x80, 0xFF),
    (0x370, 0x4FF),
    (0x300, 0x36F),
    (0x4E00, 0x9FFF),
    (0xE000, 0xFFFF),
    (0x1F300, 0x1FAFF),
    (0x10000, 0x10FFFF),
]


def _random_ints(rng: random.Random, lo: int, hi: int, n: int) -> list[int]:
    """Uniform over the whole range, plus small magnitudes (where real ids live)."""
    bits = hi.bit_length()
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            out.append(rng.randint(lo, hi))
        elif r < 0.8:
            out.append(rng.randint(-100_000, 10_000_000))
        else:  # random magnitude, random sign
            v = rng.getrandbits(rng.randint(1, bits))
            out.append(max(lo, min(hi, -v if rng.random() < 0.5 else v)))
    return out


def _random_text(rng: random.Random) -> str:
    length = rng.choice([rng.randint(0, 13), rng.randint(0, 40), rng.randint(0, 200)])
    lo, hi = rng.choice(_RANGES) if rng.random() < 0.7 else (0, 0)
    chars = []
    for _ in range(length):
        a, b = (lo, hi) if hi else rng.choice(_RANGES)  # one script, or mixed
        chars.append(chr(rng.randint(a, b)))
    return "".join(chars)


@pytest.fixture(scope="module")
def rng() -> random.Random:
    return random.Random(SEED)


@pytest.fixture
async def pg(settings: config.Settings) -> AsyncIterator[Any]:
    conn = await asyncpg.connect(settings.postgres.dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def _postgres_side(
    conn: Any, fn: str, typ: str, values: Sequence[object]
) -> tuple[list[int], list[list[int]]]:
    """PostgreSQL's hash of every value and its Citus shard index for each of SHARD_COUNTS."""
    rows = await conn.fetch(SHARD_SQL.format(fn=fn, typ=typ), list(values), SHARD_COUNTS)
    assert len(rows) == len(values)
    assert all(r["in_interval"] for r in rows)
    return [r["h"] for r in rows], [list(r["idx"]) for r in rows]


def _mismatches(values: Sequence[object], ours: Sequence[int], theirs: Sequence[int]) -> list[str]:
    return [
        f"{v!r}: ours {a}, postgres {b}"
        for v, a, b in zip(values, ours, theirs, strict=True)
        if a != b
    ][:10]


def _check_router(
    values: Sequence[object],
    pg_shards: list[list[int]],
    single: Callable[[ShardRouter, Any], int],
    batch: Callable[[ShardRouter, Any], list[int]] | None = None,
) -> None:
    for k, n in enumerate(SHARD_COUNTS):
        router = ShardRouter(n)
        expected = [row[k] for row in pg_shards]
        ours = [single(router, v) for v in values]
        assert not _mismatches(values, ours, expected), f"shard_count={n}"
        if batch is not None:
            assert batch(router, list(values)) == expected, f"batch, shard_count={n}"


async def test_postgres_is_a_utf8_database(pg: Any) -> None:
    # hashtext hashes the stored bytes: the router assumes UTF-8 (docs/shard-router.md)
    assert await pg.fetchval("SHOW server_encoding") == "UTF8"


async def test_hashint4_and_shards_match_postgres(pg: Any, rng: random.Random) -> None:
    values = INT4_EDGES + _random_ints(rng, INT32_MIN, INT32_MAX, N_RANDOM)
    pg_hash, pg_shards = await _postgres_side(pg, "hashint4", "int4", values)
    assert not _mismatches(values, [hashint4(v) for v in values], pg_hash)
    _check_router(values, pg_shards, lambda r, v: r.shard_for_int4(v))


async def test_hashint8_and_shards_match_postgres(pg: Any, rng: random.Random) -> None:
    values = INT8_EDGES + _random_ints(rng, INT64_MIN, INT64_MAX, N_RANDOM)
    pg_hash, pg_shards = await _postgres_side(pg, "hashint8", "int8", values)
    assert not _mismatches(values, [hashint8(v) for v in values], pg_hash)
    _check_router(
        values, pg_shards, lambda r, v: r.shard_for_int8(v), lambda r, vs: r.shards_for_int8(vs)
    )
    # shard_for_hash on PostgreSQL's own hash gives the same index
    router = ShardRouter(32)
    k32 = SHARD_COUNTS.index(32)
    assert [router.shard_for_hash(h) for h in pg_hash] == [row[k32] for row in pg_shards]


async def test_hashtext_and_shards_match_postgres(pg: Any, rng: random.Random) -> None:
    values = TEXT_EDGES + [_random_text(rng) for _ in range(N_RANDOM)]
    pg_hash, pg_shards = await _postgres_side(pg, "hashtext", "text", values)
    assert not _mismatches(values, [hashtext(v) for v in values], pg_hash)
    _check_router(
        values, pg_shards, lambda r, v: r.shard_for_text(v), lambda r, vs: r.shards_for_text(vs)
    )


async def test_uuid_hash_and_shards_match_postgres(pg: Any, rng: random.Random) -> None:
    values = UUID_EDGES + [uuid.UUID(int=rng.getrandbits(128)) for _ in range(N_RANDOM // 2)]
    values += [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(N_RANDOM // 2)]
    pg_hash, pg_shards = await _postgres_side(pg, "uuid_hash", "uuid", values)
    assert not _mismatches(values, [uuid_hash(v.bytes) for v in values], pg_hash)
    _check_router(values, pg_shards, lambda r, v: r.shard_for_uuid(v.bytes))


async def test_intervals_match_citus_formula_in_sql(pg: Any) -> None:
    rows = await pg.fetch(
        """
        SELECT c.n, array_agg(-2147483648 + i * (4294967296 / c.n) ORDER BY i) AS lo,
               array_agg(CASE WHEN i = c.n - 1 THEN 2147483647
                              ELSE -2147483648 + (i + 1) * (4294967296 / c.n) - 1 END
                         ORDER BY i) AS hi
        FROM unnest($1::bigint[]) AS c(n), generate_series(0, c.n - 1) AS i
        GROUP BY c.n
        """,
        SHARD_COUNTS,
    )
    assert len(rows) == len(SHARD_COUNTS)
    for r in rows:
        assert ShardRouter(r["n"]).intervals() == list(zip(r["lo"], r["hi"], strict=True))
