"""The money check: every paid order has exactly one succeeded payment, no payment lacks an
order (once the order had time to be projected), every refund matches a reason we know
(late payment, admin action, buyer cancellation), and no payment gives back more than it
captured. Pure over the rows the repo reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from nexuscart.domain import payments as rules

REFUND_REASONS = frozenset({"late", "admin", "cancelled"})


class Mismatch(msgspec.Struct, frozen=True):
    kind: str
    user_id: int
    order_id: int
    detail: str


def check(
    payments: Iterable[Mapping[str, Any]],
    refunds: Iterable[Mapping[str, Any]],
    paid_orders: Iterable[Mapping[str, Any]],
) -> list[Mismatch]:
    out: list[Mismatch] = []
    pays = {(p["user_id"], p["order_id"]): p for p in payments}
    for u, o in {(r["user_id"], r["order_id"]) for r in paid_orders}:
        p = pays.get((u, o))
        if p is None or p["status"] != rules.SUCCEEDED:
            out.append(
                Mismatch("paid-order-without-succeeded-payment", u, o, str(p and p["status"]))
            )
    refunded: dict[tuple[int, str], int] = {}
    for r in refunds:
        if r["reason"] not in REFUND_REASONS:
            out.append(Mismatch("refund-without-reason", r["user_id"], -1, str(r["reason"])))
        key = (r["user_id"], r["payment_id"])
        refunded[key] = refunded.get(key, 0) + int(r["cents"])
    for (u, o), p in pays.items():
        if p["order_status"] is None and p["status"] != rules.PENDING:
            out.append(Mismatch("payment-without-order", u, o, p["status"]))
        if p["refunded_cents"] > p["captured_cents"]:
            out.append(
                Mismatch(
                    "refund-above-capture", u, o, f"{p['refunded_cents']} > {p['captured_cents']}"
                )
            )
        ours = refunded.get((u, p["payment_id"]), 0)
        if p["refunded_cents"] > ours:
            out.append(
                Mismatch(
                    "refund-without-action",
                    u,
                    o,
                    f"provider refunded {p['refunded_cents']}, we asked {ours}",
                )
            )
        owed = rules.late_refund_owed(
            rules.State(p["status"], p["captured_cents"], p["refunded_cents"], p["order_closed"])
        )
        if owed and p["order_status"] in ("EXPIRED", "CANCELLED"):
            out.append(Mismatch("late-payment-not-refunded", u, o, f"{owed} cents owed"))
    return out
