"""Shard-aware Kafka partitioning: a user's events go to the partition of the user's Citus shard.

Kafka's default partitioner (Java client and aiokafka alike) picks
``(murmur2(key) & 0x7fffffff) % partitions``. Our message key is the user id as decimal
ASCII, and Citus places the user's rows by ``hashint8(user_id)`` into one of
``shard_count`` uniform hash ranges. The two hashes are unrelated, so with the default
partitioner every partition carries users of *every* shard, and each consumer writes to all
shards (docs/scaling.md, "Kafka keys and shards").

Here the partition is derived from the shard instead::

    partition = ShardRouter(shard_count).shard_for_int8(user_id) % partitions

so partition ``p`` carries exactly the users of shards ``{s : s % partitions == p}``: a
fixed set of ``ceil`` or ``floor(shard_count / partitions)`` shards, balanced when
``partitions`` divides ``shard_count`` (docs/adr/0004-shard-aware-kafka-partitioning.md).
It is still a pure function of the key, so all of one user's events stay on one partition,
in order, exactly as with the default partitioner.

Every producer of a topic must use the same partitioner, and ``shard_count`` must equal the
shard count of the ``users`` co-location group (32, pinned by migration 0002).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Final

from aiokafka.partitioner import DefaultPartitioner

from nexuscart import _core

# The shard count migration 0002 pins for the users co-location group (shard_count => 32).
DEFAULT_SHARD_COUNT: Final = 32
_INT8_MIN: Final = -(2**63)
_INT8_MAX: Final = 2**63 - 1


@functools.cache
def _router(shard_count: int) -> _core.ShardRouter:
    return _core.ShardRouter(shard_count)


def partition_for(user_id: int, partitions: int, shard_count: int = DEFAULT_SHARD_COUNT) -> int:
    """The Kafka partition (``0 <= p < partitions``) for events keyed by ``user_id``.

    Raises ``ValueError`` for ``partitions < 1`` and ``nexuscart._core.OutOfRange`` for a
    ``user_id`` outside bigint or a ``shard_count`` outside 1..64000.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    return _router(shard_count).shard_for_int8(user_id) % partitions


def _int_key(key: bytes) -> int | None:
    """The user id in a message key (decimal ASCII, as the outbox writes it), else None."""
    if not key or len(key) > 20:
        return None
    try:
        value = int(key)
    except ValueError:
        return None
    # int() also accepts " 42", "4_2" and "+42": only the canonical form is a user id key
    if str(value).encode() != key or not _INT8_MIN <= value <= _INT8_MAX:
        return None
    return value


class ShardPartitioner:
    """An aiokafka partitioner (``AIOKafkaProducer(partitioner=ShardPartitioner())``).

    Keys that are a canonical decimal bigint (the user id) go to ``partition_for``; any other
    key, and a missing key, is left to Kafka's default partitioner (murmur2 / random), so the
    class is safe on topics that are not keyed by user.
    """

    def __init__(self, shard_count: int = DEFAULT_SHARD_COUNT):
        self.shard_count = shard_count
        _router(shard_count)  # validates shard_count now, not at first send
        self._default = DefaultPartitioner()

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        user_id = _int_key(key) if key is not None else None
        if user_id is None:
            return int(self._default(key, list(all_partitions), list(available)))
        return all_partitions[partition_for(user_id, len(all_partitions), self.shard_count)]
