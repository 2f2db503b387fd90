"""Shard routing in the Rust core (``nexuscart._core``): pure logic, no servers.

Bit-exactness is checked against vectors recorded from PostgreSQL 15 and Redis 7
(``core_rs/tests/data/``), and against small reference implementations written here
from the Citus and Redis sources.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

# isort: split
from nexuscart import _core
from nexuscart._core import (
    MAX_SHARD_COUNT,
    REDIS_SLOT_COUNT,
    InvalidArgument,
    NexusCartError,
    OutOfRange,
    ShardRouter,
    hashint4,
    hashint8,
    hashtext,
    redis_slot,
    redis_slots,
    uuid_hash,
)

DATA = Path(__file__).resolve().parent.parent / "core_rs" / "tests" / "data"
INT4 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
INT8 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def citus_shard_index(hashed: int, shard_count: int) -> int:
    """FindShardIntervalIndex, uniform fast path (citus shardinterval_utils.c)."""
    increment = 2**32 // shard_count
    return min((hashed + 2**31) // increment, shard_count - 1)


def citus_interval(index: int, shard_count: int) -> tuple[int, int]:
    """Shard ``index``'s hash range, as CreateShardsWithRoundRobinPolicy (citus
    create_shards.c) computes it."""
    increment = 2**32 // shard_count
    lo = -(2**31) + index * increment
    hi = 2**31 - 1 if index == shard_count - 1 else lo + increment - 1
    return lo, hi


def citus_intervals(shard_count: int) -> list[tuple[int, int]]:
    return [citus_interval(i, shard_count) for i in range(shard_count)]


def crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def reference_slot(key: bytes) -> int:
    """keyHashSlot from Redis' cluster.c."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc16_xmodem(key) % 16384


# -- PostgreSQL hash functions --------------------------------------------------------


def test_known_postgres_values() -> None:
    assert hashint4(0) == -272711505
    assert hashint4(1) == -1905060026
    assert hashint4(-1) == 385747274
    assert hashint8(0) == hashint4(0)
    assert hashtext("") == -1477818771


def test_recorded_postgres_vectors() -> None:
    counts = {"int4": 0, "int8": 0, "text": 0, "uuid": 0}
    for line in (DATA / "pg15_hash_vectors.tsv").read_text().splitlines():
        kind, given_input, expected = line.split("\t")
        if kind == "int4":
            got = hashint4(int(given_input))
        elif kind == "int8":
            got = hashint8(int(given_input))
        elif kind == "text":
            got = hashtext(bytes.fromhex(given_input).decode())
        else:
            got = uuid_hash(bytes.fromhex(given_input))
        assert got == int(expected), (kind, given_input)
        counts[kind] += 1
    assert min(counts.values()) > 100


@given(INT4)
def test_hashint8_equals_hashint4_on_int4_values(v: int) -> None:
    # PostgreSQL relies on this for cross-type hash joins.
    assert hashint8(v) == hashint4(v)


@given(INT8)
def test_hashes_are_int4(v: int) -> None:
    assert -(2**31) <= hashint8(v) < 2**31


def test_uuid_hash_takes_uuid_bytes() -> None:
    u = uuid.UUID("c4ca4238-a0b9-2382-0dcc-509a6f75849b")  # md5('1')::uuid
    expected = {
        line.split("\t")[1]: int(line.split("\t")[2])
        for line in (DATA / "pg15_hash_vectors.tsv").read_text().splitlines()
        if line.startswith("uuid\t")
    }
    assert uuid_hash(u.bytes) == expected[u.hex]


# -- Citus shard intervals and routing ------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 32, 100, 4096, MAX_SHARD_COUNT])
def test_intervals_match_citus(n: int) -> None:
    router = ShardRouter(n)
    assert router.shard_count == n
    intervals = router.intervals()
    assert intervals == citus_intervals(n)
    assert intervals[0][0] == -(2**31)
    assert intervals[-1][1] == 2**31 - 1
    for (_, hi), (lo, _) in itertools.pairwise(intervals):
        assert hi + 1 == lo


def test_32_shards_first_intervals() -> None:
    assert ShardRouter(32).intervals()[:2] == [
        (-2147483648, -2013265921),
        (-2013265920, -1879048193),
    ]


@given(st.integers(min_value=1, max_value=MAX_SHARD_COUNT), INT4)
def test_shard_for_hash_matches_citus_and_interval(n: int, h: int) -> None:
    router = ShardRouter(n)
    index = router.shard_for_hash(h)
    assert index == citus_shard_index(h, n)
    lo, hi = citus_interval(index, n)
    assert lo <= h <= hi


@given(
    st.integers(min_value=1, max_value=64),
    INT8,
    INT4,
    st.text(),
    st.binary(min_size=16, max_size=16),
)
def test_routing_is_hash_then_lookup(n: int, v8: int, v4: int, s: str, u: bytes) -> None:
    router = ShardRouter(n)
    assert router.shard_for_int8(v8) == citus_shard_index(hashint8(v8), n)
    assert router.shard_for_int4(v4) == citus_shard_index(hashint4(v4), n)
    assert router.shard_for_uuid(u) == citus_shard_index(uuid_hash(u), n)
    try:
        s.encode()
    except UnicodeEncodeError:
        return
    assert router.shard_for_text(s) == citus_shard_index(hashtext(s), n)


@given(st.lists(INT8, max_size=600), st.integers(min_value=1, max_value=64))
def test_batch_int8_equals_singles(values: list[int], n: int) -> None:
    router = ShardRouter(n)
    assert router.shards_for_int8(values) == [router.shard_for_int8(v) for v in values]
    assert router.shards_for_int8(tuple(values)) == router.shards_for_int8(values)


@given(st.lists(st.text(st.characters(exclude_categories=["Cs"])), max_size=600))
def test_batch_text_equals_singles(values: list[str]) -> None:
    router = ShardRouter(16)
    assert router.shards_for_text(values) == [router.shard_for_text(s) for s in values]


def test_large_batches_release_the_gil_and_stay_exact() -> None:
    router = ShardRouter(32)
    ints = list(range(-5000, 5000))
    assert router.shards_for_int8(ints) == [router.shard_for_int8(v) for v in ints]
    texts = [f"user:{i}" for i in range(5000)]
    assert router.shards_for_text(texts) == [router.shard_for_text(s) for s in texts]
    assert router.shards_for_int8(range(3)) == [router.shard_for_int8(v) for v in range(3)]


def test_repr() -> None:
    assert repr(ShardRouter(8)) == "ShardRouter(8)"


# -- Redis Cluster slots --------------------------------------------------------------


def test_recorded_redis_vectors() -> None:
    lines = (DATA / "redis7_keyslot_vectors.tsv").read_text().splitlines()
    keys = [bytes.fromhex(line.split("\t")[0]) for line in lines]
    expected = [int(line.split("\t")[1]) for line in lines]
    assert [redis_slot(k) for k in keys] == expected
    assert redis_slots(keys) == expected
    assert len(keys) > 300


def test_known_slots_and_hash_tags() -> None:
    assert REDIS_SLOT_COUNT == 16384
    assert redis_slot("foo") == redis_slot(b"foo") == 12182
    assert redis_slot("{user1000}.following") == redis_slot("{user1000}.followers")
    assert redis_slot("foo{}{bar}") != redis_slot("bar")
    assert redis_slot("foo{bar}{zap}") == redis_slot("bar")
    assert redis_slots(["foo", b"bar"]) == [12182, 5061]


@given(st.binary(max_size=40))
def test_redis_slot_matches_reference(key: bytes) -> None:
    assert redis_slot(key) == reference_slot(key)


@given(st.lists(st.one_of(st.binary(max_size=20), st.text(max_size=20)), max_size=400))
def test_redis_slots_batch(keys: list[bytes | str]) -> None:
    encodable = [k for k in keys if isinstance(k, bytes) or not _has_surrogates(k)]
    assert redis_slots(encodable) == [redis_slot(k) for k in encodable]


def _has_surrogates(s: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in s)


# -- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, -1, MAX_SHARD_COUNT + 1, 2**40])
def test_bad_shard_count(n: int) -> None:
    with pytest.raises(OutOfRange):
        ShardRouter(n)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: hashint4(2**31), OutOfRange),
        (lambda: hashint4(-(2**31) - 1), OutOfRange),
        (lambda: hashint8(2**63), OutOfRange),
        (lambda: ShardRouter(4).shard_for_int4(2**31), OutOfRange),
        (lambda: ShardRouter(4).shard_for_hash(2**31), OutOfRange),
        (lambda: ShardRouter(4).shards_for_int8([1, 2**63]), OutOfRange),
        (lambda: uuid_hash(b"short"), InvalidArgument),
        (lambda: ShardRouter(4).shard_for_uuid(bytes(17)), InvalidArgument),
        (lambda: hashtext("\udcff"), InvalidArgument),
        (lambda: ShardRouter(4).shards_for_text(["ok", "\ud800"]), InvalidArgument),
        (lambda: redis_slot("\ud800"), InvalidArgument),
    ],
)
def test_bad_values_raise_the_hierarchy(call: object, error: type[Exception]) -> None:
    assert callable(call)
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, NexusCartError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "call",
    [
        lambda: hashint4("1"),  # type: ignore[arg-type]
        lambda: hashint8(1.0),  # type: ignore[arg-type]
        lambda: uuid_hash(uuid.uuid4()),  # type: ignore[arg-type]
        lambda: ShardRouter(4).shards_for_int8("123"),  # type: ignore[arg-type]
        lambda: ShardRouter(4).shards_for_text("abc"),
        lambda: ShardRouter(4).shards_for_text([b"abc"]),  # type: ignore[list-item]
        lambda: redis_slot(1),  # type: ignore[arg-type]
        lambda: redis_slots(b"abc"),  # type: ignore[arg-type]
        lambda: redis_slots([1]),  # type: ignore[list-item]
    ],
)
def test_wrong_types_raise_type_error(call: object) -> None:
    assert callable(call)
    with pytest.raises(TypeError):
        call()


def test_error_classes_are_exported_once() -> None:
    assert _core.OutOfRange is OutOfRange
    assert issubclass(OutOfRange, InvalidArgument)
    assert issubclass(InvalidArgument, NexusCartError)
    assert issubclass(InvalidArgument, ValueError)
    assert OutOfRange.__module__ == "nexuscart._core"
