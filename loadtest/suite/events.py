"""Bench orders consumers (PT-03 instances, PT-04 partitions): StockReserved events produced
straight into a throwaway topic, the orders projector in 1..n processes as one consumer
group, and the order rows they write, read back for throughput and latency."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import asyncpg
import msgspec

from devtools.proc import Process, tail
from loadtest.suite.probes import Kafka
from nexuscart import config
from nexuscart.adapters import kafka
from nexuscart.events import Envelope, StockReserved

ROOT: Final = Path(__file__).resolve().parents[2]
# services.runtime.run names the process's logs after main's package: main must come from
# its module (under -m it would be __main__'s)
CONSUMER_ARGV: Final = [
    sys.executable,
    "-c",
    "from loadtest.suite.consumer import main; from services.runtime import run; run(main)",
]
ORDER_IDS: Final = 800_000_000_000  # far above the edge's and the sync app's ids
PRICE_CENTS: Final = 4999
HOLD_MS: Final = 600_000
_encode = msgspec.json.Encoder().encode


def reserved(
    order_id: int, sale_id: int, user_id: int, sku: str = "BENCH-EVENTS", quantity: int = 1
) -> Envelope:
    """A StockReserved event in its envelope, as a purchase's outbox entry carries it."""
    return Envelope(
        id=uuid.uuid4(),
        type="StockReserved",
        version=1,
        occurred_at=dt.datetime.now(dt.UTC),
        key=str(user_id),
        data=StockReserved(
            order_id=order_id,
            sale_id=sale_id,
            user_id=user_id,
            sku=sku,
            quantity=quantity,
            unit_price_cents=PRICE_CENTS,
            currency="usd",
            expires_at_ms=int(time.time() * 1000) + HOLD_MS,
        ),
    )


async def produce(
    env: dict[str, str], topic: str, sale_id: int, n: int, rate: float | None, seed: int
) -> dict[int, float]:
    """``n`` events of ``n`` users drawn at random (so every shard and partition gets its
    share), at ``rate`` per second (None: as fast as the producer goes), with the shipped
    producer (ShardPartitioner, acks=all). Returns order id -> send time (time.time())."""
    rng = random.Random(seed)
    producer = kafka.producer(config.load(env).kafka, "bench")
    await producer.start()
    sent: dict[int, float] = {}
    try:
        t0 = time.monotonic()
        futures = []
        for i in range(n):
            if rate is not None and i % 50 == 0:
                # paced in steps of 50: open loop, whatever the consumers do
                await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            order_id = ORDER_IDS + sale_id * 1_000_000 + i
            event = reserved(order_id, sale_id, rng.randrange(1, 10_000_000))
            sent[order_id] = time.time()
            futures.append(await producer.send(topic, value=_encode(event), key=event.key.encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


def start_consumers(
    env: dict[str, str], group: str, topic: str, n: int, logdir: Path
) -> list[Process]:
    child_env = {
        **os.environ,
        **env,
        "BENCH_GROUP": group,
        "BENCH_TOPIC": topic,
        "PYTHONPATH": str(ROOT),
        "METRICS_PORT": "0",  # several instances: none may take the service's port
    }
    return [
        Process(
            f"consumer-{i}",
            CONSUMER_ARGV,
            cwd=ROOT,
            env=child_env,
            log=logdir / f"{group}-{i}.log",
        ).start()
        for i in range(n)
    ]


def check_alive(procs: Sequence[Process]) -> None:
    for p in procs:
        if not p.running:
            raise RuntimeError(f"{p.name} exited ({p.poll()}):\n{tail(p.log)}")


async def wait_members(
    bootstrap: str, group: str, procs: Sequence[Process], timeout_s: float
) -> bool:
    """Until the group is stable with every process in it (bounded)."""
    k = Kafka(bootstrap)
    await k.start()
    n = len(procs)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            check_alive(procs)
            if await k.members(group) >= n:
                return True
            await asyncio.sleep(0.3)
        return False
    finally:
        await k.close()


async def created_at(dsn: str, sale_id: int) -> dict[int, float]:
    """Order id -> when its row was written (the transaction's start, epoch s)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT order_id, extract(epoch FROM created_at)::float8 AS t "
            "FROM orders WHERE sale_id = $1",
            sale_id,
        )
    finally:
        await conn.close()
    return {int(r["order_id"]): float(r["t"]) for r in rows}


def drain_rate(times: Sequence[float]) -> float | None:
    """Rows per second between the 10th and 90th percentile of their commit times: the
    steady rate, without the consumers' start-up and the last batch's tail."""
    if len(times) < 10:
        return None
    ts = sorted(times)
    lo, hi = ts[len(ts) // 10], ts[(9 * len(ts)) // 10]
    return 0.8 * len(ts) / (hi - lo) if hi > lo else None


def stats_ms(values: Sequence[float]) -> dict[str, Any]:
    """p50/p95/p99/max in milliseconds of ``values`` in seconds."""
    if not values:
        return {"n": 0}
    v = sorted(values)

    def pct(p: float) -> float:
        return 1000 * v[min(len(v) - 1, int(p / 100 * len(v)))]

    return {"n": len(v), "p50": pct(50), "p95": pct(95), "p99": pct(99), "max": 1000 * v[-1]}
