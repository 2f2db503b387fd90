"""Payments on the real stack (PostgreSQL, stripe-mock, Kafka): one intent, one row, one
event per order across a kill -9 between the Stripe call and the outbox write; webhooks
delivered three times in any order converge; forged, stale, unknown and oversized webhooks
change nothing; a success after the hold ended is refunded exactly once; while stripe-mock
is down the breaker opens and orders wait, then every one is requested once; the events
reach Kafka through the payments outbox."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import msgspec
import pytest
import stripe
import uvloop
from aiokafka import AIOKafkaConsumer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools import devstack
from nexuscart import config, events
from nexuscart.adapters import kafka, postgres, redis_conn
from nexuscart.adapters.payments_inbox import WebhookInbox
from nexuscart.adapters.payments_provider import (
    CancelResult,
    Intent,
    IntentRequest,
    ProviderUnavailable,
)
from nexuscart.adapters.payments_repo import Change, OrderToPay, PaymentsRepo
from nexuscart.adapters.payments_stripe import StripeProvider
from nexuscart.app.errors import Refused
from nexuscart.app.payments import Payments
from nexuscart.domain import payments as rules
from services.outbox_relay.payments import PaymentsOutboxRelay
from services.payments.bootstrap import main as service_main
from services.payments.inbox import WebhookApplier
from tests.conftest import ROOT
from tests.envelopes import encode, envelope, placed_order
from tests.test_consumer_loop import Harness, _produce, _read_all, _until

T = TypeVar("T")


@dataclass
class World:
    runner: asyncio.Runner
    pool: asyncpg.Pool
    payments: Payments
    settings: config.Settings
    providers: list[StripeProvider]
    applier: WebhookApplier  # the service's webhook loop, on this module's own inbox

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def with_provider(self, provider: StripeProvider) -> Payments:
        self.providers.append(provider)
        return Payments(self.payments.repo, provider, self.settings.stripe.webhook_secret)


@pytest.fixture(scope="module")
def world(settings: config.Settings, migrated: None) -> Iterator[World]:
    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    pool = runner.run(postgres.create_pool(settings.postgres, timeout_s=10.0))

    async def pg() -> asyncpg.Pool:
        return pool

    provider = StripeProvider(settings.stripe)
    client = redis_conn.connect(settings.redis)
    inbox = WebhookInbox(client, stream=f"test:payments:webhooks:{uuid.uuid4().hex}".encode())
    secret = settings.stripe.webhook_secret
    payments = Payments(PaymentsRepo(pg), provider, secret, inbox=inbox)
    w = World(runner, pool, payments, settings, [provider], WebhookApplier(payments, inbox))
    try:
        yield w
    finally:
        for p in w.providers:
            runner.run(p.aclose())

        async def drop_inbox() -> None:
            await client.delete(inbox.stream, inbox.dead_stream)
            await client.aclose()

        runner.run(drop_inbox())
        runner.run(pool.close())
        runner.close()


_rng = random.SystemRandom()  # not the one hypothesis seeds: every example gets new ids


def new_order(amount: int = 2_500, sale_id: int | None = 7) -> OrderToPay:
    return OrderToPay(_rng.randrange(10**6, 10**12), _rng.getrandbits(50), sale_id, amount, "usd")


def webhook_body(
    kind: str,
    order: OrderToPay,
    *,
    event_id: str | None = None,
    amount: int | None = None,
    refunded: int = 0,
    metadata: dict[str, str] | None = None,
) -> bytes:
    amount = order.amount_cents if amount is None else amount
    obj: dict[str, Any] = {
        "id": "pi_test",
        "object": "charge" if kind.startswith("charge.") else "payment_intent",
        "amount": amount,
        "amount_received": amount if kind == "payment_intent.succeeded" else 0,
        "amount_captured": amount if kind.startswith("charge.") else 0,
        "amount_refunded": refunded,
        "currency": "usd",
        "metadata": metadata
        if metadata is not None
        else {
            "order_id": str(order.order_id),
            "user_id": str(order.user_id),
            "sale_id": str(order.sale_id or ""),
        },
    }
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "data": {"object": obj},
        }
    ).encode()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header, made as Stripe makes it (the SDK's helper)."""
    return str(stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp))


async def row(pool: asyncpg.Pool, order: OrderToPay) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT * FROM payments WHERE user_id = $1 AND payment_id = $2",
        order.user_id,
        rules.payment_id(order.order_id),
    )


async def outbox_types(pool: asyncpg.Pool, order: OrderToPay) -> list[str]:
    rows = await pool.fetch(
        "SELECT payload FROM payments_outbox WHERE user_id = $1 ORDER BY created_at",
        order.user_id,
    )
    return [events.decode(bytes(r["payload"])).type for r in rows]


async def refund_rows(pool: asyncpg.Pool, order: OrderToPay) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT * FROM payment_refunds WHERE user_id = $1 AND order_id = $2",
        order.user_id,
        order.order_id,
    )
    return rows


# --- one intent, one row, one event -------------------------------------------------------------


def test_an_order_event_delivered_twice_opens_one_intent_one_row_one_event(world: World) -> None:
    order = new_order()
    reserved = events.Envelope(
        id=uuid.uuid4(),
        type="StockReserved",
        version=1,
        occurred_at=datetime.now(UTC),
        key=str(order.user_id),
        data=events.StockReserved(
            order.order_id, 7, order.user_id, "SKU-1", 1, order.amount_cents, "usd", 0
        ),
    )
    world.run(world.payments.handle_order_events([reserved, reserved]))
    world.run(world.payments.handle_order_events([reserved]))
    r = world.run(row(world.pool, order))
    assert r is not None
    assert r["requested"]
    assert r["provider_ref"].startswith("pi_")
    assert r["client_secret"]
    assert r["status"] == "pending"
    assert world.run(outbox_types(world.pool, order)) == ["PaymentRequested"]


KILLED_SCRIPT = """
import asyncio, os, signal, sys
import asyncpg
from nexuscart import config
from nexuscart.adapters import postgres
from nexuscart.adapters.payments_repo import Change, OrderToPay, PaymentsRepo
from nexuscart.adapters.payments_stripe import StripeProvider
from nexuscart.app.payments import Payments

class DiesAfterTheCall(StripeProvider):
    async def create_intent(self, req):
        intent = await super().create_intent(req)
        print(req.idempotency_key, intent.ref, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # before the intent and its event are written

async def main():
    s = config.load()
    pool = await postgres.create_pool(s.postgres, timeout_s=10.0)
    async def pg():
        return pool
    order = OrderToPay(int(sys.argv[1]), int(sys.argv[2]), 7, 2500, "usd")
    await Payments(PaymentsRepo(pg), DiesAfterTheCall(s.stripe)).request(order)

asyncio.run(main())
"""


class Recording(StripeProvider):
    def __init__(self, s: config.StripeSettings, **kw: Any):
        super().__init__(s, **kw)
        self.keys: list[str] = []
        self.cancels: list[tuple[str, str]] = []  # (intent, idempotency key)

    async def create_intent(self, req: IntentRequest) -> Intent:
        self.keys.append(req.idempotency_key)
        return await super().create_intent(req)

    async def cancel_intent(self, ref: str, idempotency_key: str) -> CancelResult:
        self.cancels.append((ref, idempotency_key))
        return await super().cancel_intent(ref, idempotency_key)


def test_kill_9_between_the_stripe_call_and_the_outbox_write_leaves_one_row_and_one_event(
    world: World,
) -> None:
    order = new_order()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'py'}:{ROOT}"}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_SCRIPT, str(order.user_id), str(order.order_id)],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    key_before = proc.stdout.decode().split()[0]
    left = world.run(row(world.pool, order))
    assert left is not None
    assert not left["requested"]  # the row, no intent stored, no event
    assert world.run(outbox_types(world.pool, order)) == []
    # the restarted service gets the order event again
    provider = Recording(world.settings.stripe)
    again = world.with_provider(provider)
    assert world.run(again.request(order)) == "requested"
    assert world.run(again.request(order)) == "exists"
    # the same idempotency key as the killed call: Stripe answers the same intent
    assert provider.keys == [key_before] == [rules.intent_key(order.order_id)]
    count = world.run(
        world.pool.fetchval(
            "SELECT count(*) FROM payments WHERE user_id = $1 AND order_id = $2",
            order.user_id,
            order.order_id,
        )
    )
    assert count == 1
    assert world.run(outbox_types(world.pool, order)) == ["PaymentRequested"]


# --- webhooks -----------------------------------------------------------------------------------


def deliver(world: World, body: bytes, header: str | None = None) -> str:
    """The edge's answer, then the service's outcome for this event once it applied it."""
    sig = sign(body, world.settings.stripe.webhook_secret) if header is None else header
    answer = world.run(world.payments.receive_webhook(body, sig)).outcome
    if answer != "accepted":
        return answer
    applied = dict(world.run(world.applier.drain()))
    return applied[json.loads(body)["id"]]


def state_of(world: World, order: OrderToPay) -> tuple[Any, ...] | None:
    r = world.run(row(world.pool, order))
    if r is None:
        return None
    return (r["status"], r["captured_cents"], r["refunded_cents"], r["order_closed"])


SCENARIOS = [
    ["payment_intent.payment_failed", "payment_intent.succeeded"],
    ["payment_intent.succeeded", "charge.refunded"],
    ["payment_intent.payment_failed", "payment_intent.succeeded", "charge.refunded"],
    ["payment_intent.canceled"],
]


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=st.sampled_from(SCENARIOS), rnd=st.randoms(use_true_random=False))
def test_every_webhook_three_times_in_shuffled_order_converges_to_once_in_order(
    world: World, scenario: list[str], rnd: random.Random
) -> None:
    in_order, shuffled = new_order(), new_order()
    for o in (in_order, shuffled):
        world.run(world.payments.repo.open(o, "stripe"))
    bodies = {
        o.order_id: [
            webhook_body(
                k, o, event_id=f"evt_{o.order_id}_{i}", refunded=700 * (k == "charge.refunded")
            )
            for i, k in enumerate(scenario)
        ]
        for o in (in_order, shuffled)
    }
    for b in bodies[in_order.order_id]:
        assert deliver(world, b) == "applied"
    deliveries = bodies[shuffled.order_id] * 3
    rnd.shuffle(deliveries)
    outcomes = [deliver(world, b) for b in deliveries]
    assert outcomes.count("applied") == len(scenario)  # each event applied once
    assert state_of(world, shuffled) == state_of(world, in_order)
    # PaymentSucceeded at most once whatever the order (event ids derived from the payment)
    assert world.run(outbox_types(world.pool, shuffled)).count("PaymentSucceeded") <= 1


def test_bad_signatures_stale_timestamps_and_unknown_types_change_nothing(world: World) -> None:
    order = new_order()
    world.run(world.payments.repo.open(order, "stripe"))
    before = state_of(world, order)
    body = webhook_body("payment_intent.succeeded", order)
    secret = world.settings.stripe.webhook_secret
    for header in (
        "",  # none
        sign(body, "whsec_not_ours"),  # another secret
        sign(body + b" ", secret),  # signed another body
        sign(body, secret, int(time.time()) - 3600),  # an hour old: a replay
        "t=abc,v1=zz",  # garbage
    ):
        with pytest.raises(Refused) as err:
            deliver(world, body, header)
        assert err.value.status == 400
    assert deliver(world, webhook_body("customer.created", order)) == "ignored"
    assert deliver(world, webhook_body("payment_intent.succeeded", order, metadata={})) == "ignored"
    with pytest.raises(Refused):
        deliver(world, b'{"not": "an event"}')
    assert state_of(world, order) == before
    assert world.run(outbox_types(world.pool, order)) == []


def test_a_webhook_before_the_intent_was_stored_creates_the_payment_refundable_later(
    world: World,
) -> None:
    order = new_order()
    assert deliver(world, webhook_body("payment_intent.succeeded", order)) == "applied"
    assert state_of(world, order) == ("succeeded", order.amount_cents, 0, False)
    assert world.run(outbox_types(world.pool, order)) == ["PaymentSucceeded"]
    # and the hold had ended: the refund waits for the intent's id, which the order event's
    # redelivery stores (the same key: the same intent), then goes out once
    world.run(world.payments.order_closed(order.user_id, order.order_id, None))
    world.run(world.payments.sweep())
    assert world.run(refund_rows(world.pool, order)) == []
    assert world.run(world.payments.request(order)) == "requested"
    world.run(world.payments.sweep())
    world.run(world.payments.sweep())
    refunds = world.run(refund_rows(world.pool, order))
    assert [(r["reason"], r["amount_cents"]) for r in refunds] == [("late", order.amount_cents)]


# --- late success -> exactly one refund ----------------------------------------------------------


def test_a_success_after_the_hold_ended_is_refunded_exactly_once(world: World) -> None:
    order = new_order()
    assert world.run(world.payments.request(order)) == "requested"
    assert world.run(world.payments.order_closed(order.user_id, order.order_id, None)) == "applied"
    assert deliver(world, webhook_body("payment_intent.succeeded", order)) == "applied"

    async def sweeps() -> None:
        await asyncio.gather(*(world.payments.sweep() for _ in range(3)))
        await world.payments.sweep()

    world.run(sweeps())
    refunds = world.run(refund_rows(world.pool, order))
    assert [(r["reason"], r["amount_cents"]) for r in refunds] == [("late", order.amount_cents)]
    assert refunds[0]["provider_ref"].startswith("re_")
    assert state_of(world, order) == ("succeeded", order.amount_cents, order.amount_cents, True)
    types = world.run(outbox_types(world.pool, order))
    assert types.count("PaymentRefunded") == 1
    # the provider's own refund webhook, late and twice, changes nothing more
    refunded = webhook_body("charge.refunded", order, refunded=order.amount_cents)
    deliver(world, refunded)
    deliver(world, refunded)
    assert world.run(outbox_types(world.pool, order)).count("PaymentRefunded") == 1


def test_a_closed_order_never_opens_an_intent(world: World) -> None:
    order = new_order()
    world.run(world.payments.order_closed(order.user_id, order.order_id, None))
    provider = Recording(world.settings.stripe)
    assert world.run(world.with_provider(provider).request(order)) == "closed"
    assert provider.keys == []


# --- refunds never above the capture ------------------------------------------------------------


def test_partial_refunds_add_up_to_the_capture_at_most_and_repeat_by_key(world: World) -> None:
    order = new_order(amount=1_000)
    world.run(world.payments.request(order))
    deliver(world, webhook_body("payment_intent.succeeded", order))
    p = world.payments
    a = world.run(p.refund_request(order.user_id, order.order_id, 600, "admin", "k1", 1))
    assert (a.amount_cents, a.status) == (600, "accepted")
    again = world.run(p.refund_request(order.user_id, order.order_id, 600, "admin", "k1", 1))
    assert again == a  # the same key: the same refund, nothing sent twice
    with pytest.raises(Refused) as err:
        world.run(p.refund_request(order.user_id, order.order_id, 401, "admin", "k2", 1))
    assert err.value.status == 409

    async def race() -> list[Any]:
        return await asyncio.gather(
            *(p.refund_request(order.user_id, order.order_id, 300, "admin", f"r{i}", 1)
              for i in range(4)),
            return_exceptions=True,
        )  # fmt: skip

    results = world.run(race())
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert state_of(world, order) == ("succeeded", 1_000, 900, False)
    cancel = world.run(p.refund_request(order.user_id, order.order_id, None, "cancelled", "", 1))
    assert cancel.amount_cents == 100
    assert state_of(world, order) == ("succeeded", 1_000, 1_000, False)


# --- Stripe down: the breaker opens, orders wait, nothing twice ----------------------------------


def test_stripe_down_opens_the_breaker_orders_wait_then_each_is_requested_once(
    world: World, stack: devstack.Stack
) -> None:
    server = stack.servers.get("stripe")
    if server is None:
        pytest.skip("stripe-mock is external (STRIPE_API_BASE): the test cannot stop it")
    provider = Recording(
        world.settings.stripe,
        timeout_s=1.0,
        attempts=2,
        breaker_threshold=2,
        breaker_ttl_s=1.0,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
    )
    payments = world.with_provider(provider)
    orders = [new_order() for _ in range(6)]
    server.stop()
    try:
        failures = 0
        for o in orders:
            with pytest.raises(ProviderUnavailable):
                world.run(payments.request(o))
            failures += 1
        assert provider.breaker_state() == "opened"
        # failing fast: two calls reached the network (2 attempts each), the rest did not
        assert provider.stats.attempts["create_intent"] == 4
        assert provider.stats.outcomes[("create_intent", "unavailable")] == failures
    finally:
        server.start()
    time.sleep(1.1)  # the breaker's TTL: it lets one call through (half-open)
    for o in orders:
        assert world.run(payments.request(o)) == "requested"
        assert world.run(payments.request(o)) == "exists"
    assert provider.breaker_state() == "closed"
    for o in orders:
        r = world.run(row(world.pool, o))
        assert r is not None
        assert r["requested"]
        assert world.run(outbox_types(world.pool, o)) == ["PaymentRequested"]
    # one idempotency key per order, however many times it was tried
    assert {k for k in provider.keys} == {rules.intent_key(o.order_id) for o in orders}
    # then each order ends paid (the buyer paid) or released (its hold expired meanwhile)
    for i, o in enumerate(orders):
        if i % 2:
            world.run(payments.order_closed(o.user_id, o.order_id, None))
        else:
            deliver(world, webhook_body("payment_intent.succeeded", o))
    ends = [state_of(world, o) for o in orders]
    assert ends == [
        ("pending", 0, 0, True) if i % 2 else ("succeeded", o.amount_cents, 0, False)
        for i, o in enumerate(orders)
    ]


# --- the outbox reaches Kafka ----------------------------------------------------------------


def test_payment_events_reach_payments_v1_through_the_outbox_keyed_by_user(world: World) -> None:
    order = new_order()
    world.run(world.payments.request(order))
    deliver(world, webhook_body("payment_intent.succeeded", order))

    async def relay_and_read() -> list[events.Envelope]:
        s = world.settings
        await kafka.ensure_topics(s.kafka.bootstrap, [events.PAYMENTS_TOPIC])
        producer = kafka.producer(s.kafka, "test-payments-relay")
        await producer.start()
        try:
            relay = PaymentsOutboxRelay(world.payments.repo, producer)
            while await relay.run_once():
                pass
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            events.PAYMENTS_TOPIC,
            bootstrap_servers=s.kafka.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        seen: list[events.Envelope] = []
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline and len(seen) < 2:
                for recs in (await consumer.getmany(timeout_ms=500)).values():
                    for r in recs:
                        with contextlib.suppress(msgspec.DecodeError):
                            env = events.decode(r.value)
                            if env.data.user_id == order.user_id:
                                assert r.key == str(order.user_id).encode()
                                seen.append(env)
        finally:
            await consumer.stop()
        return seen

    seen = world.run(relay_and_read())
    assert [e.type for e in seen] == ["PaymentRequested", "PaymentSucceeded"]
    assert world.run(outbox_types(world.pool, order)) == []


# --- the service on orders.v1 ----------------------------------------------------------------


def test_the_service_opens_payments_for_reservations_and_cancels_the_intents_of_released_orders(
    world: World,
) -> None:
    paid, released = new_order(), new_order()

    def reserved(o: OrderToPay) -> events.Envelope:
        return events.Envelope(
            id=uuid.uuid4(),
            type="StockReserved",
            version=1,
            occurred_at=datetime.now(UTC),
            key=str(o.user_id),
            data=events.StockReserved(
                o.order_id, 7, o.user_id, "SKU-1", 1, o.amount_cents, "usd", 0
            ),
        )

    gone = events.Envelope(
        id=uuid.uuid4(),
        type="StockReleased",
        version=1,
        occurred_at=datetime.now(UTC),
        key=str(released.user_id),
        data=events.StockReleased(released.order_id, 7, released.user_id, 1, "expired"),
    )
    enc = msgspec.json.Encoder()

    async def scenario() -> None:
        s = world.settings
        await kafka.ensure_topics(s.kafka.bootstrap, [events.ORDERS_TOPIC])
        producer = kafka.producer(s.kafka, "test-payments-orders")
        await producer.start()
        try:
            for env in (reserved(paid), reserved(released), gone, reserved(paid)):
                await producer.send_and_wait(
                    events.ORDERS_TOPIC, enc.encode(env), key=env.key.encode()
                )
        finally:
            await producer.stop()
        stop = asyncio.Event()
        # the service as python -m services.payments runs it (consumer, sweeper, counters)
        task = asyncio.ensure_future(service_main(stop))
        deadline = time.monotonic() + 90
        try:
            while time.monotonic() < deadline and not task.done():
                a, b = await row(world.pool, paid), await row(world.pool, released)
                # the released order's intent is cancelled by the service's sweeper
                if a is not None and a["requested"] and b is not None and b["status"] == "canceled":
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await task

    world.run(scenario())
    assert world.run(outbox_types(world.pool, paid)) == ["PaymentRequested"]  # once, not twice
    assert world.run(outbox_types(world.pool, released)) == ["PaymentRequested", "PaymentFailed"]
    assert state_of(world, released) == ("canceled", 0, 0, True)


def test_a_poison_order_in_a_batch_is_dead_lettered_alone_and_the_others_requested_once(
    world: World,
) -> None:
    # the batch's payment rows go in with one statement: the poison (a negative total, which
    # the amount check refuses) fails it for all, and the loop's halving must still apply
    # every healthy order, once, and park only the poison
    healthy = [new_order(sale_id=None) for _ in range(12)]
    poison = new_order(sale_id=None)
    envs = [
        envelope(placed_order(o.user_id, o.order_id, currency="usd"), o.user_id) for o in healthy
    ]
    bad = placed_order(poison.user_id, poison.order_id, currency="usd")
    envs.insert(5, envelope(msgspec.structs.replace(bad, total_minor=-1), poison.user_id))
    topic = f"test.payments.{uuid.uuid4().hex[:8]}"

    async def scenario() -> int:
        async with Harness(world.settings, world.pool, topic) as h:
            h.loop.handle = world.payments.handle_order_events
            await _produce(world.settings, topic, [(e.key.encode(), encode(e)) for e in envs])

            async def settled() -> bool:
                rows = [await row(world.pool, o) for o in healthy]
                return all(r is not None and r["requested"] for r in rows) and bool(
                    h.loop.dead_lettered
                )

            await _until(settled)
            dead = await _read_all(world.settings, events.dead_letter_topic(topic), 1)
            assert [r.value for r in dead] == [encode(envs[5])]
            return h.loop.dead_lettered

    assert world.run(scenario()) == 1
    for o in healthy:
        assert world.run(outbox_types(world.pool, o)) == ["PaymentRequested"]
    assert world.run(row(world.pool, poison)) is None


# --- webhooks of one tick share one commit ---------------------------------------------------


def test_concurrent_webhooks_are_recorded_and_applied_once_each_in_one_batch(
    world: World,
) -> None:
    orders = [new_order() for _ in range(3)]
    kinds = ["payment_intent.payment_failed", "payment_intent.succeeded", "charge.refunded"]
    bodies = [
        webhook_body(k, o, event_id=f"evt_{o.order_id}_{i}", refunded=300 * (i == 2))
        for o in orders
        for i, k in enumerate(kinds)
    ]
    deliveries = bodies * 3
    _rng.shuffle(deliveries)
    secret = world.settings.stripe.webhook_secret

    async def all_at_once() -> list[str]:
        outs = await asyncio.gather(
            *(world.payments.receive_webhook(b, sign(b, secret)) for b in deliveries)
        )
        return [o.outcome for o in outs]

    assert world.run(all_at_once()) == ["accepted"] * len(deliveries)
    outcomes = [o for _, o in world.run(world.applier.run_once())]  # one read, one batch
    assert len(outcomes) == len(deliveries)
    assert outcomes.count("applied") == len(bodies)
    assert outcomes.count("duplicate") == 2 * len(bodies)
    for o in orders:
        assert state_of(world, o) == ("succeeded", o.amount_cents, 300, False)
        assert world.run(outbox_types(world.pool, o)).count("PaymentSucceeded") == 1


def test_a_change_the_database_refuses_fails_alone_in_its_batch(world: World) -> None:
    good, bad = new_order(), new_order()
    changes = [
        Change(
            good.user_id,
            rules.payment_id(good.order_id),
            (rules.Fact("succeeded", 100),),
            good,
            ("evt_good_" + uuid.uuid4().hex, "payment_intent.succeeded"),
        ),
        Change(  # a negative amount: the table's CHECK refuses the row
            bad.user_id,
            rules.payment_id(bad.order_id),
            (rules.Fact("succeeded", 100),),
            bad._replace(amount_cents=-1),
            ("evt_bad_" + uuid.uuid4().hex, "payment_intent.succeeded"),
        ),
    ]
    results = world.run(world.payments.repo.apply_many(changes))
    assert results[0][0] == "applied"
    assert isinstance(results[1], asyncpg.CheckViolationError)
    assert state_of(world, good) == ("succeeded", 100, 0, False)
    assert state_of(world, bad) is None


def test_webhooks_racing_to_create_the_same_payment_both_apply_on_one_row(world: World) -> None:
    # Both transactions miss the row; one inserts it, the other's insert waits for that commit,
    # finds the row there (ON CONFLICT) and locks it instead: both facts land on one row.
    orders = [new_order() for _ in range(20)]

    def change(o: OrderToPay, fact: rules.Fact, kind: str) -> Change:
        return Change(
            o.user_id, rules.payment_id(o.order_id), (fact,), o, (f"evt_{uuid.uuid4().hex}", kind)
        )

    async def race() -> list[Any]:
        out: list[Any] = await asyncio.gather(
            *(
                world.payments.repo.apply_many([c])
                for o in orders
                for c in (
                    change(o, rules.Fact("succeeded", o.amount_cents), "payment_intent.succeeded"),
                    change(o, rules.Fact("refunded", 300), "charge.refunded"),
                )
            )
        )
        return out

    results = world.run(race())
    assert [r[0][0] for r in results] == ["applied"] * 40
    for o in orders:
        assert state_of(world, o) == ("succeeded", o.amount_cents, 300, False)


def _webhook_changes(
    orders: list[OrderToPay], kind: str, fact: Callable[[OrderToPay], rules.Fact]
) -> list[Change]:
    return [
        Change(
            o.user_id,
            rules.payment_id(o.order_id),
            (fact(o),),
            o,
            (f"evt_{kind}_{o.order_id}", kind),
        )
        for o in orders
    ]


async def _apply_together(repo: PaymentsRepo, *batches: list[Change]) -> list[Any]:
    out: list[Any] = await asyncio.gather(*(repo.apply_many(b) for b in batches))
    return out


def test_webhook_batches_racing_over_the_same_new_payments_apply_every_fact_once(
    world: World,
) -> None:
    # Set-based batches (PaymentsRepo._apply_webhooks_in): each inserts the rows it misses;
    # the later one finds them there and locks them instead, or, when the two lock in
    # opposite orders, PostgreSQL aborts one and its changes are applied one by one.
    for _ in range(5):
        orders = [new_order() for _ in range(10)]
        succeeded = _webhook_changes(
            orders, "payment_intent.succeeded", lambda o: rules.Fact("succeeded", o.amount_cents)
        )
        refunded = _webhook_changes(
            orders, "charge.refunded", lambda o: rules.Fact("refunded", 300)
        )
        repeat = succeeded[:3]  # Stripe delivering again, inside a racing batch
        first, second = world.run(
            _apply_together(world.payments.repo, succeeded, [*refunded, *repeat])
        )
        outcomes = [r[0] for r in first] + [r[0] for r in second]
        assert outcomes.count("applied") == 20
        assert outcomes.count("duplicate") == 3
        for o in orders:
            assert state_of(world, o) == ("succeeded", o.amount_cents, 300, False)
            types = world.run(outbox_types(world.pool, o))
            assert types.count("PaymentSucceeded") == 1
            assert len(types) == len(set(types)), types
