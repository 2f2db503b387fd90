"""Composition root of the payments service: the orders.v1 consumer that opens payments,
the webhook loop (applies what the edge recorded in the webhook inbox), the sweeper (late
refunds; the intents of orders closed unpaid cancelled), the provider's counters in the
log; and the reconcile and demo-pay commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import msgspec
import stripe

from nexuscart import config, events, observability
from nexuscart.adapters import postgres, redis_conn
from nexuscart.adapters.payments_inbox import WebhookInbox
from nexuscart.adapters.payments_provider import ProviderUnavailable
from nexuscart.adapters.payments_repo import PaymentsRepo
from nexuscart.adapters.payments_stripe import LATENCY_BUCKETS, StripeProvider
from nexuscart.app.payments import Payments
from nexuscart.domain import payments as rules
from services.payments.inbox import WebhookApplier
from services.payments.reconcile import check
from services.runtime import consume, sleep_or_stop

log = logging.getLogger("nexuscart.payments")
# a late payment is refunded, and a closed order's intent cancelled, within about this long
SWEEP_EVERY_S = 0.5
STATS_EVERY_S = 10.0


def build(
    settings: config.Settings, pool: asyncpg.Pool, inbox: WebhookInbox | None = None
) -> tuple[Payments, StripeProvider]:
    async def pg() -> asyncpg.Pool:
        return pool

    provider = StripeProvider(settings.stripe)
    return Payments(PaymentsRepo(pg), provider, inbox=inbox), provider


async def sweep(payments: Payments, stop: asyncio.Event) -> None:
    passes: tuple[tuple[str, Callable[[], Awaitable[int]]], ...] = (
        ("refund", payments.sweep),
        ("cancel", payments.cancel_closed),
    )
    while not stop.is_set():
        for name, one_pass in passes:  # each guarded alone: one failing never stops the other
            try:
                await one_pass()
            except ProviderUnavailable as exc:
                log.warning("%s sweep waits for the provider: %s", name, exc)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("%s sweep failed, retrying: %r", name, exc)
            except Exception:
                # a bug must not stop the consumer beside it (nor crash-loop the service)
                log.exception("%s sweep failed; retrying", name)
        await sleep_or_stop(stop, SWEEP_EVERY_S)


async def report(provider: StripeProvider, stop: asyncio.Event) -> None:
    last = None
    while not stop.is_set():
        await sleep_or_stop(stop, STATS_EVERY_S)
        now = {"breaker": provider.breaker_state(), **provider.stats.summary()}
        if now != last:
            log.info("stripe calls: %s", json.dumps(now, sort_keys=True))
            last = now


async def main(stop: asyncio.Event) -> None:
    settings = config.load()
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)
    client = redis_conn.connect(settings.redis)
    inbox = WebhookInbox(client)
    payments, provider = build(settings, pool, inbox)
    unregister = observability.register(observability.PaymentsCollector(provider, LATENCY_BUCKETS))
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(
                WebhookApplier(payments, inbox, max_rate=settings.payments.webhook_apply_rate).run(
                    stop
                )
            )
            tasks.create_task(sweep(payments, stop))
            tasks.create_task(report(provider, stop))
            tasks.create_task(
                consume(
                    settings,
                    "payments",
                    [events.ORDERS_TOPIC],
                    payments.handle_order_events,
                    stop,
                )
            )
    finally:
        unregister()
        await provider.aclose()
        await client.aclose()
        await pool.close()


async def reconcile_main() -> int:
    """Print one JSON line per mismatch; exit 1 when there is any."""
    settings = config.load()
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)
    try:
        payments, _ = build(settings, pool)
        rows, refunds, paid = await payments.repo.reconcile_rows()
    finally:
        await pool.close()
    bad = check(rows, refunds, paid)
    for m in bad:
        sys.stdout.write(msgspec.json.encode(m).decode() + "\n")
    sys.stdout.write(f"payments={len(rows)} paid_orders={len(paid)} mismatches={len(bad)}\n")
    return 1 if bad else 0


def signed_webhook(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header of ``payload``, made as Stripe makes it."""
    return str(
        stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, timestamp)
    )


async def demo_pay_main(argv: Sequence[str]) -> int:
    """Local demo: confirm the order's intent with Stripe's test card, then deliver the
    ``payment_intent.succeeded`` webhook Stripe would send (stripe-mock sends none), signed
    with STRIPE_WEBHOOK_SECRET, to the edge. Refused outside NEXUSCART_ENV=dev/test."""
    ap = argparse.ArgumentParser(prog="python -m services.payments demo-pay")
    ap.add_argument("user_id", type=int)
    ap.add_argument("order_id", type=int)
    ap.add_argument("--edge", default="http://127.0.0.1:8000")
    args = ap.parse_args(argv)
    settings = config.load()
    if settings.app.environment == "prod":
        sys.stderr.write("demo-pay is for the local stack (NEXUSCART_ENV=dev)\n")
        return 2
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)
    try:
        payments, provider = build(settings, pool)
        pay = await payments.repo.get(args.user_id, rules.payment_id(args.order_id))
    finally:
        await pool.close()
    if pay is None or not pay.provider_ref:
        sys.stderr.write("no payment opened for that order yet (is services.payments running?)\n")
        return 1
    try:
        status = await provider.confirm_test(pay.provider_ref, "pm_card_visa")
    finally:
        await provider.aclose()
    body = json.dumps(
        {
            "id": f"evt_demo_{args.order_id}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": pay.provider_ref,
                    "object": "payment_intent",
                    "amount": pay.amount_cents,
                    "amount_received": pay.amount_cents,
                    "currency": pay.currency,
                    "metadata": {
                        "order_id": str(pay.order_id),
                        "user_id": str(pay.user_id),
                        "sale_id": "" if pay.sale_id is None else str(pay.sale_id),
                    },
                }
            },
        }
    ).encode()
    req = urllib.request.Request(
        args.edge.rstrip("/") + "/webhooks/stripe",
        data=body,
        headers={
            "content-type": "application/json",
            "stripe-signature": signed_webhook(body, settings.stripe.webhook_secret),
        },
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: ASYNC210 (a one-shot CLI)
        sys.stdout.write(f"confirm: {status}; webhook: {resp.status} {resp.read().decode()}\n")
    return 0
