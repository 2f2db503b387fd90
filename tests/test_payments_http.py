"""Payments over HTTP: a real edge (Granian) on the real stack. The webhook is public and
its signature is the credential (forged, stale, oversized and non-event bodies are refused
with problem+json and change nothing; duplicates answer 2xx again); a buyer sees their own
order's payment (another buyer's is 404); admins refund in part with an Idempotency-Key,
never above the capture; a buyer cancels a paid order and gets everything back once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import stripe

from nexuscart import auth, config
from nexuscart.adapters import postgres, redis_conn
from nexuscart.adapters.payments_inbox import WebhookInbox
from nexuscart.adapters.payments_repo import OrderToPay, PaymentsRepo
from nexuscart.adapters.payments_stripe import StripeProvider
from nexuscart.app.payments import Payments
from services.payments.bootstrap import demo_pay_main
from services.payments.inbox import WebhookApplier
from tests.conftest import EdgeServer

SECRET = config.dev_defaults()["JWT_SECRET"]
WEBHOOK_SECRET = config.dev_defaults()["STRIPE_WEBHOOK_SECRET"]
_rng = random.SystemRandom()


def bearer(user_id: int, *roles: str) -> dict[str, str]:
    return {"authorization": f"Bearer {auth.issue(SECRET, user_id, roles=roles)}"}


def succeeded(order: OrderToPay, event_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": "pi_x",
                    "object": "payment_intent",
                    "amount": order.amount_cents,
                    "amount_received": order.amount_cents,
                    "currency": "usd",
                    "metadata": {"order_id": str(order.order_id), "user_id": str(order.user_id)},
                }
            },
        }
    ).encode()


def signed(body: bytes, secret: str = WEBHOOK_SECRET, ts: int | None = None) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, ts)
    return {"stripe-signature": str(header), "content-type": "application/json"}


@contextlib.asynccontextmanager
async def service_payments(settings: config.Settings) -> AsyncIterator[Payments]:
    """The payments use cases as the payments service builds them (the default inbox)."""
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)
    client = redis_conn.connect(settings.redis)

    async def pg() -> asyncpg.Pool:
        return pool

    provider = StripeProvider(settings.stripe)
    try:
        yield Payments(PaymentsRepo(pg), provider, inbox=WebhookInbox(client))
    finally:
        await provider.aclose()
        await client.aclose()
        await pool.close()


def open_payment(settings: config.Settings, order: OrderToPay) -> None:
    """What the payments service does for an order event: the intent with stripe-mock."""

    async def run() -> None:
        async with service_payments(settings) as payments:
            await payments.request(order)

    asyncio.run(run())


def apply_webhooks(settings: config.Settings) -> list[tuple[str, str]]:
    """What the payments service does with the webhooks the edge recorded: apply them (event
    id, outcome)."""

    async def run() -> list[tuple[str, str]]:
        async with service_payments(settings) as payments:
            assert payments.inbox is not None
            return await WebhookApplier(payments, payments.inbox).drain()

    return asyncio.run(run())


def new_order(amount: int = 1_000) -> OrderToPay:
    return OrderToPay(_rng.randrange(10**6, 10**12), _rng.getrandbits(50), None, amount, "usd")


def test_the_webhook_refuses_forgeries_and_applies_a_signed_event_once(
    edge: EdgeServer, settings: config.Settings
) -> None:
    order = new_order()
    open_payment(settings, order)
    body = succeeded(order, f"evt_{uuid.uuid4().hex}")
    url = f"{edge.url}/webhooks/stripe"
    with httpx.Client(timeout=10) as c:
        for headers in (
            {"content-type": "application/json"},  # unsigned
            signed(body, "whsec_someone_else"),
            signed(body, ts=int(time.time()) - 3600),  # stale: a replay
        ):
            r = c.post(url, content=body, headers=headers)
            assert r.status_code == 400, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["type"] == "/problems/webhook-signature-invalid"
        big = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
        r = c.post(url, content=big, headers=signed(big))
        assert r.status_code == 413
        r = c.post(url, content=b"[1, 2]", headers=signed(b"[1, 2]"))
        assert r.status_code == 400
        view = c.get(
            f"{edge.url}/orders/{order.order_id}/payment", headers=bearer(order.user_id, "customer")
        )
        assert view.json()["status"] == "pending"
        first = c.post(url, content=body, headers=signed(body))
        again = c.post(url, content=body, headers=signed(body))
        assert (first.status_code, first.json()["outcome"]) == (200, "accepted")
        assert (again.status_code, again.json()["outcome"]) == (200, "accepted")
        unknown = body.replace(b"payment_intent.succeeded", b"customer.created")
        r = c.post(url, content=unknown, headers=signed(unknown))
        assert (r.status_code, r.json()["outcome"]) == (200, "ignored")
        # the payments service applies the event once; its repeat is a duplicate
        mine = [o for e, o in apply_webhooks(settings) if e == json.loads(body)["id"]]
        assert mine == ["applied", "duplicate"]
        view = c.get(
            f"{edge.url}/orders/{order.order_id}/payment", headers=bearer(order.user_id, "customer")
        )
        assert view.status_code == 200
        got: dict[str, Any] = view.json()
        assert (got["status"], got["captured_cents"], got["order_id"]) == (
            "succeeded",
            order.amount_cents,
            order.order_id,
        )
        assert got["client_secret"]
        other = c.get(
            f"{edge.url}/orders/{order.order_id}/payment",
            headers=bearer(order.user_id + 1, "customer"),
        )
        assert other.status_code == 404
        # the outcomes are counted on /metrics (workers publish theirs every second)
        want = ('outcome="accepted"', 'outcome="ignored"', 'outcome="webhook-signature-invalid"')
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = c.get(f"{edge.url}/metrics").text
            lines = [ln for ln in text.splitlines() if ln.startswith("nexuscart_payments_webhooks")]
            if all(any(w in ln for ln in lines) for w in want):
                break
            time.sleep(0.2)
        assert all(any(w in ln for ln in lines) for w in want), lines


def test_admin_partial_refunds_stop_at_the_capture_and_a_buyer_cancels_the_rest(
    edge: EdgeServer, settings: config.Settings
) -> None:
    order = new_order(amount=1_000)
    open_payment(settings, order)
    body = succeeded(order)
    admin = {**bearer(1, "admin"), "idempotency-key": "refund-1"}
    refunds = f"{edge.url}/admin/orders/{order.order_id}/refunds"
    with httpx.Client(timeout=10) as c:
        assert c.post(f"{edge.url}/webhooks/stripe", content=body, headers=signed(body)).is_success
        apply_webhooks(settings)  # as the payments service does
        spec = {"user_id": order.user_id, "amount_cents": 700}
        r = c.post(refunds, json=spec, headers=admin)
        assert r.status_code == 201, r.text
        assert (r.json()["amount_cents"], r.json()["status"]) == (700, "accepted")
        assert c.post(refunds, json=spec, headers=admin).json() == r.json()  # same key
        over = c.post(refunds, json=spec, headers={**admin, "idempotency-key": "refund-2"})
        assert over.status_code == 409
        assert over.json()["type"] == "/problems/refund-refused"
        bad = c.post(refunds, json={"user_id": order.user_id, "amount_cents": 0}, headers=admin)
        assert bad.status_code == 422
        assert c.post(refunds, json=spec, headers=bearer(2, "customer")).status_code == 403
        cancel = f"{edge.url}/orders/{order.order_id}/cancel"
        buyer = {**bearer(order.user_id, "customer"), "idempotency-key": "c1"}
        r = c.post(cancel, headers=buyer)
        assert r.status_code == 201, r.text
        assert r.json()["amount_cents"] == 300
        again = c.post(cancel, headers={**buyer, "idempotency-key": "c2"})
        assert again.json() == r.json()  # once per order, whatever the key
        view = c.get(
            f"{edge.url}/orders/{order.order_id}/payment", headers=bearer(order.user_id, "customer")
        )
        assert view.json()["refunded_cents"] == 1_000


def test_demo_pay_confirms_with_the_test_card_and_delivers_the_signed_webhook(
    edge: EdgeServer, settings: config.Settings
) -> None:
    order = new_order(amount=4_200)
    open_payment(settings, order)
    argv = [str(order.user_id), str(order.order_id), "--edge", edge.url]
    assert asyncio.run(demo_pay_main(argv)) == 0
    apply_webhooks(settings)  # as the payments service does
    with httpx.Client(timeout=10) as c:
        view = c.get(
            f"{edge.url}/orders/{order.order_id}/payment", headers=bearer(order.user_id, "customer")
        )
    assert (view.json()["status"], view.json()["captured_cents"]) == ("succeeded", 4_200)
    # an order without a payment yet: a clear refusal, exit 1
    assert asyncio.run(demo_pay_main(["1", "2", "--edge", edge.url])) == 1
