"""Keeps one worker's search index in step with the catalog: rebuild from PostgreSQL, then
follow ``catalog.v1`` from the offsets noted *before* the rebuild read anything (so no
event between the snapshot and the follow is missed; the ones already in the snapshot are
skipped by version). Every worker follows every partition: no consumer group, no committed
offsets (each start rebuilds), the dead-letter topic for poison events as every consumer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from nexuscart import config, events
from nexuscart.adapters import kafka
from nexuscart.app.search import CatalogSource, Search
from services.runtime import ConsumerLoop, sleep_or_stop

log = logging.getLogger("nexuscart.search")

RETRY_S: Final = 1.0


class IndexFollower(ConsumerLoop):
    async def _commit(self) -> None:
        """Nothing to commit: a restarted worker rebuilds from the catalog and follows on
        from the end of the topic."""


async def start_at_end(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, topic: str
) -> list[TopicPartition]:
    """Assign every partition of ``topic`` and fix the positions at their current ends."""
    # the producer waits for the topic's metadata (the consumer's cluster view is only
    # filled for subscribed topics)
    parts = await producer.partitions_for(topic)
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)  # resolve now: the end as of before the snapshot
    return tps


async def follow(
    settings: config.Settings,
    search: Search,
    source: CatalogSource,
    stop: asyncio.Event,
    *,
    topic: str = events.CATALOG_TOPIC,
) -> None:
    """Rebuild and follow until ``stop``; after any failure (Kafka or PostgreSQL down) start
    over. While Kafka is down the index is still built from the catalog (stale, not empty)."""
    name = f"search-{socket.gethostname()}-{os.getpid()}"
    while not stop.is_set():
        consumer: AIOKafkaConsumer | None = None
        producer: AIOKafkaProducer | None = None
        try:
            try:
                await kafka.ensure_topics(
                    settings.kafka.bootstrap, [topic, events.dead_letter_topic(topic)]
                )
                producer = kafka.producer(settings.kafka, f"{name}-dlq")  # dead letters
                await producer.start()
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=settings.kafka.bootstrap,
                    group_id=None,
                    client_id=f"{settings.kafka.client_id}-{name}",
                    enable_auto_commit=False,
                    isolation_level="read_committed",
                )
                await consumer.start()
                await start_at_end(consumer, producer, topic)
            except Exception as exc:
                if not search.ready:
                    n = await search.rebuild(source)
                    log.warning("search: Kafka unavailable (%r); indexed %d products, "
                                "not following yet", exc, n)  # fmt: skip
                raise
            n = await search.rebuild(source)
            log.info("search: indexed %d products; following %s", n, topic)
            loop = IndexFollower(name, consumer, producer, search.apply,
                                 decode=events.decode_catalog, max_records=5000)  # fmt: skip
            await loop.run(stop)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("search: follower restarts in %.1fs: %r", RETRY_S, exc)
            await sleep_or_stop(stop, RETRY_S)
        finally:
            if consumer is not None:
                await consumer.stop()
            if producer is not None:
                await producer.stop()
