"""Payments load run on loopback (127.0.0.1 only), every phase bounded in time, on a stack of
its own (Redis, PostgreSQL, Kafka, stripe-mock started by devtools/devstack.py unless the
environment names them):

  1. ceiling   stripe-mock alone: raw POST /v1/payment_intents from --concurrency aiohttp
               clients for --seconds (what the mock serves on this machine)
  2. intents   the payments use case (app/payments.Payments.request: the SDK's async client
               through retries + breaker, the payment row, PaymentRequested in the outbox)
               for new orders, the same concurrency: intents/s, and its ratio to 1.
  3. verify    the webhook signature check alone, in-process (the SDK's verifier): checks/s
  4. webhooks  POST /webhooks/stripe on scripts/serve.py as shipped (its own stack, --workers
               edge workers, the services on), open loop (vegeta) at --webhook-rate/s, every
               request a distinct payment_intent.succeeded signed up front (verified,
               recorded in the payments inbox): answered 2xx/s, p50/p99; then how long after
               the run the payments service had applied them all (PaymentSucceeded in the
               outbox) and how many payments succeeded.
  5. pipeline  CPU per order of the two consumers behind checkout, in this process:
               --orders encoded OrderPlaced records (3 lines, distinct users) decoded and fed
               in consumer batches of --batch to the payments service's handler (intent at
               stripe-mock, row, PaymentRequested) and then to the orders projector; process
               CPU ms per order (time.process_time: stripe-mock's and PostgreSQL's CPU are
               not in it) and orders/s of each.
  6. stream    OrderPlaced -> PaymentRequested on scripts/serve.py as shipped: OrderPlaced
               records produced to orders.v1 at --stream-rate/s (open loop) for --seconds
               after WARMUP_S of the same, each order timed until its PaymentRequested is
               read from payments.v1: p50/p99/max and the intents/s achieved.

Usage: scripts/bench payments [--seconds 10] [--concurrency 32] [--workers 2]
                              [--webhook-rate 5000] [--stream-rate 2000] [--orders 5000]
                              [--batch 500]
                              [--phases ceiling,intents,verify,webhooks,pipeline,stream]
Writes loadtest/reports/payments-<time>.md and .json, and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import stripe
import uvloop
from aiokafka import AIOKafkaConsumer

from devtools import devstack
from loadtest.storm import Server, cpu_by_part, save_report, vegeta, vegeta_target, workdir
from nexuscart import config, events
from nexuscart.adapters import kafka, payments_inbox, postgres, redis_conn
from nexuscart.adapters.payments_repo import OrderToPay
from services.orders.projector import OrdersProjector
from services.payments import bootstrap as payments_service

ROOT = Path(__file__).resolve().parent.parent
_encoder = msgspec.json.Encoder()
_rng = random.SystemRandom()


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def closed_loop(
    seconds: float, concurrency: int, call: Callable[[], Awaitable[object]]
) -> dict[str, Any]:
    """``concurrency`` workers calling ``call`` back to back until ``seconds`` pass."""
    lat: list[float] = []
    errors = 0
    end = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.monotonic() < end:
            t = time.monotonic()
            try:
                await call()
                lat.append(time.monotonic() - t)
            except Exception:
                errors += 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    took = time.monotonic() - t0
    return {
        "ok": len(lat),
        "errors": errors,
        "per_s": round(len(lat) / took, 1),
        "p50_ms": round(1000 * pct(lat, 0.5), 2),
        "p99_ms": round(1000 * pct(lat, 0.99), 2),
    }


def new_order() -> OrderToPay:
    return OrderToPay(_rng.randrange(10**6, 10**12), _rng.getrandbits(50), None, 1_000, "usd")


def succeeded_body(order: OrderToPay) -> bytes:
    return json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": "pi_bench",
                    "object": "payment_intent",
                    "amount": order.amount_cents,
                    "amount_received": order.amount_cents,
                    "currency": "usd",
                    "metadata": {"order_id": str(order.order_id), "user_id": str(order.user_id)},
                }
            },
        }
    ).encode()


def sign(body: bytes, secret: str) -> str:
    return str(stripe.WebhookSignature.generate_signature_header(body.decode(), secret))


def placed_records(n: int) -> list[bytes]:
    """n encoded OrderPlaced envelopes (3 lines each, one order per user, users spread over
    shards), as the checkout's Lua writes them to orders.v1."""
    expires = int(time.time() * 1000) + 600_000
    base = _rng.randrange(10**6, 10**12)
    out = []
    for i in range(n):
        user = base + i * 7_919
        lines = tuple(events.OrderLine(f"SKU-{i % 997 + k}", 1 + k, 1, 1_000) for k in range(3))
        data = events.OrderPlaced(
            _rng.getrandbits(50), user, lines, "usd", 3_000, 0, 3_000, None, expires
        )
        env = events.Envelope(
            uuid.uuid4(), "OrderPlaced", 1, dt.datetime.now(dt.UTC), str(user), data
        )
        out.append(_encoder.encode(env))
    return out


async def consumer_cpu(
    records: list[bytes], batch: int, handle: Callable[[list[Any]], Awaitable[object]]
) -> dict[str, Any]:
    """Decode and hand ``records`` to ``handle`` in consumer batches, as ConsumerLoop does;
    this process's CPU and the wall time."""
    cpu0, t0 = time.process_time(), time.monotonic()
    for i in range(0, len(records), batch):
        await handle([events.decode(r) for r in records[i : i + batch]])
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    n = len(records)
    return {
        "orders": n,
        "per_s": round(n / wall, 1),
        "cpu_ms_per_order": round(1000 * cpu / n, 3),
        "cpu_share": round(cpu / wall, 2),
    }


async def pipeline(args: argparse.Namespace, settings: config.Settings) -> dict[str, Any]:
    """Phase 5: the payments service's handler, then the orders projector, on the same
    OrderPlaced records."""
    records = placed_records(args.orders)
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)
    payments, provider = payments_service.build(settings, pool)
    try:
        pay = await consumer_cpu(records, args.batch, payments.handle_order_events)
        orders = await consumer_cpu(records, args.batch, OrdersProjector(pool).handle)
        requested = await pool.fetchval(
            "SELECT count(*) FROM payments WHERE requested AND payment_id = ANY($1)",
            [f"pay_{events.decode(r).data.order_id}" for r in records],
        )
    finally:
        await provider.aclose()
        await pool.close()
    pay["requested"] = requested
    return {"payments_service": pay, "orders_projector": orders}


async def phases(args: argparse.Namespace, settings: config.Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    base = settings.stripe.api_base or "https://api.stripe.com"
    auth = {"authorization": f"Bearer {settings.stripe.api_key}"}
    if "ceiling" in args.phases:
        # aiohttp with one connection per worker, as the service's SDK client uses: an httpx
        # client cost ~5x the CPU per call on these shared cores and measured itself instead
        conn = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(base, headers=auth, connector=conn) as c:

            async def raw() -> None:
                async with c.post(
                    "/v1/payment_intents", data={"amount": "1000", "currency": "usd"}
                ) as r:
                    r.raise_for_status()
                    await r.read()

            out["ceiling"] = await closed_loop(args.seconds, args.concurrency, raw)

    if "intents" in args.phases:
        pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)
        payments, provider = payments_service.build(settings, pool)
        try:

            async def intent() -> None:
                await payments.request(new_order())

            out["intents"] = await closed_loop(args.seconds, args.concurrency, intent)
        finally:
            await provider.aclose()
            await pool.close()
        if "ceiling" in out:
            out["intents"]["ratio_to_ceiling"] = round(
                out["intents"]["per_s"] / max(out["ceiling"]["per_s"], 1e-9), 3
            )

    secret = settings.stripe.webhook_secret
    if "verify" in args.phases:
        body = succeeded_body(new_order())
        header = sign(body, secret)
        n, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < min(args.seconds, 3):
            stripe.WebhookSignature.verify_header(body, header, secret, 300)
            n += 1
        out["verify"] = {"per_s": round(n / (time.monotonic() - t0), 1)}

    if "webhooks" in args.phases:
        out["webhooks"] = await webhooks(args)
    if "stream" in args.phases:
        out["stream"] = await stream(args)
    return out


async def webhooks(args: argparse.Namespace) -> dict[str, Any]:
    """Phase 4 on ``scripts/serve.py`` as shipped (its own stack; the payments service
    applying the inbox under SCHED_IDLE): the edge's answers, then how long after the run
    the service had applied every event, and how many payments that made succeed."""
    work = workdir("nexuscart-bench-")
    server = Server(args.workers, work)
    try:
        secret = server.env["STRIPE_WEBHOOK_SECRET"]
        # open loop (vegeta): every request a distinct event, signed up front (valid for
        # 300 s, longer than any bounded run), so the client does no HMAC while it sends
        n = args.webhook_rate * int(args.seconds)
        orders = [new_order() for _ in range(n)]
        signed = []
        for order in orders:
            b = succeeded_body(order)
            signed.append((base64.b64encode(b).decode(), sign(b, secret)))
        bare = devstack.GranianServer(
            "loadtest.bare_app:app", {}, workers=args.workers, cwd=ROOT, ready_path="/"
        )
        try:  # the same requests, offered at the same rate, to a bare Granian endpoint
            ceiling = vegeta(
                targets(work / "bare.jsonl", f"{bare.url}/", signed),
                args.webhook_rate,
                int(args.seconds),
            )
        finally:
            bare.stop()
        path = targets(work / "webhooks.jsonl", f"{server.url}/webhooks/stripe", signed)
        res = vegeta(path, args.webhook_rate, int(args.seconds))
        res["bare"] = ceiling
        res["applied"] = await applied_after(server.env, orders, timeout_s=300)
        return res
    finally:
        server.stop()


WARMUP_S = 3


async def stream(args: argparse.Namespace) -> dict[str, Any]:
    """Phase 6 on ``scripts/serve.py`` as shipped: OrderPlaced records produced to orders.v1
    at --stream-rate/s (open loop, 10 ms ticks) for --seconds; each order's time until its
    PaymentRequested reached payments.v1 (the payments service's intent at stripe-mock, the
    row and the event committed, the outbox relayed), as a consumer of that topic sees it.
    The first WARMUP_S of orders (the service's consumer joining its group, first
    connections) are sent at the same rate but not counted."""
    work = workdir("nexuscart-bench-")
    server = Server(args.workers, work)
    try:
        kafka_settings = config.KafkaSettings(server.env["KAFKA_BOOTSTRAP"], "nexuscart-bench")
        warm = args.stream_rate * WARMUP_S
        records = placed_records(warm + args.stream_rate * int(args.seconds))
        envs = [events.decode(r) for r in records]
        measured = {e.data.order_id for e in envs[warm:]}
        consumer = AIOKafkaConsumer(
            events.PAYMENTS_TOPIC,
            bootstrap_servers=kafka_settings.bootstrap,
            auto_offset_reset="earliest",  # the server's stack is new: only this run's events
        )
        producer = kafka.producer(kafka_settings, "bench")
        await consumer.start()
        await producer.start()
        sent: dict[int, float] = {}
        seen: dict[int, float] = {}

        async def produce() -> None:
            t0, tick = time.monotonic(), 0.01
            per_tick = max(1, round(args.stream_rate * tick))
            for i in range(0, len(records), per_tick):
                await asyncio.sleep(max(0.0, t0 + (i // per_tick) * tick - time.monotonic()))
                now = time.time()
                for raw, env in zip(records[i : i + per_tick], envs[i : i + per_tick], strict=True):
                    await producer.send(events.ORDERS_TOPIC, raw, key=env.key.encode())
                    sent[env.data.order_id] = now
            await producer.flush()

        async def consume(deadline: float) -> None:
            while len(seen) < len(records) and time.monotonic() < deadline:
                got = await consumer.getmany(timeout_ms=200)
                now = time.time()
                for recs in got.values():
                    for r in recs:
                        env = events.decode(r.value)
                        if isinstance(env.data, events.PaymentRequested):
                            seen.setdefault(env.data.order_id, now)

        cpu0, own0 = cpu_by_part(server.pid), time.process_time()
        try:
            await asyncio.gather(produce(), consume(time.monotonic() + args.seconds + 300))
            cpu1, own1 = cpu_by_part(server.pid), time.process_time()
        finally:
            await producer.stop()
            await consumer.stop()
    finally:
        server.stop()
    lat = sorted(1000 * (t - sent[o]) for o, t in seen.items() if o in measured)
    got = [t for o, t in seen.items() if o in measured]
    span = (max(got) - min(sent[o] for o in measured)) if got else 0.0

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else 0.0

    return {
        "offered_per_s": args.stream_rate,
        "orders": len(measured),
        "requested": len(got),
        "requested_per_s": round(len(got) / span, 1) if span else 0.0,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "max_ms": round(lat[-1], 1) if lat else 0.0,
        # CPU ms per order of each part while the stream ran (the bench's own producer and
        # consumer too: they share the two cores)
        "cpu_ms_per_order": {
            **{p: round(1000 * (cpu1[p] - cpu0.get(p, 0.0)) / len(records), 3) for p in cpu1},
            "bench (producer + consumer)": round(1000 * (own1 - own0) / len(records), 3),
        },
    }


def targets(path: Path, url: str, signed: list[tuple[str, str]]) -> Path:
    """vegeta's targets: a POST of each (base64 body, Stripe-Signature) to ``url``."""
    with path.open("w") as f:
        for body, signature in signed:
            header = {"Stripe-Signature": [signature], "Content-Type": ["application/json"]}
            f.write(vegeta_target("POST", url, header, body))
    return path


async def applied_after(
    env: dict[str, str], orders: list[OrderToPay], timeout_s: float
) -> dict[str, Any]:
    """Wait for the payments service to empty the webhook inbox: seconds it took after the
    run ended, and the bench's payments that succeeded."""
    client = redis_conn.connect(config.RedisSettings(env["REDIS_URL"]))
    t0 = time.monotonic()
    try:
        # polling another process's stream
        while (left := int(await client.xlen(payments_inbox.STREAM))) and (  # noqa: ASYNC110
            time.monotonic() - t0 < timeout_s
        ):
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    drained_s = time.monotonic() - t0
    conn = await asyncpg.connect(env["PG_DSN"])
    try:
        paid = await conn.fetchval(
            "SELECT count(*) FROM payments WHERE status = 'succeeded' AND payment_id = ANY($1)",
            [f"pay_{o.order_id}" for o in orders],
        )
    finally:
        await conn.close()
    return {"drained_s": round(drained_s, 1), "left_in_inbox": left, "succeeded": paid}


PHASES = ("ceiling", "intents", "verify", "webhooks", "pipeline", "stream")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--webhook-rate", type=int, default=5000, help="signed events/s offered")
    ap.add_argument("--stream-rate", type=int, default=2000, help="OrderPlaced/s produced")
    ap.add_argument("--orders", type=int, default=5000, help="OrderPlaced records (pipeline)")
    ap.add_argument("--batch", type=int, default=500, help="records per consumer batch")
    ap.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset")
    args = ap.parse_args()
    args.webhook_rate = max(1, min(args.webhook_rate, 10_000))
    args.stream_rate = max(1, min(args.stream_rate, 10_000))
    args.seconds = max(0.5, min(args.seconds, 120.0))  # bounded
    args.concurrency = max(1, min(args.concurrency, 256))
    args.orders = max(1, min(args.orders, 100_000))
    args.batch = max(1, min(args.batch, 2_000))  # ConsumerLoop's max_records
    args.phases = [p for p in args.phases.split(",") if p in PHASES]
    # the other phases need PostgreSQL + stripe-mock (webhooks: a server with its own stack)
    stack = devstack.start_stack(parts=("postgres", "stripe"))
    try:
        os.environ.update({**config.dev_defaults(), **stack.env})
        # config requires them; no phase here connects to them
        os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:1/0")
        os.environ.setdefault("KAFKA_BOOTSTRAP", "127.0.0.1:1")
        settings = config.load()
        asyncio.run(postgres.migrate_dsn(settings.postgres.dsn))
        res = asyncio.run(phases(args, settings))
        if "pipeline" in args.phases:
            # the services run under uvloop (services/runtime.run): so does this phase
            res["pipeline"] = uvloop.run(pipeline(args, settings))
    finally:
        stack.stop()
    res["args"] = vars(args)
    text = (
        f"# Payments load run\n\n`scripts/bench payments --seconds {args.seconds} "
        f"--concurrency {args.concurrency} --workers {args.workers} --orders {args.orders} "
        f"--batch {args.batch} --phases {','.join(args.phases)}`\n\n{report(res)}"
    )
    save_report("payments", text, res)
    sys.stdout.write(text)
    return 0


def vegeta_row(name: str, r: dict[str, Any]) -> str:
    ok = r["status_codes"].get("200", 0)
    return (
        f"| {name} | {ok} | {r['requests'] - ok} | {round(r['throughput'], 1)} |"
        f" {round(r['p50_ms'], 2)} | {round(r['p99_ms'], 2)} |"
    )


def report(res: dict[str, Any]) -> str:
    rows = [
        "| phase | ok | errors | per s | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("ceiling", "intents"):
        if name in res:
            r = res[name]
            rows.append(
                f"| {name} | {r['ok']} | {r['errors']} | {r['per_s']} | {r['p50_ms']} |"
                f" {r['p99_ms']} |"
            )
    if "webhooks" in res:
        w = res["webhooks"]
        rows.append(
            vegeta_row(f"bare Granian, the same requests (offered {w['rate']}/s)", w["bare"])
        )
        rows.append(vegeta_row(f"webhooks (offered {w['rate']}/s)", w))
    text = "\n".join(rows) + "\n\n"
    if "ratio_to_ceiling" in res.get("intents", {}):
        text += f"intents / stripe-mock ceiling: {res['intents']['ratio_to_ceiling']}\n"
    if "verify" in res:
        text += f"signature checks in-process: {res['verify']['per_s']}/s\n"
    if "stream" in res:
        st = res["stream"]
        text += (
            f"\nOrderPlaced -> PaymentRequested (offered {st['offered_per_s']}/s, {st['orders']}"
            f" orders): {st['requested']} requested, {st['requested_per_s']}/s; p50"
            f" {st['p50_ms']} ms, p99 {st['p99_ms']} ms, max {st['max_ms']} ms\n\n"
            "| part (stream) | CPU ms per order |\n|---|---|\n"
        )
        cpu = st["cpu_ms_per_order"]
        for part in sorted(cpu, key=lambda p: -cpu[p]):
            text += f"| {part} | {cpu[part]} |\n"
        text += f"| total | {round(sum(cpu.values()), 3)} |\n"
    if "applied" in res.get("webhooks", {}):
        a = res["webhooks"]["applied"]
        text += (
            f"webhooks applied by the payments service: inbox empty {a['drained_s']} s after the"
            f" run ({a['left_in_inbox']} left), {a['succeeded']} payments succeeded\n"
        )
    if "pipeline" in res:
        text += (
            "\n| consumer (OrderPlaced, in process) | orders | per s | CPU ms per order |"
            " CPU share |\n|---|---|---|---|---|\n"
        )
        for name, r in res["pipeline"].items():
            text += (
                f"| {name} | {r['orders']} | {r['per_s']} | {r['cpu_ms_per_order']} |"
                f" {r['cpu_share']} |\n"
            )
    return text


if __name__ == "__main__":
    sys.exit(main())
