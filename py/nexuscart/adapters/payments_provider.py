"""The provider boundary: what the payments use cases need from a payment provider (Stripe
today; PayPal's mapping is in docs/payments.md). Orders and inventory never see it: they see
payments.v1 events only."""

from __future__ import annotations

from typing import Protocol

import msgspec


class ProviderUnavailable(ConnectionError):
    """The provider did not answer (timeout, connection refused, 5xx, rate limit, circuit
    open): the same call is retried later, the order waits. A ``ConnectionError``, so the
    consumer loop (services/runtime.is_transient) retries instead of dead-lettering."""


class ProviderRefused(Exception):
    """The provider answered and refused the call for good (invalid request, card declined,
    idempotency conflict): retrying the same call cannot succeed."""


class IntentRequest(msgspec.Struct, frozen=True):
    order_id: int
    user_id: int
    sale_id: int | None
    amount_cents: int
    currency: str  # ISO 4217, lower case as providers take it
    idempotency_key: str


class Intent(msgspec.Struct, frozen=True):
    ref: str  # the provider's id of the payment (pi_...)
    client_secret: str  # what the buyer's client confirms the payment with
    status: str  # the provider's status word


class RefundResult(msgspec.Struct, frozen=True):
    ref: str  # re_...
    amount_cents: int
    status: str


class CancelResult(msgspec.Struct, frozen=True):
    # True: the provider cancelled the intent (nobody can pay it any more). False: it would
    # not, because the intent had moved on (succeeded, processing, canceled): not an outage
    # and not a mistake, the intent's own webhooks tell what became of it
    canceled: bool
    status: str  # the intent's status word as the provider reported it ("" if it did not)


class PaymentProvider(Protocol):
    name: str

    async def create_intent(self, req: IntentRequest) -> Intent: ...

    async def refund(
        self, ref: str, amount_cents: int, idempotency_key: str, metadata: dict[str, str]
    ) -> RefundResult: ...

    async def cancel_intent(self, ref: str, idempotency_key: str) -> CancelResult: ...

    async def confirm_test(self, ref: str, payment_method: str) -> str:
        """Confirm with a test payment method (the local demo); the provider's status."""
        ...

    def breaker_state(self) -> str: ...

    async def aclose(self) -> None: ...
