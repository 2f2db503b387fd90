"""PostgreSQL side of payments: the payments, payment_webhooks, payment_refunds and
payments_outbox tables (migration 0006). SQL lives in sql/queries/*.sql; this module binds
parameters, folds facts under the row lock (domain/payments.py) and writes the events of a
change into the outbox in the same transaction. Every statement carries user_id (single
shard on Citus) except the background polls (outbox relay, refund and cancel sweepers) and
the reconciliation's reads."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, NamedTuple

import asyncpg
import msgspec

from nexuscart import events
from nexuscart.adapters.postgres import insert_rows, query
from nexuscart.domain import payments as rules

Pool = Callable[[], Awaitable[asyncpg.Pool]]

_encoder: Final = msgspec.json.Encoder()
CONSUMER: Final = "payments"  # its rows in the shared inbox table


class Payment(NamedTuple):
    user_id: int
    payment_id: str
    order_id: int
    sale_id: int | None
    amount_cents: int
    currency: str
    status: str
    provider: str
    provider_ref: str | None
    client_secret: str | None
    requested: bool
    captured_cents: int
    refunded_cents: int
    order_closed: bool
    cancel_refused: bool

    @property
    def state(self) -> rules.State:
        return rules.State(
            self.status,
            self.captured_cents,
            self.refunded_cents,
            self.order_closed,
            self.cancel_refused,
        )

    def folded(self, facts: Sequence[rules.Fact]) -> tuple[rules.State, Payment]:
        """The state after ``facts`` (the domain's fold), and this payment carrying it."""
        after = self.state
        for f in facts:
            after = rules.apply(after, f)
        return after, self._replace(
            status=after.status,
            captured_cents=after.captured_cents,
            refunded_cents=after.refunded_cents,
            order_closed=after.order_closed,
            cancel_refused=after.cancel_refused,
        )


def _payment(row: Any) -> Payment:
    return Payment(*(row[f] for f in Payment._fields))


class OrderToPay(NamedTuple):
    """What a payment is opened for: a flash-sale reservation today, an everyday order
    (OrderPlaced) later; both map to this."""

    user_id: int
    order_id: int
    sale_id: int | None
    amount_cents: int
    currency: str


class Change(NamedTuple):
    """Facts to fold into one payment (see PaymentsRepo.apply)."""

    user_id: int
    payment_id: str
    facts: tuple[rules.Fact, ...]
    create: OrderToPay | None = None
    webhook: tuple[str, str] | None = None  # (provider event id, type), recorded first
    source_event: uuid.UUID | None = None  # a Kafka event id, recorded in the inbox

    def sort_key(self) -> tuple[int, str, str]:
        return (self.user_id, self.payment_id, self.webhook[0] if self.webhook else "")


class OutboxRow(NamedTuple):
    user_id: int
    event_id: uuid.UUID
    topic: str
    payload: bytes


class IntentRecord(NamedTuple):
    """A provider's answer to store (PaymentsRepo.record_intents)."""

    payment: Payment
    provider_ref: str
    client_secret: str
    source_event: uuid.UUID | None  # the order event, recorded in the inbox with it


class Refund(NamedTuple):
    user_id: int
    refund_key: str
    payment_id: str
    order_id: int
    amount_cents: int
    reason: str
    actor_id: int | None
    provider_ref: str | None


def envelope(event_id: uuid.UUID, user_id: int, data: events.Event) -> bytes:
    env = events.Envelope(
        id=event_id,
        type=type(data).__name__,
        version=1,
        occurred_at=dt.datetime.now(dt.UTC),
        key=str(user_id),
        data=data,
    )
    return _encoder.encode(env)


def change_events(
    p: Payment, before: rules.State, after: rules.State, refund_reason: str
) -> list[tuple[uuid.UUID, events.Event]]:
    """The events a state change announces, with ids derived from the payment and the fact
    (a second writer of the same change writes the same ids: the outbox keeps one)."""
    fx = rules.effects(before, after)
    out: list[tuple[uuid.UUID, events.Event]] = []
    if fx.succeeded:
        out.append(
            (
                rules.event_id(p.payment_id, "succeeded"),
                events.PaymentSucceeded(
                    p.order_id, p.sale_id, p.user_id, after.captured_cents, p.payment_id
                ),
            )
        )
    if fx.failed:
        out.append(
            (
                rules.event_id(p.payment_id, "failed"),
                events.PaymentFailed(p.order_id, p.sale_id, p.user_id, p.payment_id, fx.failed),
            )
        )
    if fx.refunded_delta:
        out.append(
            (
                rules.event_id(p.payment_id, f"refunded:{after.refunded_cents}"),
                events.PaymentRefunded(
                    p.order_id,
                    p.sale_id,
                    p.user_id,
                    p.payment_id,
                    fx.refunded_delta,
                    after.refunded_cents,
                    refund_reason,
                ),
            )
        )
    return out


class PaymentsRepo:
    def __init__(self, pool: Pool):
        self._pool = pool

    async def get(self, user_id: int, payment_id: str) -> Payment | None:
        p = await self._pool()
        row = await p.fetchrow(query("payment_by_id"), user_id, payment_id)
        return None if row is None else _payment(row)

    async def seen(self, user_id: int, event_id: uuid.UUID) -> bool:
        """Whether this service applied the Kafka event already (its inbox row)."""
        p = await self._pool()
        return bool(
            await p.fetchval(
                query("inbox_seen"),
                user_id,
                CONSUMER,
                event_id,
            )
        )

    async def _inbox(self, conn: asyncpg.Connection, user_id: int, event_id: uuid.UUID) -> bool:
        rows = await conn.fetch(query("inbox_insert"), user_id, CONSUMER, event_id)
        return bool(rows)

    async def open(self, order: OrderToPay, provider: str) -> Payment:
        """The order's payment row (created pending if missing)."""
        pid = rules.payment_id(order.order_id)
        return (await self.open_many([order], provider))[(order.user_id, pid)]

    async def open_many(
        self, orders: Sequence[OrderToPay], provider: str
    ) -> dict[tuple[int, str], Payment]:
        """The orders' payment rows by (user, payment id), created pending where missing: one
        multi-row insert (rows of many users: on Citus a statement over their shards) and,
        only for rows that existed before (a redelivery; a webhook or the order's end came
        first), one read. Rows in key order, as every batch writer takes them."""
        rows = {
            (o.user_id, pid): (o.user_id, pid, o.order_id, o.sale_id, o.amount_cents,
                               o.currency, provider)
            for o in orders
            for pid in (rules.payment_id(o.order_id),)
        }  # fmt: skip
        p = await self._pool()
        async with p.acquire() as conn:
            created = await insert_rows(conn, "payment_insert", [rows[k] for k in sorted(rows)])
            out = {(r["user_id"], r["payment_id"]): _payment(r) for r in created}
            before = [k for k in rows if k not in out]
            if before:
                found = await conn.fetch(
                    query("payments_by_ids"), [u for u, _ in before], [i for _, i in before]
                )
                out.update(
                    (k, _payment(r))
                    for r in found
                    if (k := (r["user_id"], r["payment_id"])) in rows
                )
        return out

    async def record_intents(self, items: Sequence[IntentRecord]) -> int:
        """Store the provider's intents and write each one's PaymentRequested, once (a
        payment recorded before is left as it is), in one transaction for the batch: the
        order events into the inbox, the intents (one multi-row statement), the events
        (one). Answers how many were recorded now."""
        ordered = sorted(
            {(i.payment.user_id, i.payment.payment_id): i for i in items}.items()
        )  # distinct, in key order (the row-lock order of every batch writer)
        inbox = [
            (pay.user_id, CONSUMER, i.source_event)
            for _, i in ordered
            if i.source_event is not None
            for pay in (i.payment,)
        ]
        intents = [
            (pay.user_id, pay.payment_id, pay.order_id, pay.sale_id, pay.amount_cents,
             pay.currency, pay.provider, i.provider_ref, i.client_secret)
            for _, i in ordered
            for pay in (i.payment,)
        ]  # fmt: skip
        by_key = dict(ordered)
        p = await self._pool()
        async with p.acquire() as conn, conn.transaction():
            if inbox:
                await insert_rows(conn, "inbox_insert", inbox)
            done = await insert_rows(conn, "payments_set_intent", intents, pad=False)
            evs = []
            for r in done:
                i = by_key[(r["user_id"], r["payment_id"])]
                pay = i.payment
                data = events.PaymentRequested(
                    pay.order_id,
                    pay.sale_id,
                    pay.user_id,
                    pay.amount_cents,
                    pay.currency,
                    pay.payment_id,
                    pay.provider,
                    i.provider_ref,
                )
                evs.append((pay.user_id, rules.event_id(pay.payment_id, "requested"), data))
            await self._outbox(conn, evs)
            return len(done)

    async def mark_event(self, user_id: int, source_event: uuid.UUID) -> None:
        """Record a Kafka event as applied when applying it wrote nothing else."""
        p = await self._pool()
        async with p.acquire() as conn:
            await self._inbox(conn, user_id, source_event)

    async def apply(
        self,
        user_id: int,
        payment_id: str,
        facts: Sequence[rules.Fact],
        *,
        create: OrderToPay | None = None,
        webhook: tuple[str, str] | None = None,
        source_event: uuid.UUID | None = None,
        refund_reason: str = "provider",
    ) -> tuple[str, Payment | None]:
        """Fold ``facts`` into the payment under its row lock and write the events of the
        change, in one single-shard transaction. ``webhook`` (provider event id, type) is
        recorded first: a repeat answers ("duplicate", None) and changes nothing.
        ``create``: the order to open the row for when it does not exist yet (a webhook or
        the hold's end before the intent was stored). Answers ("applied" | "unknown", row)."""
        item = Change(user_id, payment_id, tuple(facts), create, webhook, source_event)
        p = await self._pool()
        async with p.acquire() as conn, conn.transaction():
            return await self._apply_in(conn, item, refund_reason)

    async def apply_many(
        self, items: Sequence[Change]
    ) -> list[tuple[str, Payment | None] | asyncpg.PostgresError]:
        """``apply`` for many changes in one transaction: one commit (one fsync) for all,
        which is what lets the webhook endpoint keep up with a burst. Webhook changes (the
        endpoint's) take a few statements per batch (``_apply_webhooks_in``); others are
        applied one by one. Should the database refuse the batch (a bad change, or a
        deadlock with another batch locking the same payments in another order), it rolls
        back and each change is applied again in its own transaction, so that one fails
        alone (its slot holds the error) and the others commit. Changes are folded in (user,
        payment, event) order; the fold is commutative, so the order changes no state. On
        Citus a batch over several shards commits with two-phase commit."""
        order = sorted(range(len(items)), key=lambda i: items[i].sort_key())
        out: list[tuple[str, Payment | None] | asyncpg.PostgresError] = [("unknown", None)] * len(
            items
        )
        p = await self._pool()
        async with p.acquire() as conn:
            try:
                async with conn.transaction():
                    if all(it.webhook is not None and it.source_event is None for it in items):
                        await self._apply_webhooks_in(conn, items, order, out)
                    else:
                        for i in order:
                            out[i] = await self._apply_in(conn, items[i], "provider")
                return out
            except asyncpg.PostgresError as exc:
                if len(items) == 1:
                    return [exc]
            for i in order:
                try:
                    async with conn.transaction():
                        out[i] = await self._apply_in(conn, items[i], "provider")
                except asyncpg.PostgresError as exc:
                    out[i] = exc
        return out

    async def _apply_webhooks_in(
        self,
        conn: asyncpg.Connection,
        items: Sequence[Change],
        order: Sequence[int],
        out: list[tuple[str, Payment | None] | asyncpg.PostgresError],
    ) -> None:
        """``_apply_in`` for a batch of webhook changes, with a few statements per batch
        instead of four or five per change: record the events, lock the payments, open the
        missing ones, save the folded states, write the events. The fold runs in ``order``
        (per payment, as one change after another would), so the outcome is the same."""
        firsts: dict[tuple[int, str], int] = {}  # a repeat inside the batch is a duplicate
        record = []
        for i in order:
            it = items[i]
            assert it.webhook is not None
            key = (it.user_id, it.webhook[0])
            if key in firsts:
                out[i] = ("duplicate", None)
            else:
                firsts[key] = i
                record.append((it.user_id, it.webhook[0], it.webhook[1], it.payment_id))
        recorded = await insert_rows(conn, "payment_webhook_insert", record)
        fresh = {(r["user_id"], r["event_id"]) for r in recorded}
        todo = []  # in ``order``, like ``firsts``
        for key, i in firsts.items():
            if key in fresh:
                todo.append(i)
            else:
                out[i] = ("duplicate", None)
        pays = await self._lock_many(conn, {(items[i].user_id, items[i].payment_id) for i in todo})
        creates: dict[tuple[int, str], OrderToPay] = {}
        for i in todo:
            pk = (items[i].user_id, items[i].payment_id)
            create = items[i].create
            if pk not in pays and create is not None:
                creates.setdefault(pk, create)
        if creates:
            stripe = rules.PROVIDER_STRIPE
            # the rows this transaction inserts are its own until commit: no lock to take
            made = await insert_rows(
                conn,
                "payment_insert",
                [
                    (u, pid, c.order_id, c.sale_id, c.amount_cents, c.currency, stripe)
                    for (u, pid), c in creates.items()
                ],
            )
            pays.update(((r["user_id"], r["payment_id"]), _payment(r)) for r in made)
            # inserted by another transaction first (and committed): lock those
            pays.update(await self._lock_many(conn, set(creates) - set(pays)))
        changed: dict[tuple[int, str], Payment] = {}
        evs: list[tuple[int, uuid.UUID, events.Event]] = []
        for i in todo:
            it = items[i]
            pk = (it.user_id, it.payment_id)
            pay = pays.get(pk)
            if pay is None:
                out[i] = ("unknown", None)
                continue
            before = pay.state
            after, folded = pay.folded(it.facts)
            if after != before:
                evs.extend(
                    (it.user_id, eid, d) for eid, d in change_events(pay, before, after, "provider")
                )
                pays[pk] = changed[pk] = folded
            out[i] = ("applied", folded)
        if changed:
            rows = list(changed.values())
            await conn.execute(
                query("payments_save_states"),
                [r.user_id for r in rows],
                [r.payment_id for r in rows],
                [r.status for r in rows],
                [r.captured_cents for r in rows],
                [r.refunded_cents for r in rows],
                [r.order_closed for r in rows],
                [r.cancel_refused for r in rows],
            )
        await self._outbox(conn, evs)

    async def _lock_many(
        self, conn: asyncpg.Connection, keys: set[tuple[int, str]]
    ) -> dict[tuple[int, str], Payment]:
        if not keys:
            return {}
        pairs = sorted(keys)
        rows = await conn.fetch(
            query("payments_lock_many"), [u for u, _ in pairs], [pid for _, pid in pairs]
        )
        return {(r["user_id"], r["payment_id"]): _payment(r) for r in rows}

    async def _apply_in(
        self, conn: asyncpg.Connection, item: Change, refund_reason: str
    ) -> tuple[str, Payment | None]:
        user_id, payment_id, create = item.user_id, item.payment_id, item.create
        if item.webhook is not None:
            fresh = await conn.fetchval(
                query("payment_webhook_insert"),
                user_id,
                item.webhook[0],
                item.webhook[1],
                payment_id,
            )
            if fresh is None:
                return "duplicate", None
        if item.source_event is not None and not await self._inbox(
            conn, user_id, item.source_event
        ):
            return "duplicate", None
        row = await conn.fetchrow(query("payment_lock"), user_id, payment_id)
        if row is None:
            if create is None:
                return "unknown", None
            # the row this transaction inserts is its own until commit: no lock to take
            row = await conn.fetchrow(
                query("payment_insert"),
                create.user_id,
                payment_id,
                create.order_id,
                create.sale_id,
                create.amount_cents,
                create.currency,
                rules.PROVIDER_STRIPE,
            )
            if row is None:  # another transaction inserted it first (and has committed)
                row = await conn.fetchrow(query("payment_lock"), user_id, payment_id)
        pay = _payment(row)
        before = pay.state
        after, folded = pay.folded(item.facts)
        if after != before:
            await self._save(conn, pay, after)
            await self._outbox(
                conn,
                [(user_id, eid, d) for eid, d in change_events(pay, before, after, refund_reason)],
            )
        return "applied", folded

    async def refund_by_key(self, user_id: int, key: str) -> Refund | None:
        p = await self._pool()
        row = await p.fetchrow(query("payment_refund_by_key"), user_id, key)
        return None if row is None else Refund(*(row[f] for f in Refund._fields))

    async def reserve_refund(
        self,
        user_id: int,
        payment_id: str,
        key: str,
        amount_cents: int | None,
        reason: str,
        actor_id: int | None,
    ) -> Refund:
        """Reserve a refund under the payment's row lock, before the provider is asked: the
        amount (None: all that is left) is checked against what was captured minus every
        refund reserved so far, so concurrent refunds can never add up to more than the
        capture. A key reserved before answers its first reservation unchanged. Raises
        RefundRefused (rules) or LookupError (no such payment)."""
        p = await self._pool()
        async with p.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(query("payment_lock"), user_id, payment_id)
            if row is None:
                raise LookupError(payment_id)
            known = await conn.fetchrow(query("payment_refund_by_key"), user_id, key)
            if known is not None:
                return Refund(*(known[f] for f in Refund._fields))
            pay = _payment(row)
            sums = await conn.fetchrow(query("payment_refunds_sum"), user_id, payment_id)
            amount = rules.check_refund(pay.state, amount_cents, int(sums["reserved"]))
            await conn.fetchval(
                query("payment_refund_insert"),
                user_id,
                key,
                payment_id,
                pay.order_id,
                amount,
                reason,
                actor_id,
            )
            return Refund(user_id, key, payment_id, pay.order_id, amount, reason, actor_id, None)

    async def finish_refund(self, refund: Refund, provider_ref: str) -> bool:
        """The provider accepted ``refund``: its id stored, the accepted total folded into
        the payment with its PaymentRefunded event, once (False: finished before)."""
        p = await self._pool()
        async with p.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(query("payment_lock"), refund.user_id, refund.payment_id)
            done = await conn.fetchval(
                query("payment_refund_set_ref"), refund.user_id, refund.refund_key, provider_ref
            )
            if done is None or row is None:
                return False
            pay = _payment(row)
            sums = await conn.fetchrow(
                query("payment_refunds_sum"), refund.user_id, refund.payment_id
            )
            before = pay.state
            after = rules.apply(before, rules.Fact("refunded", int(sums["sent"])))
            if after != before:
                await self._save(conn, pay, after)
                await self._outbox(
                    conn,
                    [
                        (pay.user_id, eid, d)
                        for eid, d in change_events(pay, before, after, refund.reason)
                    ],
                )
            return True

    async def _save(self, conn: asyncpg.Connection, pay: Payment, after: rules.State) -> None:
        await conn.execute(
            query("payment_save_state"),
            pay.user_id,
            pay.payment_id,
            after.status,
            after.captured_cents,
            after.refunded_cents,
            after.order_closed,
            after.cancel_refused,
        )

    async def _outbox(
        self,
        conn: asyncpg.Connection,
        evs: Sequence[tuple[int, uuid.UUID, events.Event]],
    ) -> None:
        """Events (user, event id, event) into payments_outbox: one multi-row statement."""
        if evs:
            await insert_rows(
                conn,
                "payments_outbox_insert",
                [(u, eid, events.PAYMENTS_TOPIC, envelope(eid, u, d)) for u, eid, d in evs],
            )

    # -- background polls (every shard) -----------------------------------------------------

    async def refunds_unsent(self, older_than_s: float, limit: int) -> list[tuple[int, str]]:
        p = await self._pool()
        rows = await p.fetch(query("payment_refunds_unsent"), older_than_s, limit)
        return [(r["user_id"], r["refund_key"]) for r in rows]

    async def refund_due(self, limit: int) -> list[tuple[int, str]]:
        p = await self._pool()
        rows = await p.fetch(query("payments_refund_due"), limit)
        return [(r["user_id"], r["payment_id"]) for r in rows]

    async def cancel_due(self, limit: int) -> list[tuple[int, str]]:
        p = await self._pool()
        rows = await p.fetch(query("payments_cancel_due"), limit)
        return [(r["user_id"], r["payment_id"]) for r in rows]

    async def outbox_batch(self, limit: int) -> list[OutboxRow]:
        p = await self._pool()
        rows = await p.fetch(query("payments_outbox_batch"), limit)
        return [
            OutboxRow(r["user_id"], r["event_id"], r["topic"], bytes(r["payload"])) for r in rows
        ]

    async def outbox_delete(self, rows: Sequence[OutboxRow]) -> None:
        p = await self._pool()
        await p.executemany(
            query("payments_outbox_delete"), [(r.user_id, r.event_id) for r in rows]
        )

    async def reconcile_rows(
        self,
    ) -> tuple[list[asyncpg.Record], list[asyncpg.Record], list[asyncpg.Record]]:
        p = await self._pool()
        return (
            await p.fetch(query("payments_reconcile")),
            await p.fetch(query("payment_refunds_totals")),
            await p.fetch(query("payments_paid_orders")),
        )
