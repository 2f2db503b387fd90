"""Cancelling the intent of an order whose hold ended unpaid (docs/payments.md, "An order that
ends unpaid"), on the real stack (PostgreSQL, stripe-mock): the sweeper cancels a closed
order's open intent once and folds the answer into the payment; a closed order without an
intent asks the provider nothing; while the provider is down the payment waits and the
service keeps sweeping; Stripe refusing the cancel because the intent moved on is an answer,
not an outage, and is not asked again; a success around the cancel is refunded exactly once.

stripe-mock is stateless (a cancel answers 200 whatever the intent), so the calls are
recorded (tests.test_payments_flow.Recording) and Stripe's refusals are answered by a small
server of Stripe's error bodies, behind the real SDK."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY

from nexuscart import config
from nexuscart.adapters.payments_provider import CancelResult
from nexuscart.adapters.payments_repo import OrderToPay
from nexuscart.adapters.payments_stripe import StripeProvider
from nexuscart.app.payments import Payments
from nexuscart.domain import payments as rules
from services.payments.bootstrap import sweep as service_sweep
from tests.test_payments_flow import (
    Recording,
    World,
    deliver,
    new_order,
    outbox_types,
    refund_rows,
    row,
    state_of,
    webhook_body,
    world,  # noqa: F401  (the fixture)
)


def cancels(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "nexuscart_payments_intent_cancels_total", {"outcome": outcome}
    )
    return value or 0.0


def settle(w: World) -> None:
    """Cancel what earlier tests left due, so that a pass sees this test's payments alone."""
    while w.run(w.payments.cancel_closed()):
        pass


def closed_with_intent(w: World) -> tuple[OrderToPay, str]:
    """An order whose intent was opened at stripe-mock, then whose hold ended (what earlier
    tests left due cancelled first); its intent."""
    settle(w)
    order = new_order()
    assert w.run(w.payments.request(order)) == "requested"
    assert w.run(w.payments.order_closed(order.user_id, order.order_id, None)) == "applied"
    r = w.run(row(w.pool, order))
    assert r is not None
    return order, str(r["provider_ref"])


def cancel_refused(w: World, order: OrderToPay) -> bool:
    r = w.run(row(w.pool, order))
    assert r is not None
    return bool(r["cancel_refused"])


def recording(w: World, api_base: str | None = None, **kw: Any) -> tuple[Recording, Payments]:
    s = w.settings.stripe
    if api_base is not None:
        s = config.StripeSettings(s.api_key, s.webhook_secret, api_base)
    provider = Recording(s, **kw)
    return provider, w.with_provider(provider)


@contextlib.asynccontextmanager
async def stripe_answering_cancels(status: int, error: dict[str, Any]) -> AsyncIterator[str]:
    """A server that answers every cancel with Stripe's error body ``error`` (the intent
    attached, as Stripe attaches it); its base address."""

    async def cancel(request: web.Request) -> web.Response:
        intent = {"id": request.match_info["intent"], "object": "payment_intent"}
        body = {"error": {**error, "payment_intent": {**intent, "status": "succeeded"}}}
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_post("/v1/payment_intents/{intent}/cancel", cancel)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


UNEXPECTED_STATE = {
    "type": "invalid_request_error",
    "code": "payment_intent_unexpected_state",
    "message": "You cannot cancel this PaymentIntent because it has a status of succeeded.",
}


# --- the open intent of a closed order is cancelled, once ----------------------------------


def test_a_closed_orders_open_intent_is_canceled_once_and_its_payment_says_so(
    world: World,  # noqa: F811
) -> None:
    order, ref = closed_with_intent(world)
    provider, payments = recording(world)
    before = cancels("canceled")
    assert world.run(payments.cancel_closed()) == 1
    assert world.run(payments.cancel_closed()) == 0  # a second pass: nothing left to cancel
    assert provider.cancels == [(ref, rules.cancel_key(order.order_id))]
    assert cancels("canceled") == before + 1
    assert state_of(world, order) == ("canceled", 0, 0, True)
    assert not cancel_refused(world, order)
    # the fold announced the end of the payment once, as Stripe's canceled webhook would
    assert world.run(outbox_types(world.pool, order)) == ["PaymentRequested", "PaymentFailed"]
    # which, when it comes, changes nothing more
    assert deliver(world, webhook_body("payment_intent.canceled", order)) == "applied"
    assert world.run(outbox_types(world.pool, order)).count("PaymentFailed") == 1


def test_sweepers_racing_over_a_closed_order_send_one_cancellation_key(
    world: World,  # noqa: F811
) -> None:
    order, ref = closed_with_intent(world)
    provider, payments = recording(world)

    async def three_at_once() -> None:
        await asyncio.gather(*(payments.cancel_closed() for _ in range(3)))

    world.run(three_at_once())
    # each racer may ask, always with the order's key: Stripe cancels once and answers the
    # others the same (stripe-mock ignores keys, so the key sent is what shows it)
    assert provider.cancels
    assert set(provider.cancels) == {(ref, rules.cancel_key(order.order_id))}
    assert state_of(world, order) == ("canceled", 0, 0, True)
    assert world.run(outbox_types(world.pool, order)) == ["PaymentRequested", "PaymentFailed"]


def test_a_closed_order_without_an_intent_asks_the_provider_nothing(
    world: World,  # noqa: F811
) -> None:
    settle(world)
    order = new_order()
    world.run(world.payments.order_closed(order.user_id, order.order_id, None))
    provider, payments = recording(world)
    assert world.run(payments.cancel_closed()) == 0
    assert provider.cancels == []
    assert (order.user_id, rules.payment_id(order.order_id)) not in world.run(
        world.payments.repo.cancel_due(10_000)
    )
    assert state_of(world, order) == ("pending", 0, 0, True)


# --- the provider down, or refusing ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_while_the_provider_is_down_the_payment_waits_and_the_service_keeps_sweeping(
    world: World,  # noqa: F811
) -> None:
    order, ref = closed_with_intent(world)
    down, payments = recording(
        world,
        f"http://127.0.0.1:{free_port()}",  # nothing listens: every attempt is refused
        attempts=2,
        breaker_threshold=2,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
    )
    before = cancels("unavailable")

    async def the_service_sweeping(seconds: float) -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(service_sweep(payments, stop))
        await asyncio.sleep(seconds)
        stop.set()
        await task  # ends when stopped, not before: no pass's error escaped the loop

    world.run(the_service_sweeping(1.6))
    assert len(down.cancels) >= 2  # asked again on later passes (then failing fast)
    assert set(down.cancels) == {(ref, rules.cancel_key(order.order_id))}
    assert down.breaker_state() == "opened"
    assert cancels("unavailable") - before == len(down.cancels)
    assert state_of(world, order) == ("pending", 0, 0, True)
    assert not cancel_refused(world, order)
    # Stripe back: the next pass cancels it, with the same key
    up, payments = recording(world)
    assert world.run(payments.cancel_closed()) == 1
    assert up.cancels == [(ref, rules.cancel_key(order.order_id))]
    assert state_of(world, order) == ("canceled", 0, 0, True)


def test_a_cancel_refused_for_another_reason_is_asked_again_next_pass(
    world: World,  # noqa: F811
) -> None:
    order, ref = closed_with_intent(world)
    missing = {"type": "invalid_request_error", "code": "resource_missing", "message": "No such"}
    before = cancels("refused")

    async def two_passes() -> Recording:
        async with stripe_answering_cancels(404, missing) as base:
            provider, payments = recording(world, base)
            assert await payments.cancel_closed() == 0
            assert await payments.cancel_closed() == 0
            return provider

    provider = world.run(two_passes())
    assert provider.cancels == [(ref, rules.cancel_key(order.order_id))] * 2
    assert provider.breaker_state() == "closed"  # a refusal says nothing about an outage
    assert cancels("refused") - before == 2
    assert state_of(world, order) == ("pending", 0, 0, True)
    assert not cancel_refused(world, order)
    settle(world)  # stripe-mock cancels it: nothing left due for the next tests
    assert state_of(world, order) == ("canceled", 0, 0, True)


# --- a success around the cancel is refunded exactly once ----------------------------------------


def refunded_once(w: World, order: OrderToPay) -> None:
    """The sweeper (three at once, then once more) refunds the late payment exactly once."""

    async def sweeps() -> None:
        await asyncio.gather(*(w.payments.sweep() for _ in range(3)))
        await w.payments.sweep()

    w.run(sweeps())
    refunds = w.run(refund_rows(w.pool, order))
    assert [(r["reason"], r["amount_cents"]) for r in refunds] == [("late", order.amount_cents)]
    assert refunds[0]["provider_ref"].startswith("re_")
    amount = order.amount_cents
    assert state_of(w, order) == ("succeeded", amount, amount, True)
    assert w.run(outbox_types(w.pool, order)).count("PaymentRefunded") == 1


def test_a_success_arriving_after_the_intent_was_canceled_is_refunded_exactly_once(
    world: World,  # noqa: F811
) -> None:
    order, ref = closed_with_intent(world)
    provider, payments = recording(world)
    assert world.run(payments.cancel_closed()) == 1
    assert state_of(world, order) == ("canceled", 0, 0, True)
    # the buyer's payment landed at Stripe just before the cancel; its webhook comes after
    assert deliver(world, webhook_body("payment_intent.succeeded", order)) == "applied"
    assert state_of(world, order) == ("succeeded", order.amount_cents, 0, True)
    refunded_once(world, order)
    assert world.run(payments.cancel_closed()) == 0
    assert provider.cancels == [(ref, rules.cancel_key(order.order_id))]


def test_stripe_refusing_the_cancel_of_a_succeeded_intent_is_an_answer_and_the_payment_refunded(
    world: World,  # noqa: F811
) -> None:
    order, ref = closed_with_intent(world)
    before = cancels("too_late")

    async def two_passes() -> Recording:
        async with stripe_answering_cancels(400, UNEXPECTED_STATE) as base:
            provider, payments = recording(world, base)
            assert await payments.cancel_closed() == 0
            assert await payments.cancel_closed() == 0  # recorded: not asked again
            return provider

    provider = world.run(two_passes())
    assert provider.cancels == [(ref, rules.cancel_key(order.order_id))]
    # not an outage: neither retried nor counted by the breaker
    assert provider.stats.attempts == {"cancel_intent": 1}
    assert provider.breaker_state() == "closed"
    assert cancels("too_late") - before == 1
    assert state_of(world, order) == ("pending", 0, 0, True)
    assert cancel_refused(world, order)
    assert world.run(outbox_types(world.pool, order)) == ["PaymentRequested"]  # nothing said
    # the intent's own webhook settles it: a late payment, refunded once
    assert deliver(world, webhook_body("payment_intent.succeeded", order)) == "applied"
    refunded_once(world, order)


async def test_the_stripe_adapter_answers_the_unexpected_state_refusal_with_the_intents_status(
    settings: config.Settings,
) -> None:
    s = settings.stripe
    async with stripe_answering_cancels(400, UNEXPECTED_STATE) as base:
        provider = StripeProvider(config.StripeSettings(s.api_key, s.webhook_secret, base))
        try:
            result = await provider.cancel_intent("pi_1", rules.cancel_key(1))
        finally:
            await provider.aclose()
    assert result == CancelResult(canceled=False, status="succeeded")
