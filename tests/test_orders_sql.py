"""The named SQL statements (``nexuscart/adapters/sql/queries``) keep to what runs
single-shard and at all on Citus, checked on their text (CI has no Citus), and the multi-row
expansion the projector uses is exact."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from nexuscart.adapters.postgres import MAX_PARAMS, query, values_query

QUERIES = sorted(
    entry.name.removesuffix(".sql")
    for entry in resources.files("nexuscart.adapters").joinpath("sql", "queries").iterdir()
    if entry.name.endswith(".sql")
)
DISTRIBUTED = (
    "orders",
    "order_items",
    "order_events",
    "promotion_usages",
    "orders_outbox",
    "inbox",
    "payments",
    "users",
)
# statements that cannot name one user: a sale's orders are spread over every shard; the
# admin's users page lists every user (the email filter goes through user_emails instead)
# the payments reconciliation and refund sweeper are audits/background polls over every shard
FAN_OUT = {
    "reconcile_sale_orders",
    "users_page",
    "payments_refund_due",
    "payments_cancel_due",  # the cancel sweeper's poll, like the refund sweeper's
    "payments_reconcile",
    "payments_paid_orders",
    "orders_admin_page",
    "orders_outbox_batch",
    "outbox_backlog",  # the relay's gauges: every outbox's backlog and age
}


def _sql(name: str) -> str:
    """The statement without its comments."""
    return re.sub(r"--[^\n]*", "", query(name))


def test_there_are_queries() -> None:
    assert {"inbox_insert", "orders_set_status", "orders_of_user"} <= set(QUERIES)


@pytest.mark.parametrize("name", QUERIES)
def test_statements_on_distributed_tables_carry_the_distribution_key(name: str) -> None:
    sql = _sql(name)
    tables = {t for t in DISTRIBUTED if re.search(rf"\b{t}\b", sql)}
    if not tables or name in FAN_OUT:
        return
    if sql.lstrip().startswith("INSERT"):
        # every row names its user: Citus routes each row by it
        assert re.search(r"INSERT INTO \w+ (AS \w+ )?\(user_id,", sql), name
    else:
        # ``= ANY($n)``: the ids of one shard group (Citus routes it to that shard)
        assert re.search(r"\buser_id\s*=\s*(ANY\()?\$\d", sql), f"{name}: no user_id = $n filter"


@pytest.mark.parametrize("name", QUERIES)
def test_no_function_calls_in_returning(name: str) -> None:
    """Citus: non-IMMUTABLE functions are not allowed in the RETURNING clause."""
    match = re.search(r"\bRETURNING\b(.*)", _sql(name), re.DOTALL)
    if match:
        assert "(" not in match.group(1), f"{name}: {match.group(1).strip()}"


@pytest.mark.parametrize("name", QUERIES)
def test_only_searched_case(name: str) -> None:
    """Citus deparses ``CASE x WHEN ...`` wrongly ("operator does not exist: text = boolean")."""
    assert not re.search(r"\bCASE\s+(?!WHEN\b)", _sql(name), re.IGNORECASE)


@pytest.mark.parametrize("name", QUERIES)
def test_no_writes_from_unnest_or_with(name: str) -> None:
    """Citus plans INSERT ... SELECT FROM unnest and data-modifying CTEs by pulling rows to
    the coordinator: inserts use multi-row VALUES instead. An UPDATE ... FROM unnest(...) is
    pushed down whole, the unnest inlined into each shard's statement (EXPLAIN VERBOSE on
    Citus 13.2.2, docs/scaling.md), so it is allowed with a ``user_id = ANY($n)`` filter:
    without it Citus cannot prune, and the statement goes to every shard."""
    sql = _sql(name)
    if re.search(r"^\s*(INSERT|DELETE)\b", sql, re.MULTILINE):
        assert "unnest" not in sql
    if re.search(r"^\s*UPDATE\b", sql, re.MULTILINE) and "unnest" in sql:
        assert re.search(r"\buser_id\s*=\s*ANY\(\$\d", sql), f"{name}: no user_id = ANY($n)"
    if re.search(r"^\s*(INSERT|UPDATE|DELETE)\b", sql, re.MULTILINE):
        assert not re.match(r"\s*WITH\b", sql)


@pytest.mark.parametrize("name", QUERIES)
def test_no_functions_in_on_conflict_do_update(name: str) -> None:
    """Citus: "functions used in the DO UPDATE SET clause of INSERTs on distributed tables
    must be marked IMMUTABLE" (now() is not); the same for the ON CONFLICT WHERE."""
    match = re.search(r"\bDO UPDATE\b(.*)", _sql(name), re.DOTALL)
    if match:
        clause = match.group(1)
        assert not re.search(r"\b(now|current_timestamp|clock_timestamp)\b", clause, re.I)


def test_values_query_repeats_the_row_with_renumbered_parameters() -> None:
    one = values_query("order_items_insert", 1)
    assert one == query("order_items_insert")
    three = values_query("order_items_insert", 3)
    assert "VALUES ($1, $2, $3, $4, $5, $6, $7, $8),\n       ($9, $10, $11," in three
    assert "($17, $18, $19, $20, $21, $22, $23, $24)\nON CONFLICT DO NOTHING" in three
    assert sorted(int(n) for n in re.findall(r"\$(\d+)", three)) == list(range(1, 25))


def test_values_query_refuses_more_parameters_than_the_protocol_allows() -> None:
    with pytest.raises(ValueError, match="exceed"):
        values_query("orders_insert_placed", MAX_PARAMS // 10 + 1)
    with pytest.raises(ValueError, match="no 'VALUES"):
        values_query("orders_of_user", 2)  # not a one-row INSERT ... VALUES
