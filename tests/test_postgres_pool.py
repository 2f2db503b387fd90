"""The shared asyncpg pool: a released connection goes back without a reset round trip, so
nothing that uses the pool may leave session state behind (checked on the source)."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

from nexuscart import config
from nexuscart.adapters.postgres import create_pool

ROOT = Path(__file__).resolve().parent.parent
# session state a reset query would clear: advisory locks, LISTEN, open cursors, SET (our
# SQL keywords are upper case; a statement's SET, not an UPDATE's)
SESSION_STATE = re.compile(
    r"pg_advisory_(?:xact_)?lock|\bLISTEN\b|\bDECLARE\b|(?:\A|;|[\"'])\s*SET\s|set_config\("
)
# the migration runner takes its advisory lock on its own connection, not the pool's
OWN_CONNECTION = {Path("py/nexuscart/adapters/postgres.py")}


async def test_a_released_connection_goes_back_without_a_reset_query(
    settings: config.Settings,
) -> None:
    pool = await create_pool(settings.postgres)
    watcher = await asyncpg.connect(settings.postgres.dsn)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid() /* last-before-release */")
        last = await watcher.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid)
        assert "last-before-release" in last  # asyncpg's reset would be the last statement
    finally:
        await watcher.close()
        await pool.close()


def test_no_pool_user_leaves_session_state_behind() -> None:
    found = []
    for base in ("py/nexuscart", "services", "edge"):
        for path in sorted((ROOT / base).rglob("*")):
            rel = path.relative_to(ROOT)
            if path.suffix not in (".py", ".sql") or rel in OWN_CONNECTION:
                continue
            if "migrations" in rel.parts:
                continue  # run once by the migration runner on its own connection
            found += [f"{rel}: {m.group(0)}" for m in SESSION_STATE.finditer(path.read_text())]
    assert found == []
