"""Batch shard routing: ``ShardRouter.shards_for_int8`` on 100k keys vs the same hashing in
pure Python (PostgreSQL's ``hashint8`` = Jenkins lookup3 ``hash_uint32`` + Citus' uniform
shard index), written below and first checked equal to the Rust core."""

from __future__ import annotations

import random
from typing import Any, Final

import pytest

from nexuscart._core import ShardRouter, hashint8
from tests.bench.conftest import Figure, Figures, measure

pytestmark = pytest.mark.benchmark_only

N_KEYS: Final = 100_000
SHARDS: Final = 32
_M: Final = 0xFFFFFFFF
# hashfn.c, hash_bytes_uint32: a = b = c = 0x9e3779b9 + sizeof(uint32) + 3923095
_INIT: Final = (0x9E3779B9 + 4 + 3923095) & _M


def py_hashint8(v: int) -> int:
    """PostgreSQL hashint8 (hashfunc.c) over hash_bytes_uint32 (hashfn.c), as int4."""
    lo = v & _M
    hi = (v >> 32) & _M
    lo ^= hi if v >= 0 else hi ^ _M
    # a += k; final(a, b, c) -- rot(x, k) = x << k | x >> (32 - k); the bits a rotation
    # leaves above 32 are a multiple of 2^32 and vanish in the "& _M" of the subtraction
    a = (_INIT + lo) & _M
    b = c = _INIT
    c ^= b
    c = (c - ((b << 14) | (b >> 18))) & _M
    a ^= c
    a = (a - ((c << 11) | (c >> 21))) & _M
    b ^= a
    b = (b - ((a << 25) | (a >> 7))) & _M
    c ^= b
    c = (c - ((b << 16) | (b >> 16))) & _M
    a ^= c
    a = (a - ((c << 4) | (c >> 28))) & _M
    b ^= a
    b = (b - ((a << 14) | (a >> 18))) & _M
    c ^= b
    c = (c - ((b << 24) | (b >> 8))) & _M
    return c - (1 << 32) if c & 0x80000000 else c


def py_shards_for_int8(values: list[int], shard_count: int) -> list[int]:
    """Citus FindShardIntervalIndex (uniform layout) over py_hashint8, for a batch."""
    increment = (1 << 32) // shard_count
    last = shard_count - 1
    h = py_hashint8
    return [min((h(v) + 0x80000000) // increment, last) for v in values]


@pytest.fixture(scope="module")
def keys() -> list[int]:
    rng = random.Random(0xB0_0C)
    half = N_KEYS // 2
    # half user-id-like (small positives), half anywhere in bigint
    return [rng.randint(1, 50_000_000) for _ in range(half)] + [
        rng.randint(-(2**63), 2**63 - 1) for _ in range(N_KEYS - half)
    ]


def test_python_reference_equals_rust(keys: list[int]) -> None:
    sample = [0, -1, 1, -(2**63), 2**63 - 1, -(2**31), 2**31 - 1, 2**32, *keys[::97]]
    assert [py_hashint8(v) for v in sample] == [hashint8(v) for v in sample]
    for n in (1, 7, 32, 1000):
        assert py_shards_for_int8(sample, n) == ShardRouter(n).shards_for_int8(sample)


@pytest.mark.benchmark(group="router: 100k int8 keys -> shard")
def test_bench_router_rust_batch(benchmark: Any, keys: list[int], figures: Figures) -> None:
    router = ShardRouter(SHARDS)
    secs = measure(benchmark, router.shards_for_int8, rounds=30, setup=lambda: ((keys,), {}))
    figures.add(
        "router.rust_batch",
        Figure(
            "router: ShardRouter.shards_for_int8, 100k keys",
            N_KEYS / secs,
            "keys/s",
            baseline="router.python",
        ),
    )
    benchmark.extra_info["keys_per_s"] = N_KEYS / secs


@pytest.mark.benchmark(group="router: 100k int8 keys -> shard")
def test_bench_router_rust_single_calls(benchmark: Any, keys: list[int], figures: Figures) -> None:
    """For scale: one Python->Rust call per key (what a caller without the batch API pays)."""
    router = ShardRouter(SHARDS)

    def run(values: list[int]) -> list[int]:
        f = router.shard_for_int8
        return [f(v) for v in values]

    secs = measure(benchmark, run, rounds=10, setup=lambda: ((keys,), {}))
    figures.add(
        "router.rust_single",
        Figure(
            "router: shard_for_int8 per key in a Python loop",
            N_KEYS / secs,
            "keys/s",
            baseline="router.python",
        ),
    )
    benchmark.extra_info["keys_per_s"] = N_KEYS / secs


@pytest.mark.benchmark(group="router: 100k int8 keys -> shard")
def test_bench_router_pure_python(benchmark: Any, keys: list[int], figures: Figures) -> None:
    secs = measure(benchmark, py_shards_for_int8, rounds=5, setup=lambda: ((keys, SHARDS), {}))
    figures.add(
        "router.python",
        Figure("router: pure-Python hashint8 + Citus index", N_KEYS / secs, "keys/s"),
    )
    benchmark.extra_info["keys_per_s"] = N_KEYS / secs
