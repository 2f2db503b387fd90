"""The webhook inbox on the real stack (Redis, PostgreSQL): the edge's answer means the event
is recorded; the payments service applies every recorded event once, moves what can never
apply to the dead-letter stream without stopping, keeps everything through a database
failure, and takes over what a dead consumer held. (Kill -9 of the payments service in the
middle of webhooks: tests/test_orders_flow.py.)"""

from __future__ import annotations

import time
import uuid
from typing import cast

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from nexuscart.adapters import redis_conn
from nexuscart.adapters.payments_inbox import GROUP, WebhookInbox
from nexuscart.adapters.payments_repo import Change, OrderToPay, PaymentsRepo
from nexuscart.app.errors import Unavailable
from nexuscart.app.payments import Payments
from nexuscart.domain import payments as rules
from services.payments.inbox import WebhookApplier, pause_s
from tests.test_payments_flow import (
    World,
    new_order,
    sign,
    state_of,
    webhook_body,
    world,  # noqa: F401  (the fixture)
)


def accept(w: World, kind: str = "payment_intent.succeeded") -> tuple[str, OrderToPay]:
    """A new order's signed webhook, recorded in the world's inbox: (event id, its order)."""
    order = new_order()
    event_id = f"evt_{uuid.uuid4().hex}"
    body = webhook_body(kind, order, event_id=event_id)
    sig = sign(body, w.settings.stripe.webhook_secret)
    assert w.run(w.payments.receive_webhook(body, sig)).outcome == "accepted"
    return event_id, order


async def dead_letters(inbox: WebhookInbox) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return cast(
        list[tuple[bytes, dict[bytes, bytes]]], await inbox.client.xrange(inbox.dead_stream)
    )


async def add_raw(inbox: WebhookInbox, raw: bytes) -> bytes:
    """An entry written as the edge never would: bytes that are not an encoded change."""
    return cast(bytes, await inbox.client.xadd(inbox.stream, {"c": raw}))


def applied(outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("nexuscart_payments_webhooks_applied_total", {"outcome": outcome})
        or 0.0
    )


def test_an_entry_that_does_not_decode_is_dead_lettered_and_the_rest_apply(
    world: World,  # noqa: F811
) -> None:
    inbox = world.payments.inbox
    assert inbox is not None
    first, order = accept(world)
    poison = world.run(add_raw(inbox, b"\xc1 not msgpack"))
    last, _ = accept(world)
    dead_before = applied("dead")
    outcomes = world.run(world.applier.drain())
    assert sorted(outcomes) == sorted(
        [(first, "applied"), (last, "applied"), (poison.decode(), "dead")]
    )
    assert state_of(world, order) == ("succeeded", order.amount_cents, 0, False)
    assert world.run(inbox.backlog()) == 0
    dead = world.run(dead_letters(inbox))
    assert [(f[b"c"], f[b"entry"], f[b"reason"]) for _, f in dead][-1] == (
        b"\xc1 not msgpack",
        poison,
        b"not a webhook change",
    )
    assert applied("dead") == dead_before + 1


def test_an_entry_the_database_refuses_is_dead_lettered_alone(
    world: World,  # noqa: F811
) -> None:
    inbox = world.payments.inbox
    assert inbox is not None
    good, bad = new_order(), new_order()
    bad_id = f"evt_{uuid.uuid4().hex}"
    change = Change(  # a negative amount: the table's CHECK refuses the row
        bad.user_id,
        rules.payment_id(bad.order_id),
        (rules.Fact("succeeded", 100),),
        bad._replace(amount_cents=-1),
        (bad_id, "payment_intent.succeeded"),
    )
    world.run(inbox.add(change))
    good_id = f"evt_{uuid.uuid4().hex}"
    body = webhook_body("payment_intent.succeeded", good, event_id=good_id)
    world.run(
        world.payments.receive_webhook(body, sign(body, world.settings.stripe.webhook_secret))
    )
    assert sorted(world.run(world.applier.drain())) == sorted(
        [(bad_id, "dead"), (good_id, "applied")]
    )
    assert state_of(world, good) == ("succeeded", good.amount_cents, 0, False)
    assert state_of(world, bad) is None
    reasons = [f[b"reason"] for _, f in world.run(dead_letters(inbox))]
    assert reasons[-1].startswith(b"refused by the database: CheckViolationError")


def test_while_the_database_is_down_every_entry_stays_and_applies_once_it_is_back(
    world: World,  # noqa: F811
) -> None:
    inbox = world.payments.inbox
    assert inbox is not None

    async def down() -> asyncpg.Pool:
        raise ConnectionRefusedError("postgres down")

    broken = Payments(PaymentsRepo(down), world.payments.provider, inbox=inbox)
    applier = WebhookApplier(broken, inbox, consumer=f"test-{uuid.uuid4().hex}")
    events = [accept(world)[0] for _ in range(3)]
    with pytest.raises(ConnectionRefusedError):
        world.run(applier.run_once(wait=False))
    assert world.run(inbox.backlog()) == 3  # nothing dropped, nothing dead
    applier.payments = world.payments  # the database is back
    assert world.run(applier.drain()) == [(e, "applied") for e in events]
    assert world.run(inbox.backlog()) == 0


def test_entries_a_dead_consumer_held_are_taken_over(
    world: World,  # noqa: F811
) -> None:
    inbox = world.payments.inbox
    assert inbox is not None
    events = [accept(world)[0] for _ in range(5)]
    world.run(inbox.join())
    # a service read them, then died before its transaction committed
    assert len(world.run(inbox.read("died", 100))) == 5
    successor = WebhookApplier(world.payments, inbox, claim_idle_ms=100)
    assert world.run(successor.drain()) == []  # not idle long enough yet: still the dead one's
    time.sleep(0.2)
    successor._next_claim = 0.0  # due now (every claim_every_s otherwise)
    assert world.run(successor.drain()) == [(e, "applied") for e in events]
    assert world.run(inbox.backlog()) == 0


def test_consumers_of_services_gone_are_deleted_once_they_hold_nothing(
    world: World,  # noqa: F811
) -> None:
    inbox = world.payments.inbox
    assert inbox is not None
    world.run(inbox.join())
    event = accept(world)[0]
    assert len(world.run(inbox.read("gone-holding", 10))) == 1  # died holding an entry
    world.run(inbox.read("gone-empty", 10))  # died holding nothing
    successor = WebhookApplier(world.payments, inbox, claim_idle_ms=100)
    time.sleep(0.2)

    async def names() -> set[str]:
        infos = await inbox.client.xinfo_consumers(inbox.stream, GROUP)
        return {i["name"].decode() for i in infos}

    assert world.run(successor.drain()) == [(event, "applied")]  # taken over, then dropped
    left = world.run(names())
    assert "gone-empty" not in left
    assert "gone-holding" not in left  # its entry was claimed first: it held nothing then


def test_a_full_inbox_refuses_the_webhook_and_records_nothing(
    world: World,  # noqa: F811
) -> None:
    client = redis_conn.connect(world.settings.redis)
    inbox = WebhookInbox(
        client, stream=f"test:inbox:full:{uuid.uuid4().hex}".encode(), max_backlog=1
    )
    payments = Payments(world.payments.repo, world.payments.provider, "s", inbox=inbox)
    bodies = [webhook_body("payment_intent.succeeded", new_order()) for _ in range(2)]

    async def deliver_both() -> None:
        try:
            assert (
                await payments.receive_webhook(bodies[0], sign(bodies[0], "s"))
            ).outcome == "accepted"
            with pytest.raises(Unavailable):
                await payments.receive_webhook(bodies[1], sign(bodies[1], "s"))
            assert await inbox.backlog() == 1
        finally:
            await client.delete(inbox.stream)
            await client.aclose()

    world.run(deliver_both())


@given(
    applied=st.integers(0, 5_000),
    took_s=st.floats(0, 10, allow_nan=False),
    rate=st.floats(1, 100_000, allow_nan=False),
)
def test_the_applier_never_applies_faster_than_its_rate_and_never_waits_when_unpaced(
    applied: int, took_s: float, rate: float
) -> None:
    pause = pause_s(applied, took_s, rate)
    assert pause >= 0
    assert (took_s + pause) * rate >= applied * (1 - 1e-9)  # the batch took its share
    if took_s * rate >= applied:
        assert pause == 0  # already slower than the rate: no wait on top
    assert pause_s(applied, took_s, 0) == 0
