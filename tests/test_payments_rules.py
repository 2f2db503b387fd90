"""The payment rules, pure (domain/payments.py, app/payments.webhook_facts,
services/payments/reconcile.check, the Stripe adapter's retry classification): facts fold
into the same state in any order and any number of times, the announced effects, refund
limits, when a closed order's intent is to be cancelled, derived keys."""

from __future__ import annotations

import pytest
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st

from nexuscart.adapters.payments_stripe import is_retryable
from nexuscart.app.payments import WebhookData, WebhookEvent, WebhookObject, webhook_facts
from nexuscart.domain import payments as rules
from services.payments.reconcile import check

facts = st.lists(
    st.one_of(
        st.builds(rules.Fact, st.just("succeeded"), st.integers(1, 10_000)),
        st.builds(rules.Fact, st.sampled_from(["failed", "canceled", "closed", "cancel_refused"])),
        st.builds(rules.Fact, st.just("refunded"), st.integers(1, 10_000)),
    ),
    max_size=8,
)


def fold(fs: list[rules.Fact]) -> rules.State:
    state = rules.State()
    for f in fs:
        state = rules.apply(state, f)
    return state


@settings(max_examples=300)
@given(facts, st.randoms(use_true_random=False))
def test_facts_delivered_three_times_in_any_order_give_the_state_of_once_in_order(
    fs: list[rules.Fact], rnd: object
) -> None:
    delivered = fs * 3
    rnd.shuffle(delivered)  # type: ignore[attr-defined]
    assert fold(delivered) == fold(fs)


def test_success_after_failure_wins_and_failure_after_success_changes_nothing() -> None:
    failed = fold([rules.Fact("failed")])
    paid = rules.apply(failed, rules.Fact("succeeded", 500))
    assert (paid.status, paid.captured_cents) == (rules.SUCCEEDED, 500)
    assert rules.apply(paid, rules.Fact("failed")) == paid
    assert rules.effects(failed, paid) == rules.Effects(succeeded=True)
    # the failure announced the order's end once; a later failure announces nothing
    assert rules.effects(rules.State(), failed).failed == "failed"
    assert rules.effects(failed, rules.apply(failed, rules.Fact("canceled"))).failed is None


def test_a_refund_seen_before_the_success_implies_the_capture() -> None:
    refunded = fold([rules.Fact("refunded", 300)])
    assert (refunded.status, refunded.captured_cents) == (rules.SUCCEEDED, 300)
    both = rules.apply(refunded, rules.Fact("succeeded", 500))
    assert (both.captured_cents, both.refunded_cents) == (500, 300)
    assert both == fold([rules.Fact("succeeded", 500), rules.Fact("refunded", 300)])


def test_a_late_success_owes_everything_not_refunded_yet() -> None:
    closed = fold([rules.Fact("closed")])
    assert rules.late_refund_owed(closed) == 0
    late = rules.apply(closed, rules.Fact("succeeded", 700))
    assert rules.late_refund_owed(late) == 700
    assert rules.late_refund_owed(rules.apply(late, rules.Fact("refunded", 700))) == 0
    assert rules.late_refund_owed(fold([rules.Fact("succeeded", 700)])) == 0  # order lives


def test_only_a_pending_payment_of_a_closed_order_has_its_intent_cancelled() -> None:
    closed = fold([rules.Fact("closed")])
    assert rules.cancel_due(closed)
    assert not rules.cancel_due(rules.State())  # the order lives: the buyer may pay
    # the provider settled it (our cancel's answer or a webhook), or refused to cancel it
    settled = [
        rules.Fact("canceled"),
        rules.Fact("failed"),
        rules.Fact("cancel_refused"),
        rules.Fact("succeeded", 700),  # a late payment: refunded, not cancelled
    ]
    for fact in settled:
        assert not rules.cancel_due(rules.apply(closed, fact)), fact


def test_a_success_after_our_cancel_wins_and_is_owed_back_in_full() -> None:
    closed = fold([rules.Fact("closed")])
    canceled = rules.apply(closed, rules.Fact("canceled"))
    assert rules.effects(closed, canceled).failed == "canceled"  # PaymentFailed, once
    paid = rules.apply(canceled, rules.Fact("succeeded", 700))
    assert rules.effects(canceled, paid).succeeded
    assert rules.late_refund_owed(paid) == 700
    # a refused cancel is recorded and announces nothing; a success is owed back the same way
    refused = rules.apply(closed, rules.Fact("cancel_refused"))
    assert (refused.status, refused.cancel_refused) == (rules.PENDING, True)
    assert rules.effects(closed, refused) == rules.Effects()
    assert rules.late_refund_owed(rules.apply(refused, rules.Fact("succeeded", 700))) == 700


def test_refunds_never_exceed_what_was_captured() -> None:
    paid = fold([rules.Fact("succeeded", 1000)])
    assert rules.check_refund(paid, None, 0) == 1000
    assert rules.check_refund(paid, 400, 0) == 400
    assert rules.check_refund(paid, 600, 400) == 600
    with pytest.raises(rules.RefundRefused, match="at most 600"):
        rules.check_refund(paid, 601, 400)
    with pytest.raises(rules.RefundRefused, match="in full"):
        rules.check_refund(paid, 1, 1000)
    with pytest.raises(rules.RefundRefused, match="captured nothing"):
        rules.check_refund(fold([rules.Fact("failed")]), 1, 0)


def test_keys_and_event_ids_are_derived_from_the_order() -> None:
    assert rules.intent_key(42) == rules.intent_key(42) != rules.intent_key(43)
    assert rules.payment_id(42) == "pay_42"
    assert rules.event_id("pay_42", "succeeded") == rules.event_id("pay_42", "succeeded")
    assert rules.event_id("pay_42", "succeeded") != rules.event_id("pay_42", "failed")
    assert rules.refund_key(42, "admin", "k1") != rules.refund_key(42, "admin", "k2")
    assert rules.cancel_key(42) == rules.cancel_key(42) != rules.cancel_key(43)
    assert rules.cancel_key(42) not in (rules.intent_key(42), rules.refund_key(42, "late"))


def _event(kind: str, **obj: object) -> WebhookEvent:
    return WebhookEvent("evt_1", kind, WebhookData(WebhookObject(**obj)))  # type: ignore[arg-type]


def test_stripe_event_types_map_to_facts_and_unknown_types_to_none() -> None:
    assert webhook_facts(_event("payment_intent.succeeded", amount=9, amount_received=7)) == [
        rules.Fact("succeeded", 7)
    ]
    assert webhook_facts(_event("payment_intent.payment_failed")) == [rules.Fact("failed")]
    assert webhook_facts(_event("payment_intent.canceled")) == [rules.Fact("canceled")]
    assert webhook_facts(_event("charge.refunded", amount_captured=9, amount_refunded=4)) == [
        rules.Fact("succeeded", 9),
        rules.Fact("refunded", 4),
    ]
    assert webhook_facts(_event("customer.created")) is None


def test_only_network_timeouts_rate_limits_and_5xx_are_retried() -> None:
    assert is_retryable(stripe.APIConnectionError("reset"))  # type: ignore[no-untyped-call]
    assert is_retryable(stripe.RateLimitError("slow down", http_status=429))
    assert is_retryable(stripe.APIError("boom", http_status=500))
    assert is_retryable(TimeoutError())
    assert not is_retryable(
        stripe.InvalidRequestError("bad", "amount", http_status=400)  # type: ignore[no-untyped-call]
    )
    assert not is_retryable(
        stripe.CardError("no", "card", "card_declined", http_status=402)  # type: ignore[no-untyped-call]
    )
    assert not is_retryable(stripe.IdempotencyError("reused key", http_status=400))


def _pay(
    status: str, captured: int, refunded: int, closed: bool, order: str | None, order_id: int = 9
) -> dict[str, object]:
    return {
        "user_id": 1,
        "payment_id": f"pay_{order_id}",
        "order_id": order_id,
        "status": status,
        "captured_cents": captured,
        "refunded_cents": refunded,
        "order_closed": closed,
        "order_status": order,
    }


def test_reconciliation_names_every_mismatch_and_passes_clean_books() -> None:
    clean = [_pay("succeeded", 500, 0, False, "CONFIRMED")]
    assert check(clean, [], [{"user_id": 1, "order_id": 9}]) == []
    late_done = [_pay("succeeded", 500, 500, True, "EXPIRED")]
    refunds = [{"user_id": 1, "payment_id": "pay_9", "reason": "late", "cents": 500}]
    assert check(late_done, refunds, []) == []
    kinds = {
        m.kind
        for m in check(
            [_pay("failed", 0, 0, False, "PAID"), _pay("succeeded", 500, 0, True, "EXPIRED", 10)],
            [],
            [{"user_id": 1, "order_id": 9}],
        )
    }
    assert kinds == {"paid-order-without-succeeded-payment", "late-payment-not-refunded"}
    # an intent we cancelled for an expired order is clean; a success after it, unrefunded,
    # is a late payment like any other
    assert check([_pay("canceled", 0, 0, True, "EXPIRED")], [], []) == []
    assert {m.kind for m in check([_pay("succeeded", 500, 0, True, "EXPIRED")], [], [])} == {
        "late-payment-not-refunded"
    }
    assert {m.kind for m in check([_pay("succeeded", 500, 200, False, None)], [], [])} == {
        "payment-without-order",
        "refund-without-action",
    }
