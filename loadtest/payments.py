"""Payments load run on loopback (127.0.0.1 only), every phase bounded in time, on a stack of
its own (Redis, PostgreSQL, Kafka, stripe-mock started by devtools/devstack.py unless the
environment names them):

  1. ceiling   stripe-mock alone: raw POST /v1/payment_intents from --concurrency aiohttp
               clients for --seconds (what the mock serves on this machine)
  2. intents   the payments use case (app/payments.Payments.request: the SDK's async client
               through retries + breaker, the payment row, PaymentRequested in the outbox)
               for new orders, the same concurrency: intents/s, and its ratio to 1.
  3. verify    the webhook signature check alone, in-process (the SDK's verifier): checks/s
  4. webhooks  POST /webhooks/stripe on the edge under Granian (--workers), open loop
               (vegeta) at --webhook-rate/s, every request a distinct payment_intent.succeeded
               signed up front (verified, deduplicated, applied, PaymentSucceeded in the
               outbox): answered 2xx/s, p50/p99.
  5. pipeline  CPU per order of the two consumers behind checkout, in this process:
               --orders encoded OrderPlaced records (3 lines, distinct users) decoded and fed
               in consumer batches of --batch to the payments service's handler (intent at
               stripe-mock, row, PaymentRequested) and then to the orders projector; process
               CPU ms per order (time.process_time: stripe-mock's and PostgreSQL's CPU are
               not in it) and orders/s of each.

Not measured here: OrderPlaced -> PaymentRequested latency under a 2,000 orders/s stream
(it needs the purchase storm, the relay and the service together; see docs/payments.md).

Usage: scripts/bench payments [--seconds 10] [--concurrency 32] [--workers 2]
                              [--webhook-rate 2000] [--orders 5000] [--batch 500]
                              [--phases ceiling,intents,verify,webhooks,pipeline]
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
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import stripe
import uvloop

from devtools import devstack
from loadtest.storm import save_report, vegeta
from nexuscart import config, events
from nexuscart.adapters import postgres
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
        edge = devstack.GranianServer("edge.app:app", {}, workers=args.workers, cwd=ROOT)
        try:
            # open loop (vegeta): every request a distinct event, signed up front (valid for
            # 300 s, longer than any bounded run), so the client does no HMAC while it sends
            n = args.webhook_rate * int(args.seconds)
            targets = Path(tempfile.mkdtemp(prefix="nexuscart-bench-")) / "webhooks.jsonl"
            with targets.open("w") as f:
                for _ in range(n):
                    b = succeeded_body(new_order())
                    f.write(
                        json.dumps(
                            {
                                "method": "POST",
                                "url": f"{edge.url}/webhooks/stripe",
                                "body": base64.b64encode(b).decode(),
                                "header": {
                                    "Stripe-Signature": [sign(b, secret)],
                                    "Content-Type": ["application/json"],
                                },
                            }
                        )
                        + "\n"
                    )
            out["webhooks"] = vegeta(targets, args.webhook_rate, int(args.seconds))
        finally:
            edge.stop()
    return out


PHASES = ("ceiling", "intents", "verify", "webhooks", "pipeline")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--webhook-rate", type=int, default=2000, help="signed events/s offered")
    ap.add_argument("--orders", type=int, default=5000, help="OrderPlaced records (pipeline)")
    ap.add_argument("--batch", type=int, default=500, help="records per consumer batch")
    ap.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset")
    args = ap.parse_args()
    args.webhook_rate = max(1, min(args.webhook_rate, 10_000))
    args.seconds = max(0.5, min(args.seconds, 120.0))  # bounded
    args.concurrency = max(1, min(args.concurrency, 256))
    args.orders = max(1, min(args.orders, 100_000))
    args.batch = max(1, min(args.batch, 2_000))  # ConsumerLoop's max_records
    args.phases = [p for p in args.phases.split(",") if p in PHASES]
    # the edge (webhooks) needs Redis and Kafka too; the other phases PostgreSQL + stripe-mock
    parts = tuple(devstack.PARTS) if "webhooks" in args.phases else ("postgres", "stripe")
    stack = devstack.start_stack(parts=parts)
    try:
        os.environ.update({**config.dev_defaults(), **stack.env})
        # config requires them; no phase but webhooks (whole stack) connects to them
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
            f"| webhooks (offered {w['rate']}/s) | {w['status_codes'].get('200', 0)} |"
            f" {w['requests'] - w['status_codes'].get('200', 0)} | {round(w['throughput'], 1)} |"
            f" {round(w['p50_ms'], 2)} | {round(w['p99_ms'], 2)} |"
        )
    text = "\n".join(rows) + "\n\n"
    if "ratio_to_ceiling" in res.get("intents", {}):
        text += f"intents / stripe-mock ceiling: {res['intents']['ratio_to_ceiling']}\n"
    if "verify" in res:
        text += f"signature checks in-process: {res['verify']['per_s']}/s\n"
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
