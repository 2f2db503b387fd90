"""The numbered migrations (``nexuscart/adapters/sql/migrations``) on the real PostgreSQL.

Every test works in a database of its own, created fresh on the stack's server and dropped
afterwards, so "applies from nothing" and "second run applies nothing" are really tested.

PostgreSQL here has no Citus. The 0002 block is checked two ways: as shipped it must be a
no-op; and against a stand-in for Citus' catalog and functions (a schema that shadows
``pg_extension`` through ``search_path``, with ``create_distributed_table`` /
``create_reference_table`` that only record their calls) it must distribute the right tables
with the right co-location, once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from nexuscart import config
from nexuscart.adapters.postgres import migrate, migration_files

# Tables that grow with users: distributed by user_id, co-located (docs/scaling.md).
USER_TABLES = [
    "users",
    "orders",
    "order_items",
    "payments",
    "inbox",
    "users_outbox",
    "payment_webhooks",
    "payment_refunds",
    "payments_outbox",
    "order_events",
    "promotion_usages",
    "orders_outbox",
]
CATALOG_TABLES = [
    "products",
    "flash_sales",
    "categories",
    "variants",
    "skus",
    "stock_adjustments",
    "catalog_outbox",
]

# Citus' API, reduced to what 0002 calls; each call is recorded and registers the table in a
# pg_dist_partition look-alike, as the real functions do.
CITUS_STANDIN = """
CREATE SCHEMA citus_standin;
CREATE TABLE citus_standin.pg_extension (extname name);
INSERT INTO citus_standin.pg_extension VALUES ('citus');
CREATE TABLE citus_standin.pg_dist_partition (logicalrelid regclass PRIMARY KEY);
CREATE TABLE citus_standin.calls (
    n serial, fn text, tbl text, dist_column text, colocate_with text);
CREATE FUNCTION citus_standin.create_reference_table(table_name regclass) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO citus_standin.calls (fn, tbl) VALUES ('reference', table_name::text);
    INSERT INTO citus_standin.pg_dist_partition VALUES (table_name);
$$;
CREATE FUNCTION citus_standin.create_distributed_table(
    table_name regclass, distribution_column text, distribution_type text DEFAULT 'hash',
    colocate_with text DEFAULT 'default', shard_count int DEFAULT NULL) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO citus_standin.calls (fn, tbl, dist_column, colocate_with)
    VALUES ('distributed', table_name::text, distribution_column, colocate_with);
    INSERT INTO citus_standin.pg_dist_partition VALUES (table_name);
$$;
"""
# public first (the tables go there), then the stand-in, then pg_catalog: an explicit
# pg_catalog entry is searched in its place, so citus_standin.pg_extension shadows the real one.
STANDIN_SEARCH_PATH = "public, citus_standin, pg_catalog"


def _dsn_for(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture
async def fresh_db(settings: config.Settings) -> AsyncIterator[str]:
    """The DSN of a new, empty database; dropped at teardown."""
    name = f"nexuscart_mig_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(settings.postgres.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield _dsn_for(settings.postgres.dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def db(fresh_db: str) -> AsyncIterator[Any]:
    conn = await asyncpg.connect(fresh_db)
    try:
        yield conn
    finally:
        await conn.close()


async def _primary_key(conn: Any, table: str) -> list[str]:
    rows = await conn.fetch(
        """
        SELECT a.attname
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = $1::regclass AND i.indisprimary
        ORDER BY k.pos
        """,
        table,
    )
    return [r["attname"] for r in rows]


async def test_migration_files_are_numbered_without_gaps() -> None:
    files = migration_files()
    assert [v for v, _, _ in files] == list(range(1, len(files) + 1))
    assert all(name.startswith(f"{v:04d}_") for v, name, _ in files)


async def test_apply_on_plain_postgres_then_second_run_applies_nothing(db: Any) -> None:
    names = [name for _, name, _ in migration_files()]
    assert await migrate(db) == names
    assert await migrate(db) == []
    recorded = await db.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"]) for r in recorded] == [
        (v, n) for v, n, _ in migration_files()
    ]
    tables = {
        r["tablename"]
        for r in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert set(USER_TABLES + CATALOG_TABLES) <= tables


async def test_every_migration_file_can_run_again(db: Any) -> None:
    """The files themselves are re-runnable (IF NOT EXISTS, guarded DO blocks): a migration
    interrupted after its DDL but before its schema_migrations row cannot wedge a deploy."""
    await migrate(db)
    for _, _, sql in migration_files():
        async with db.transaction():
            await db.execute(sql)  # raises if any statement is not idempotent


async def test_concurrent_migrators_apply_each_migration_once(fresh_db: str) -> None:
    """Several processes starting at once (edge workers, services) all call migrate(); the
    advisory lock must serialise them so each migration is applied exactly once."""
    conns = [await asyncpg.connect(fresh_db) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    applied = sorted(name for r in results for name in r)
    assert applied == sorted(name for _, name, _ in migration_files())


@pytest.mark.parametrize("table", USER_TABLES)
async def test_user_tables_have_user_id_in_primary_key(db: Any, table: str) -> None:
    await migrate(db)
    pk = await _primary_key(db, table)
    assert "user_id" in pk, f"{table} primary key {pk}"
    assert pk[0] == "user_id", f"{table}: user_id should lead the key (one user's rows adjacent)"
    col = await db.fetchrow(
        "SELECT data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = $1 AND column_name = 'user_id'",
        table,
    )
    # co-located tables must share the distribution column's type
    assert (col["data_type"], col["is_nullable"]) == ("bigint", "NO")


async def test_unique_indexes_of_user_tables_include_user_id(db: Any) -> None:
    """Citus can only enforce a unique constraint on a distributed table if it includes the
    distribution column; the same holds for ON CONFLICT targets on the write path."""
    await migrate(db)
    rows = await db.fetch(
        """
        SELECT c.relname AS tbl, ic.relname AS idx,
               array_agg(a.attname::text ORDER BY k.pos) AS cols
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_class ic ON ic.oid = i.indexrelid
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indisunique AND c.relname = ANY($1::text[])
          AND c.relnamespace = 'public'::regnamespace
        GROUP BY c.relname, ic.relname
        """,
        USER_TABLES,
    )
    assert {r["tbl"] for r in rows} == set(USER_TABLES)
    assert [(r["tbl"], r["idx"]) for r in rows if "user_id" not in r["cols"]] == []


async def test_citus_block_is_a_noop_without_the_extension(db: Any) -> None:
    assert await db.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'citus'") == 0
    await migrate(db)
    assert await db.fetchval("SELECT to_regclass('pg_dist_partition')") is None
    assert await db.fetchval("SELECT to_regproc('create_distributed_table')") is None
    assert await db.fetchval("SELECT name FROM schema_migrations WHERE version = 2") == (
        "0002_citus_distribution.sql"
    )


async def test_citus_block_distributes_and_colocates_once(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute(CITUS_STANDIN)
    finally:
        await conn.close()
    conn = await asyncpg.connect(fresh_db, server_settings={"search_path": STANDIN_SEARCH_PATH})
    try:
        await migrate(conn)
        calls = [
            (r["fn"], r["tbl"], r["dist_column"], r["colocate_with"])
            for r in await conn.fetch("SELECT * FROM citus_standin.calls ORDER BY n")
        ]
        assert calls == [
            ("reference", "products", None, None),
            ("reference", "flash_sales", None, None),
            # users first, with the default co-location group; the rest join it
            ("distributed", "users", "user_id", "default"),
            ("distributed", "orders", "user_id", "users"),
            ("distributed", "order_items", "user_id", "users"),
            ("distributed", "payments", "user_id", "users"),
            ("distributed", "inbox", "user_id", "users"),
            # 0004: the email lookup in a group of its own (ADR 0010), the users outbox
            ("distributed", "user_emails", "email", "none"),
            ("distributed", "users_outbox", "user_id", "users"),
            # 0005: the catalog (0001's placeholder products replaced): the category tree
            # everywhere, products in a group of their own with their rows, SKUs by sku
            ("reference", "categories", None, None),
            ("distributed", "products", "product_id", "none"),
            ("distributed", "variants", "product_id", "products"),
            ("distributed", "stock_adjustments", "product_id", "products"),
            ("distributed", "catalog_outbox", "product_id", "products"),
            ("distributed", "skus", "sku", "none"),
            # 0006: payments' webhook dedup, refunds and outbox, with the payment rows
            ("distributed", "payment_webhooks", "user_id", "users"),
            ("distributed", "payment_refunds", "user_id", "users"),
            ("distributed", "payments_outbox", "user_id", "users"),
            # 0007: the order timeline, promotion usages and the orders outbox, with the orders
            ("distributed", "order_events", "user_id", "users"),
            ("distributed", "promotion_usages", "user_id", "users"),
            ("distributed", "orders_outbox", "user_id", "users"),
            # 0008: promotion definitions, read by every checkout: everywhere
            ("reference", "promotions", None, None),
        ]
        # idempotent: run again, nothing is distributed twice
        for sql in (s for v, _, s in migration_files() if v in (2, 4, 5, 6, 8)):
            await conn.execute(sql)
        assert await conn.fetchval("SELECT count(*) FROM citus_standin.calls") == len(calls)
    finally:
        await conn.close()
