"""One-shot schema migration for docker-compose (the ``migrate`` service).

The edge and the services never migrate on start: with several replicas racing, and Citus
needing its workers registered first, one explicit step that the app containers wait for
(``service_completed_successfully``) is simpler to reason about. ``scripts/server`` does the
same step in-process for the local stack.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import asyncpg

from nexuscart.adapters.postgres import migrate


async def main() -> int:
    dsn = os.environ["PG_DSN"]
    # The coordinator's healthcheck can pass a moment before it accepts our role: retry briefly.
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
            break
        except (OSError, asyncpg.PostgresError) as exc:
            if time.monotonic() > deadline:
                print(f"migrate: cannot connect to PostgreSQL: {exc}", file=sys.stderr)
                return 1
            await asyncio.sleep(1)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    print("migrate: " + (", ".join(applied) if applied else "schema up to date"))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
