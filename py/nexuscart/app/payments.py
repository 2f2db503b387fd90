"""Payments use cases: open a payment for an order, learn from the provider's webhooks and
from the order's end, cancel the intent of an order that ended unpaid, refund (late
payments, admins, buyers' cancellations), and the buyer's view. Handlers (edge/payments.py)
and the payments service (services/payments) call these; the rules are in
domain/payments.py, the SQL in adapters/payments_repo.py, the provider behind
adapters/payments_provider.PaymentProvider.

Money never moves twice: every provider call carries an idempotency key derived from the
order (the intent, its cancellation) or from the refund's reservation (a refund), and every
write that follows it is keyed the same way, so a retry, a redelivery or a crash between the
call and the write repeats the same call and writes nothing new.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Annotated, Final

import msgspec
import stripe

from nexuscart import observability
from nexuscart.adapters.payments_inbox import InboxEntry, InboxFull, WebhookInbox
from nexuscart.adapters.payments_provider import (
    Intent,
    IntentRequest,
    PaymentProvider,
    ProviderRefused,
    ProviderUnavailable,
)
from nexuscart.adapters.payments_repo import (
    Change,
    IntentRecord,
    OrderToPay,
    Payment,
    PaymentsRepo,
    Refund,
)
from nexuscart.app.errors import Refused, Unavailable, pg_errors, redis_errors
from nexuscart.domain import orders as order_rules
from nexuscart.domain import payments as rules
from nexuscart.events import (
    Envelope,
    OrderPlaced,
    OrderStatusChanged,
    StockReleased,
    StockReserved,
)

log = logging.getLogger("nexuscart.payments")

ID_MAX: Final = 2**63 - 1
# provider calls in flight per payments process (the pool and Stripe's rate limit bound it)
ORDER_CONCURRENCY: Final = 32
# intents stored (with their PaymentRequested) per transaction as the provider answers: one
# concurrency window, so an order's event waits ~one window of calls, not its whole batch
STORE_GROUP: Final = ORDER_CONCURRENCY
# how old a signed webhook may be (Stripe's SDK default): an older one is a replay
WEBHOOK_TOLERANCE_S: Final = 300
# the orders.v1 events payments act on after an order's placement
_LATER_EVENTS: Final = (StockReleased, OrderStatusChanged)


# --- the provider's webhook, as much of it as we read ----------------------------------------


# amounts a bigint column holds (Stripe's are 8 digits; this only keeps a bad one a 400)
Cents = Annotated[int, msgspec.Meta(ge=0, le=2**62)]


class WebhookObject(msgspec.Struct):
    id: str = ""
    object: str = ""
    amount: Cents = 0
    amount_received: Cents = 0
    amount_captured: Cents = 0
    amount_refunded: Cents = 0
    currency: str = "usd"
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class WebhookData(msgspec.Struct):
    object: WebhookObject


class WebhookEvent(msgspec.Struct):
    id: str
    type: str
    data: WebhookData
    created: int = 0


_webhook_decoder: Final = msgspec.json.Decoder(WebhookEvent)


def decode_webhook(body: bytes) -> WebhookEvent:
    """The event of a verified body (raises msgspec.DecodeError/ValidationError)."""
    return _webhook_decoder.decode(body)


def _int(raw: str | None, lo: int = 1) -> int | None:
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        return None
    n = int(raw)
    return n if lo <= n <= ID_MAX else None


def webhook_facts(ev: WebhookEvent) -> list[rules.Fact] | None:
    """The facts a provider event tells (None: a type we do not act on)."""
    kind = rules.STRIPE_TYPES.get(ev.type)
    if kind is None:
        return None
    obj = ev.data.object
    if kind == rules.SUCCEEDED:
        return [rules.Fact("succeeded", obj.amount_received or obj.amount)]
    if kind == "refunded":
        return [
            rules.Fact("succeeded", obj.amount_captured or obj.amount),
            rules.Fact("refunded", obj.amount_refunded),
        ]
    return [rules.Fact("failed" if kind == rules.FAILED else "canceled")]


class WebhookOutcome(msgspec.Struct, frozen=True):
    # accepted (recorded in the inbox; the payments service applies it, once per event id)
    # | ignored (a type we do not act on, or no order in the metadata: nothing recorded)
    outcome: str
    detail: str = ""


def webhook_change(ev: WebhookEvent) -> Change | WebhookOutcome:
    """The change a verified provider event makes to its payment, or why it makes none."""
    facts = webhook_facts(ev)
    if facts is None:
        return WebhookOutcome("ignored", f"type {ev.type} is not handled")
    md = ev.data.object.metadata
    user_id, order_id = _int(md.get("user_id")), _int(md.get("order_id"))
    if user_id is None or order_id is None:
        return WebhookOutcome("ignored", "no order in the metadata")
    sale_raw = md.get("sale_id") or None
    sale_id = _int(sale_raw) if sale_raw else None
    obj = ev.data.object
    create = OrderToPay(user_id, order_id, sale_id, obj.amount, obj.currency.lower())
    return Change(user_id, rules.payment_id(order_id), tuple(facts), create, (ev.id, ev.type))


class PaymentView(msgspec.Struct, frozen=True):
    order_id: int
    payment_id: str
    status: str  # pending | failed | canceled | succeeded
    amount_cents: int
    currency: str
    captured_cents: int
    refunded_cents: int
    provider: str
    # what the buyer's client confirms the payment with (Stripe.js confirmPayment); null
    # until the provider answered
    client_secret: str | None


class RefundView(msgspec.Struct, frozen=True):
    order_id: int
    payment_id: str
    refund_key: str
    amount_cents: int
    reason: str
    status: str  # requested (the provider has not accepted it yet) | accepted


def payment_view(p: Payment) -> PaymentView:
    return PaymentView(
        p.order_id,
        p.payment_id,
        p.status,
        p.amount_cents,
        p.currency,
        p.captured_cents,
        p.refunded_cents,
        p.provider,
        p.client_secret,
    )


def refund_view(r: Refund) -> RefundView:
    return RefundView(
        r.order_id,
        r.payment_id,
        r.refund_key,
        r.amount_cents,
        r.reason,
        "accepted" if r.provider_ref else "requested",
    )


class Payments:
    def __init__(
        self,
        repo: PaymentsRepo,
        provider: PaymentProvider,
        webhook_secret: str = "",
        webhook_tolerance_s: int = WEBHOOK_TOLERANCE_S,
        inbox: WebhookInbox | None = None,
    ):
        self.repo = repo
        self.provider = provider
        self.webhook_secret = webhook_secret
        self.webhook_tolerance_s = webhook_tolerance_s
        self.inbox = inbox  # webhooks: the edge records them, the service applies them
        self.late_refunds = 0
        self._slots = asyncio.Semaphore(ORDER_CONCURRENCY)

    # -- the order side ------------------------------------------------------------------------

    async def request(self, order: OrderToPay, source_event: Envelope | None = None) -> str:
        """Open the order's payment with the provider, once. Raises ProviderUnavailable while
        the provider is down (the caller retries later; the order waits). Answers what
        happened: requested | exists | closed | refused."""
        return (await self.request_many([(order, source_event)]))[0]

    async def request_many(self, orders: Sequence[tuple[OrderToPay, Envelope | None]]) -> list[str]:
        """``request`` for a consumer batch: the rows opened with one statement, the
        provider asked concurrently (at most ``ORDER_CONCURRENCY`` calls at once), the
        intents and their PaymentRequested stored a group at a time as the answers come
        (``STORE_GROUP``: an order waits for its group, not for the whole batch). Every
        order's call finishes and every answer got is stored before a ProviderUnavailable
        (or a failed store) is raised, so a retried batch asks only for what is missing, and
        with the same keys (a group whose store failed is asked again: the same intents)."""
        known = await self.repo.open_many([o for o, _ in orders], self.provider.name)
        answers = ["exists"] * len(orders)
        todo: list[tuple[int, Payment, OrderToPay, Envelope | None]] = []
        for n, (order, env) in enumerate(orders):
            pay = known[(order.user_id, rules.payment_id(order.order_id))]
            if pay.requested:
                continue
            if pay.order_closed and pay.status == rules.PENDING:
                answers[n] = "closed"  # the hold ended before we got to it: nothing to pay
                continue
            # otherwise ask (again): the key makes Stripe answer the same intent, and a
            # payment a webhook created first (we crashed after the call) still needs the
            # intent's id, which a refund is made against
            todo.append((n, pay, order, env))
        answered: list[IntentRecord] = []
        storing = asyncio.Lock()

        async def store() -> None:
            async with storing:
                group = answered[:]
                del answered[:]
                if group:
                    await self.repo.record_intents(group)

        async def ask(n: int, pay: Payment, order: OrderToPay, env: Envelope | None) -> None:
            try:
                r = await self._intent(order, env)
            except ProviderRefused as exc:
                log.warning("payment of order %s refused by the provider: %s", order.order_id, exc)
                pid = rules.payment_id(order.order_id)
                await self.repo.apply(order.user_id, pid, [rules.Fact("canceled")], create=order)
                answers[n] = "refused"
                return
            answered.append(
                IntentRecord(pay, r.ref, r.client_secret, None if env is None else env.id)
            )
            answers[n] = "requested"
            if len(answered) >= STORE_GROUP:
                await store()

        got = await asyncio.gather(*(ask(*t) for t in todo), return_exceptions=True)
        await store()  # the last group
        for r in got:
            if isinstance(r, BaseException):
                raise r
        return answers

    async def _intent(self, order: OrderToPay, env: Envelope | None) -> Intent:
        # a traced order's call is a child of its record's span; the batch's others are not
        with observability.for_event(None if env is None else env.id):
            async with self._slots:
                return await self.provider.create_intent(
                    IntentRequest(
                        order.order_id,
                        order.user_id,
                        order.sale_id,
                        order.amount_cents,
                        order.currency,
                        rules.intent_key(order.order_id),
                    )
                )

    async def order_closed(self, user_id: int, order_id: int, source: Envelope | None) -> str:
        """The order's hold ended without a sale: its open intent is to be cancelled
        (``cancel_closed``), and a payment that succeeds (or succeeded) for it is owed back
        (the sweeper refunds it)."""
        pid = rules.payment_id(order_id)
        outcome, _ = await self.repo.apply(
            user_id,
            pid,
            [rules.Fact("closed")],
            create=OrderToPay(user_id, order_id, None, 0, "usd"),
            source_event=None if source is None else source.id,
        )
        return outcome

    async def handle_order_events(self, batch: list[Envelope]) -> None:
        """orders.v1 -> payments (the consumer's handler). Each event is applied once: a
        StockReserved's or OrderPlaced's effect is keyed by the order (a repeat finds the
        intent stored), a StockReleased's by its event id (the inbox), a refunded order's
        refund by its key (once per order). The batch's placements are opened together
        (``request_many``: a few statements for the batch, not a few per order); then the
        other events, users concurrently, each user's in order. A placement is its order's
        first event, so handling placements first keeps every order's events in order.
        Every part finishes before an error is raised, so a retried batch only repeats
        work that the keys make idempotent."""
        placed: list[tuple[OrderToPay, Envelope | None]] = []
        by_user: dict[int, list[Envelope]] = {}
        for env in batch:
            d = env.data
            if isinstance(d, StockReserved):
                amount = d.quantity * d.unit_price_cents
                placed.append(
                    (OrderToPay(d.user_id, d.order_id, d.sale_id, amount, d.currency), env)
                )
            elif isinstance(d, OrderPlaced):  # an everyday checkout: pay its total
                placed.append(
                    (OrderToPay(d.user_id, d.order_id, None, d.total_minor, d.currency), env)
                )
            elif isinstance(d, _LATER_EVENTS):
                by_user.setdefault(d.user_id, []).append(env)
        results: list[object] = []
        if placed:
            results.extend(await asyncio.gather(self.request_many(placed), return_exceptions=True))
        results.extend(
            await asyncio.gather(
                *(self._user_events(evs) for evs in by_user.values()), return_exceptions=True
            )
        )
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def _user_events(self, evs: list[Envelope]) -> None:
        for env in evs:
            d = env.data
            if isinstance(d, StockReleased):
                await self.order_closed(d.user_id, d.order_id, env)
            elif isinstance(d, OrderStatusChanged) and d.to_status == order_rules.REFUNDED:
                # a paid order cancelled before shipment: the edge refunded it when it could;
                # this makes sure (once per order, by the refund's key)
                await self._cancel_refund(d.user_id, d.order_id)

    async def _cancel_refund(self, user_id: int, order_id: int) -> None:
        async with self._slots:
            try:
                await self.refund(user_id, order_id, None, "cancelled")
            except (rules.RefundRefused, LookupError):
                pass  # refunded already (nothing left), or no payment to refund
            except ProviderUnavailable:
                # the refund stays reserved: the sweeper sends it with its key
                log.warning("refund of cancelled order %s waits for the provider", order_id)
            except ProviderRefused as exc:
                log.error("refund of cancelled order %s refused: %s", order_id, exc)

    # -- the provider's side ---------------------------------------------------------------------

    async def apply_inbox(
        self, entries: Sequence[InboxEntry], transient: Callable[[BaseException], bool]
    ) -> list[tuple[str, str]]:
        """Apply inbox entries (the service's webhook loop): one transaction for the batch,
        then the entries leave the inbox. An entry that does not decode, or that the
        database refuses alone for its data (not ``transient``), goes to the dead-letter
        stream. Any other failure raises and leaves every entry in the inbox, to be applied
        again (each event id is recorded once: what committed is a duplicate then). Answers
        (provider event id or inbox entry id, outcome) per entry: applied | duplicate |
        unknown (no payment and nothing to open one with) | dead."""
        assert self.inbox is not None
        good: list[tuple[InboxEntry, Change, str]] = []
        out: list[tuple[str, str]] = []
        dead: list[tuple[InboxEntry, str]] = []
        for e in entries:
            if e.change is None or e.change.webhook is None:
                dead.append((e, "not a webhook change"))
                out.append((e.entry_id.decode(), "dead"))
            else:
                good.append((e, e.change, e.change.webhook[0]))
        results = await self.repo.apply_many([c for _, c, _ in good]) if good else []
        done: list[bytes] = []
        for r in results:
            if isinstance(r, BaseException) and transient(r):
                raise r
        for (e, _, event_id), r in zip(good, results, strict=True):
            if isinstance(r, BaseException):
                dead.append((e, f"refused by the database: {r!r}"))
                out.append((event_id, "dead"))
            else:
                done.append(e.entry_id)
                out.append((event_id, r[0]))
        await self.inbox.dead(dead)
        await self.inbox.done(done)
        return out

    # -- refunds -------------------------------------------------------------------------------

    async def _send(self, refund: Refund) -> Refund:
        pay = await self.repo.get(refund.user_id, refund.payment_id)
        if pay is None or not pay.provider_ref:
            raise LookupError(refund.payment_id)
        result = await self.provider.refund(
            pay.provider_ref,
            refund.amount_cents,
            refund.refund_key,
            {
                "order_id": str(pay.order_id),
                "user_id": str(pay.user_id),
                "reason": refund.reason,
            },
        )
        await self.repo.finish_refund(refund, result.ref)
        return refund._replace(provider_ref=result.ref)

    async def refund(
        self,
        user_id: int,
        order_id: int,
        amount_cents: int | None,
        kind: str,
        client_key: str = "",
        actor_id: int | None = None,
    ) -> Refund:
        """Reserve then send a refund (raises rules.RefundRefused, LookupError, or
        ProviderUnavailable: the reservation stays and the sweeper sends it later)."""
        key = rules.refund_key(order_id, kind, client_key)
        r = await self.repo.reserve_refund(
            user_id, rules.payment_id(order_id), key, amount_cents, kind, actor_id
        )
        if r.provider_ref:
            return r
        return await self._send(r)

    async def sweep(self, limit: int = 100, unsent_after_s: float = 5.0) -> int:
        """One pass of the refund sweeper: late payments (paid after their hold ended) are
        refunded in full, once per order; reservations whose sender died are sent again with
        their key. Answers how many refunds it sent."""
        sent = 0
        for user_id, pid in await self.repo.refund_due(limit):
            try:
                sent += await self._refund_late(user_id, pid)
            except LookupError:
                # no intent id yet (a webhook created the row before the service stored the
                # intent): the order event's redelivery stores it, a later pass refunds
                log.warning("late payment %s of user %s: intent not stored yet", pid, user_id)
            except ProviderRefused as exc:
                # Stripe refuses this refund for good: a person must look (reconcile flags
                # the payment as a late payment not refunded); the other refunds go on
                log.error("late refund of %s (user %s) refused: %s", pid, user_id, exc)
        for user_id, key in await self.repo.refunds_unsent(unsent_after_s, limit):
            r2 = await self.repo.refund_by_key(user_id, key)
            if r2 is not None and not r2.provider_ref:
                try:
                    await self._send(r2)
                except LookupError:
                    continue
                except ProviderRefused as exc:
                    log.error("refund %s (user %s) refused: %s", key, user_id, exc)
                    continue
                sent += 1
        return sent

    async def _refund_late(self, user_id: int, pid: str) -> int:
        pay = await self.repo.get(user_id, pid)
        if pay is None or rules.late_refund_owed(pay.state) <= 0:
            return 0
        if not pay.provider_ref:
            raise LookupError(pid)  # nothing to refund against yet: reserve nothing
        known = await self.repo.refund_by_key(user_id, rules.refund_key(pay.order_id, "late"))
        if known is not None and known.provider_ref:
            return 0  # refunded late already; what is left is someone else's refund
        try:
            r = await self.refund(user_id, pay.order_id, None, "late")
        except rules.RefundRefused:
            return 0  # reserved in full already: the unsent pass finishes it
        self.late_refunds += 1
        log.info(
            "refunded late payment %s of order %s: %d cents; late_refunds_total=%d",
            pid, pay.order_id, r.amount_cents, self.late_refunds,
        )  # fmt: skip
        return 1

    # -- intents of closed orders ----------------------------------------------------------------

    async def cancel_closed(self, limit: int = 100) -> int:
        """One pass of the cancel sweeper: the open intent of an order whose hold ended unpaid
        is cancelled at the provider, so the buyer can no longer pay for an order that is
        gone. The answer is folded into the payment: ``canceled``, or ``cancel_refused`` when
        the intent had moved on (succeeded, processing): it is not asked again, and a success
        is refunded by ``sweep`` like any late payment. Raises ProviderUnavailable while the
        provider is down (the rows stay due; the next pass asks again, with the same key).
        Answers how many intents it cancelled."""
        canceled = 0
        for user_id, pid in await self.repo.cancel_due(limit):
            canceled += await self._cancel_intent(user_id, pid)
        return canceled

    async def _cancel_intent(self, user_id: int, pid: str) -> int:
        pay = await self.repo.get(user_id, pid)
        if pay is None or not pay.provider_ref or not rules.cancel_due(pay.state):
            return 0  # settled since the poll (a webhook, another sweeper)
        key = rules.cancel_key(pay.order_id)
        try:
            result = await self.provider.cancel_intent(pay.provider_ref, key)
        except ProviderUnavailable:
            observability.PAYMENT_INTENT_CANCELS.labels("unavailable").inc()
            raise
        except ProviderRefused as exc:
            # refused for another reason (the key, the account): a person must look; asked
            # again next pass, as a refused refund is
            observability.PAYMENT_INTENT_CANCELS.labels("refused").inc()
            log.error("cancel of the intent of %s (user %s) refused: %s", pid, user_id, exc)
            return 0
        fact = rules.Fact("canceled" if result.canceled else "cancel_refused")
        await self.repo.apply(user_id, pid, [fact])
        outcome = "canceled" if result.canceled else "too_late"
        observability.PAYMENT_INTENT_CANCELS.labels(outcome).inc()
        log.info(
            "intent of payment %s of closed order %s: %s (provider status %r)",
            pid, pay.order_id, outcome, result.status,
        )  # fmt: skip
        return int(result.canceled)

    # -- the buyer's side ----------------------------------------------------------------------

    async def view(self, user_id: int, order_id: int) -> PaymentView | None:
        p = await self.repo.get(user_id, rules.payment_id(order_id))
        return None if p is None else payment_view(p)

    # -- the edge's use cases (Refused / Unavailable for the handlers) --------------------------

    async def receive_webhook(self, body: bytes, signature: str | None) -> WebhookOutcome:
        """A provider webhook as delivered: the signature and its timestamp checked with the
        SDK's verifier (the signature is the credential), then applied once. Refused 400 for
        a bad or stale signature or a body that is not an event; nothing changes then."""
        try:
            stripe.WebhookSignature.verify_header(
                body, signature, self.webhook_secret, self.webhook_tolerance_s
            )
        except stripe.SignatureVerificationError as exc:
            raise Refused(400, "webhook-signature-invalid", "Webhook signature invalid",
                          str(exc).split(".")[0]) from None  # fmt: skip
        except UnicodeDecodeError:
            raise Refused(400, "malformed-body", "Request body is not UTF-8") from None
        try:
            ev = decode_webhook(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Refused(400, "malformed-body", "Webhook body is not an event", str(exc)) from None
        change = webhook_change(ev)
        if isinstance(change, WebhookOutcome):
            return change
        assert self.inbox is not None, "the edge's Payments records webhooks in the inbox"
        try:
            with redis_errors():
                await self.inbox.add(change)
        except InboxFull:
            # counted per request (dependency_failures_total), alerted on the backlog
            raise Unavailable("payments-inbox") from None
        return WebhookOutcome("accepted")

    async def buyer_payment(self, user_id: int, order_id: int) -> PaymentView:
        with pg_errors():
            view = await self.view(user_id, order_id)
        if view is None:
            raise Refused(404, "not-found", "No payment for this order")
        return view

    async def refund_request(
        self,
        user_id: int,
        order_id: int,
        amount_cents: int | None,
        kind: str,
        client_key: str,
        actor_id: int,
    ) -> RefundView:
        """An admin's refund (``kind`` admin, any amount up to what is left, once per
        Idempotency-Key) or a buyer's cancellation (``kind`` cancelled: all that is left,
        once per order). While the provider is down the refund stays reserved, the answer is
        503 and the sweeper sends it; the same request again answers it."""
        try:
            with pg_errors():
                try:
                    r = await self.refund(
                        user_id, order_id, amount_cents, kind, client_key, actor_id
                    )
                except ProviderUnavailable as exc:  # a ConnectionError: before pg_errors
                    raise Unavailable("stripe") from exc
        except ProviderRefused as exc:
            raise Refused(
                409, "provider-refused", "The payment provider refused", str(exc)
            ) from None
        except rules.RefundRefused as exc:
            raise Refused(409, "refund-refused", "Refund refused", str(exc)) from None
        except LookupError:
            raise Refused(404, "not-found", "No payment for this order") from None
        return refund_view(r)
