"""Shard-aware Kafka partitioning (``nexuscart.adapters.partitioning``).

Pure checks of the rule (a partition carries a fixed set of shards; the default murmur2
partitioner does not), and one round trip through the real Kafka broker of the test stack
showing that an aiokafka producer with ``ShardPartitioner`` puts each record where
``partition_for`` says.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner, murmur2

from nexuscart import config
from nexuscart._core import OutOfRange, ShardRouter
from nexuscart.adapters.partitioning import DEFAULT_SHARD_COUNT, ShardPartitioner, partition_for

SHARDS = DEFAULT_SHARD_COUNT


def shards_of_partition(partition: int, partitions: int) -> list[int]:
    """The shards whose users the rule ``shard % partitions`` sends to ``partition``."""
    return list(range(partition, SHARDS, partitions))


@pytest.fixture(scope="module")
def user_ids() -> list[int]:
    rng = random.Random(0xCAFE)
    return [rng.randint(1, 10**9) for _ in range(20_000)] + [0, -1, 2**63 - 1, -(2**63)]


def _shards_seen(
    user_ids: list[int], partitions: int, pick: Callable[[int, int], int]
) -> dict[int, set[int]]:
    router = ShardRouter(SHARDS)
    seen: dict[int, set[int]] = defaultdict(set)
    for u in user_ids:
        seen[pick(u, partitions)].add(router.shard_for_int8(u))
    return seen


@pytest.mark.parametrize("partitions", [1, 2, 4, 6, 8, 12, 16, 32, 64])
def test_each_partition_carries_a_fixed_set_of_shards(user_ids: list[int], partitions: int) -> None:
    seen = _shards_seen(user_ids, partitions, partition_for)
    assert set(seen) <= set(range(partitions))
    for p, shards in seen.items():
        assert shards == set(shards_of_partition(p, partitions))
    # every shard belongs to exactly one partition
    owners = [p for p in range(partitions) for _ in shards_of_partition(p, partitions)]
    assert len(owners) == SHARDS
    sizes = {len(shards_of_partition(p, partitions)) for p in range(partitions)}
    assert sizes <= {SHARDS // partitions, -(-SHARDS // partitions)}


def test_default_murmur2_partitioner_spreads_every_partition_over_all_shards(
    user_ids: list[int],
) -> None:
    """Why the partitioner exists: keyed by the user id string, murmur2 and Citus' hashint8
    are unrelated, so each of 6 partitions holds users of all 32 shards."""

    def default(u: int, partitions: int) -> int:
        return int(murmur2(str(u).encode()) & 0x7FFFFFFF) % partitions

    seen = _shards_seen(user_ids, 6, default)
    assert all(len(shards) == SHARDS for shards in seen.values())
    assert all(len(shards) <= 6 for shards in _shards_seen(user_ids, 6, partition_for).values())


def test_partition_is_a_function_of_the_user_only(user_ids: list[int]) -> None:
    sample = user_ids[:500]
    assert [partition_for(u, 6) for u in sample] == [partition_for(u, 6) for u in sample]
    assert [partition_for(u, 6) for u in sample] == [
        ShardRouter(SHARDS).shard_for_int8(u) % 6 for u in sample
    ]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="partitions"):
        partition_for(1, 0)
    with pytest.raises(OutOfRange):
        partition_for(2**63, 6)
    with pytest.raises(OutOfRange):
        partition_for(1, 6, shard_count=0)
    with pytest.raises(OutOfRange):
        ShardPartitioner(shard_count=64_001)


def test_partitioner_uses_shards_for_user_id_keys(user_ids: list[int]) -> None:
    part = ShardPartitioner()
    all_partitions = list(range(8))
    for u in user_ids[:2000]:
        assert part(str(u).encode(), all_partitions, all_partitions) == partition_for(u, 8)


@pytest.mark.parametrize(
    "key", [b"abc", b"042", b" 42", b"+42", b"4_2", b"", b"9223372036854775808", "é".encode()]
)
def test_partitioner_falls_back_to_murmur2_for_other_keys(key: bytes) -> None:
    all_partitions = list(range(6))
    assert ShardPartitioner()(key, all_partitions, all_partitions) == DefaultPartitioner()(
        key, all_partitions, all_partitions
    )


def test_partitioner_without_key_picks_an_available_partition() -> None:
    assert ShardPartitioner()(None, [0, 1, 2, 3], [2]) == 2


async def test_real_kafka_places_records_by_shard(settings: config.Settings) -> None:
    topic = f"test.partitioning.{uuid.uuid4().hex[:8]}"
    partitions = 8
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    # the settings of nexuscart.adapters.kafka.producer, plus the partitioner
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        partitioner=ShardPartitioner(),
    )
    await producer.start()
    try:
        users = random.Random(7).sample(range(1, 10**7), 200)
        sends = [await producer.send(topic, value=b"{}", key=str(u).encode()) for u in users]
        placed = [m.partition for m in await asyncio.gather(*sends)]
    finally:
        await producer.stop()
    assert placed == [partition_for(u, partitions) for u in users]


def test_every_shard_count_in_the_code_agrees_with_the_migration() -> None:
    # The router, the partitioner and the orders writer assume the shard count that
    # migrations/0002 gives Citus; a second hard-coded 32 could silently drift.
    import re
    from pathlib import Path

    from services.orders.projector import OrdersProjector

    sql = next(
        Path(__file__).parent.parent.glob("py/nexuscart/adapters/sql/migrations/0002*.sql")
    ).read_text()
    pinned = {int(n) for n in re.findall(r"shard_count\s*=>\s*(\d+)", sql)}
    assert pinned == {DEFAULT_SHARD_COUNT}
    assert OrdersProjector.__init__.__defaults__ == (DEFAULT_SHARD_COUNT,)
