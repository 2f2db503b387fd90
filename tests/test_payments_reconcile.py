"""`python -m services.payments reconcile` on a database of its own (the session's holds
other tests' payments without orders): clean books exit 0; a paid order without a succeeded
payment, a refund above the capture's bookkeeping, or a late payment not refunded exit 1
with one JSON line per mismatch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from nexuscart import config
from nexuscart.adapters.postgres import migrate_dsn
from tests.conftest import ROOT
from tests.test_migrations import _dsn_for


@pytest.fixture
async def books(settings: config.Settings, migrated: None) -> AsyncIterator[str]:
    """A migrated database of its own; dropped at teardown."""
    name = f"nexuscart_pay_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(settings.postgres.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = _dsn_for(settings.postgres.dsn, name)
        await migrate_dsn(dsn)
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def reconcile(dsn: str) -> tuple[int, list[str]]:
    env = {**os.environ, "PG_DSN": dsn, "PYTHONPATH": f"{ROOT / 'py'}:{ROOT}"}
    proc = subprocess.run(
        [sys.executable, "-m", "services.payments", "reconcile"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    return proc.returncode, proc.stdout.decode().splitlines()


async def test_reconcile_exits_0_on_clean_books_and_1_naming_each_mismatch(books: str) -> None:
    conn = await asyncpg.connect(books)
    try:
        await conn.execute(
            "INSERT INTO orders (user_id, order_id, status, total_cents) VALUES"
            # PAID: paid and the hold sold (CONFIRMED before the order lifecycle, issue 11)
            " (1, 10, 'PAID', 500), (2, 20, 'EXPIRED', 700)"
        )
        await conn.execute(
            "INSERT INTO payments (user_id, payment_id, order_id, amount_cents, status,"
            " captured_cents, refunded_cents, order_closed, requested) VALUES"
            " (1, 'pay_10', 10, 500, 'succeeded', 500, 0, false, true),"
            " (2, 'pay_20', 20, 700, 'succeeded', 700, 700, true, true)"
        )
        await conn.execute(
            "INSERT INTO payment_refunds (user_id, refund_key, payment_id, order_id,"
            " amount_cents, reason, provider_ref) VALUES"
            " (2, 'nexuscart-refund-20-late', 'pay_20', 20, 700, 'late', 're_1')"
        )
    finally:
        await conn.close()
    code, lines = reconcile(books)
    assert (code, lines[-1]) == (0, "payments=2 paid_orders=1 mismatches=0")

    conn = await asyncpg.connect(books)
    try:
        # a paid order whose payment failed; a late payment left unrefunded
        await conn.execute(
            "INSERT INTO orders (user_id, order_id, status, total_cents) VALUES"
            " (3, 30, 'PAID', 100), (4, 40, 'EXPIRED', 100)"
        )
        await conn.execute(
            "INSERT INTO payments (user_id, payment_id, order_id, amount_cents, status,"
            " captured_cents, order_closed) VALUES"
            " (3, 'pay_30', 30, 100, 'failed', 0, false),"
            " (4, 'pay_40', 40, 100, 'succeeded', 100, true)"
        )
    finally:
        await conn.close()
    code, lines = reconcile(books)
    assert code == 1
    kinds = sorted(json.loads(line)["kind"] for line in lines[:-1])
    assert kinds == ["late-payment-not-refunded", "paid-order-without-succeeded-payment"]
