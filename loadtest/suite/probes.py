"""Queue depths over time: the flash-sale outbox in Redis (entries not yet relayed) and the
lag of a Kafka consumer group per partition, sampled in a background thread with its own
event loop while a phase runs."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from nexuscart.adapters.flash_sales import FlashSaleStore


async def outbox_backlog(store: FlashSaleStore) -> int:
    """Entries in every sale's outbox stream: the relay deletes an entry once Kafka has it."""
    streams = await store.outbox_streams()
    if not streams:
        return 0
    pipe = store.client.pipeline(transaction=False)
    for s in streams:
        pipe.xlen(s)
    return int(sum(await pipe.execute()))


class Kafka:
    """Admin and offsets of one broker, for the suite (topics, lag per partition)."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        self.offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def start(self) -> None:
        await self.admin.start()
        await self.offsets.start()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.offsets.stop()
        with contextlib.suppress(Exception):
            await self.admin.close()

    async def create_topic(self, topic: str, partitions: int) -> None:
        await self.admin.create_topics([NewTopic(topic, partitions, 1)])
        deadline = time.monotonic() + 30
        while not await self._led(topic, partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic}: not {partitions} partitions with leaders")
            await asyncio.sleep(0.2)

    async def _led(self, topic: str, partitions: int) -> bool:
        """Every partition exists and has a leader (sends before that are refused)."""
        parts = await self.partitions(topic)
        cluster = self.offsets._client.cluster
        leaders = [cluster.leader_for_partition(TopicPartition(topic, p)) for p in parts]
        return len(parts) == partitions and all(x is not None and x >= 0 for x in leaders)

    async def partitions(self, topic: str) -> list[int]:
        await self.offsets._client.force_metadata_update()
        return sorted(self.offsets.partitions_for_topic(topic) or ())

    async def lag(self, group: str, topic: str) -> dict[int, tuple[int, int]]:
        """Per partition: (end offset, the group's committed offset)."""
        tps = [TopicPartition(topic, p) for p in await self.partitions(topic)]
        ends = await self.offsets.end_offsets(tps)
        committed = await self.admin.list_consumer_group_offsets(group, partitions=tps)
        out = {}
        for tp in tps:
            c = committed.get(tp)
            out[tp.partition] = (int(ends[tp]), max(int(c.offset), 0) if c is not None else 0)
        return out

    async def members(self, group: str) -> int:
        """Members of a stable consumer group (0 while it is (re)balancing)."""
        groups = await self.admin.describe_consumer_groups([group])
        g = groups[0].groups[0] if groups and groups[0].groups else None
        if g is None:
            return 0
        # (error_code, group_id, state, protocol_type, protocol, members, ...)
        return len(g[5]) if g[2] == "Stable" else 0


class Watcher:
    """Calls each named probe every ``interval`` seconds in a thread of its own (its own
    event loop) and keeps the series: ``series[name] = [(time.time(), value), ...]``."""

    def __init__(
        self,
        probes: dict[str, Callable[[], Awaitable[Any]]],
        interval: float = 0.5,
        setup: Callable[[], Awaitable[None]] | None = None,
        teardown: Callable[[], Awaitable[None]] | None = None,
    ):
        self.probes = probes
        self.interval = interval
        self.setup, self.teardown = setup, teardown
        self.series: dict[str, list[tuple[float, Any]]] = {n: [] for n in probes}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="watcher", daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _main(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        if self.setup is not None:
            await self.setup()
        try:
            while not self._stop.is_set():
                t = time.time()
                for name, probe in self.probes.items():
                    try:
                        value = await asyncio.wait_for(probe(), 5)
                    except Exception as exc:  # a probe failing must not end the phase
                        value = {"error": f"{type(exc).__name__}: {exc}"}
                    self.series[name].append((t, value))
                await asyncio.sleep(max(0.0, self.interval - (time.time() - t)))
        finally:
            if self.teardown is not None:
                await self.teardown()


def pipeline_watcher(redis_url: str, bootstrap: str, group: str, topic: str) -> Watcher:
    """The purchase pipeline's queues: outbox entries in Redis and the orders group's lag."""
    holder: dict[str, Any] = {}

    async def setup() -> None:
        holder["redis"] = aioredis.Redis.from_url(redis_url)
        holder["kafka"] = k = Kafka(bootstrap)
        await k.start()

    async def teardown() -> None:
        await holder["kafka"].close()
        await holder["redis"].aclose()

    async def outbox() -> int:
        return await outbox_backlog(FlashSaleStore(holder["redis"]))

    async def lag() -> dict[int, tuple[int, int]]:
        lags: dict[int, tuple[int, int]] = await holder["kafka"].lag(group, topic)
        return lags

    return Watcher({"outbox": outbox, "lag": lag}, setup=setup, teardown=teardown)


def total_lag(value: Any) -> int | None:
    """Sum of (end - committed) over partitions of one lag sample; None for a failed probe."""
    if not isinstance(value, dict) or "error" in value:
        return None
    return sum(max(0, int(end) - int(done)) for end, done in value.values())
