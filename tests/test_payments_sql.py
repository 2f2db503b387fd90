"""The payments statements on the tables of migration 0006 (payment_webhooks,
payment_refunds, payments_outbox) carry user_id like those on the 0001 tables
(tests/test_orders_sql.py checks those): single shard on Citus, except the named background
polls and audits."""

from __future__ import annotations

import re

import pytest

from tests.test_orders_sql import QUERIES, _sql

TABLES = ("payment_webhooks", "payment_refunds", "payments_outbox")
# every shard on purpose: the relay's poll, the sweeper's re-send poll, the audit's totals
FAN_OUT = {"payments_outbox_batch", "payment_refunds_unsent", "payment_refunds_totals"}
PAYMENTS_QUERIES = [q for q in QUERIES if q.startswith(("payment", "inbox_seen"))]


def test_there_are_payments_queries() -> None:
    assert {"payment_insert", "payment_lock", "payments_outbox_insert"} <= set(PAYMENTS_QUERIES)


@pytest.mark.parametrize("name", PAYMENTS_QUERIES)
def test_payments_statements_carry_the_distribution_key(name: str) -> None:
    sql = _sql(name)
    if not any(re.search(rf"\b{t}\b", sql) for t in TABLES) or name in FAN_OUT:
        return
    if sql.lstrip().startswith("INSERT"):
        assert re.search(r"INSERT INTO \w+ \(user_id,", sql), name
    else:
        assert re.search(r"\buser_id\s*=\s*\$\d", sql), f"{name}: no user_id = $n filter"
