"""PostgreSQL: the asyncpg pool and the numbered migrations in sql/migrations/."""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Sequence
from importlib import resources
from typing import Final

import asyncpg

from nexuscart.config import PostgresSettings

# One advisory lock id for "migrations are running", so concurrent starters serialise.
_MIGRATION_LOCK = 0x6E657875


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pool connection returned without asyncpg's reset query. That query (advisory locks,
    cursors, LISTEN, SET) is one more round trip and statement on every release: 5.6% of an
    edge worker building product pages (py-spy). Pool users take no advisory lock, LISTEN or
    session SET (tests/test_postgres_pool.py checks their source); asyncpg still rolls back a
    transaction left open."""

    def get_reset_query(self) -> str:
        return ""


async def create_pool(settings: PostgresSettings, timeout_s: float = 2.0) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        settings.dsn,
        connection_class=PooledConnection,
        min_size=settings.pool_min,
        max_size=settings.pool_max,
        timeout=timeout_s,
        command_timeout=max(timeout_s, 5.0),
        server_settings=SERVER_SETTINGS,
    )


# asyncpg looks up the codec of an array parameter (bigint[], text[], ...) once per
# connection with a catalog query; on a Citus coordinator that query took 1-2 s while Citus
# hid its shard tables from it, 0.01-0.04 s with this (docs/scaling.md). Plain PostgreSQL
# takes a "citus." setting as a placeholder that nothing reads.
SERVER_SETTINGS: Final = {"citus.override_table_visibility": "off"}


@functools.cache
def query(name: str) -> str:
    """The named query sql/queries/<name>.sql (read once)."""
    return (
        resources.files("nexuscart.adapters").joinpath("sql", "queries", f"{name}.sql").read_text()
    )


_VALUES_ROW: Final = re.compile(r"^VALUES (\(.*\))$", re.MULTILINE)
_PARAM: Final = re.compile(r"\$(\d+)")
MAX_PARAMS: Final = 32_767  # the protocol's limit on bind parameters per statement


@functools.lru_cache(maxsize=1024)
def values_query(name: str, rows: int) -> str:
    """The named query, a one-row ``INSERT ... VALUES (...)`` (its VALUES on a line of its
    own), with that row repeated ``rows`` times and its parameters renumbered: row ``i``
    uses ``$(k*i+1)..$(k*i+k)``. One multi-row statement per shard group is what Citus
    routes to a single shard (an ``INSERT ... SELECT FROM unnest(...)`` is pulled to the
    coordinator); each file stays a plain one-row statement that runs as it is."""
    sql = query(name)
    match = _VALUES_ROW.search(sql)
    if match is None or rows < 1:
        raise ValueError(f"{name}.sql has no 'VALUES (...)' line, or rows={rows} < 1")
    row = match.group(1)
    width = max(int(n) for n in _PARAM.findall(row))
    if width * rows > MAX_PARAMS:
        raise ValueError(f"{rows} rows of {width} parameters exceed {MAX_PARAMS}")
    expanded = ",\n       ".join(
        _PARAM.sub(lambda m, base=i * width: f"${int(m.group(1)) + base}", row) for i in range(rows)
    )
    return sql[: match.start(1)] + expanded + sql[match.end(1) :]


# Rows per multi-row statement (under the protocol's limit for rows of up to 32 parameters).
MAX_ROWS: Final = 1000
# Row counts a multi-row statement is padded up to: a few statement shapes per query, so
# they stay in asyncpg's prepared-statement cache (an unseen shape costs a Parse round trip
# and a plan), at most 1.5x the rows.
_SIZES: Final = sorted(
    {min(MAX_ROWS, m << k) for k in range(11) for m in (2, 3)} | {1, 2, MAX_ROWS}
)


def padded_chunks(rows: Sequence[tuple[object, ...]], pad: bool) -> list[list[tuple[object, ...]]]:
    """``rows`` in statements of at most MAX_ROWS, each padded to a size of _SIZES by
    repeating its last row when ``pad``: only for ON CONFLICT DO NOTHING statements, where
    a repeated row is a conflict with itself and changes nothing."""
    out = []
    for i in range(0, len(rows), MAX_ROWS):
        chunk = list(rows[i : i + MAX_ROWS])
        if pad:
            size = _SIZES[bisect.bisect_left(_SIZES, len(chunk))]
            chunk = chunk + [chunk[-1]] * (size - len(chunk))
        out.append(chunk)
    return out


async def insert_rows(
    conn: asyncpg.Connection, name: str, rows: Sequence[tuple[object, ...]], pad: bool = True
) -> list[asyncpg.Record]:
    """The named one-row INSERT for every row of ``rows``, multi-row (``values_query``); its
    RETURNING rows, if any. ``pad``: only for ON CONFLICT DO NOTHING statements (see
    ``padded_chunks``); a DO UPDATE statement takes distinct rows, unpadded."""
    out: list[asyncpg.Record] = []
    for chunk in padded_chunks(rows, pad):
        sql = values_query(name, len(chunk))
        out.extend(await conn.fetch(sql, *[v for row in chunk for v in row]))
    return out


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every sql/migrations/NNNN_name.sql, in order."""
    folder = resources.files("nexuscart.adapters").joinpath("sql", "migrations")
    out = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append((version, entry.name, entry.read_text()))
    return sorted(out)


async def migrate_dsn(dsn: str, timeout_s: float = 10.0) -> list[str]:
    """Connect, apply pending migrations (``migrate``), close; return the names applied."""
    conn = await asyncpg.connect(dsn, timeout=timeout_s)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations, each in its own transaction; return the names applied."""
    applied: list[str] = []
    # Lock first: even CREATE TABLE IF NOT EXISTS collides when two migrators race.
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version int PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            applied.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied
