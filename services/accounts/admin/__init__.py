"""Account administration commands (a command, not a service: services/accounts has no
``__main__.py``, so ``scripts/server`` does not start it as one; ``__main__.py`` is here).

    python -m services.accounts.admin create-admin --email admin@example.com [--name "Ops"]

Creates the first admin (the bootstrap path: there is no shared admin password). The
password is read from NEXUSCART_ADMIN_PASSWORD or, when unset, from standard input (one
line), never from the command line, where other users of the machine see it. An email
that already has an account keeps its password and is given the admin role.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import asyncpg

from nexuscart import config
from nexuscart.adapters import postgres, redis_conn
from nexuscart.app import accounts
from nexuscart.app.errors import Refused

PASSWORD_ENV = "NEXUSCART_ADMIN_PASSWORD"


async def create_admin(settings: config.Settings, email: str, password: str, name: str) -> int:
    """Create (or promote) the admin; returns the user id."""
    client = redis_conn.connect(settings.redis, timeout_s=5.0)
    pool = await postgres.create_pool(settings.postgres, timeout_s=10.0)

    async def pg() -> asyncpg.Pool:
        return pool

    acc = accounts.build(settings, client, pg)
    try:
        user = await acc.ensure_admin(email, password, name)
        return user.user_id
    finally:
        acc.close()
        await pool.close()
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.accounts.admin")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-admin", help="create the first admin (or promote a user)")
    create.add_argument("--email", required=True)
    create.add_argument("--name", default="Administrator", help="display name")
    args = parser.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        if sys.stdin.isatty():
            import getpass

            password = getpass.getpass("admin password: ")
        else:
            password = sys.stdin.readline().rstrip("\n")
    settings = config.load()
    if settings.app.environment != "dev" and password == config.DEV_ADMIN_PASSWORD:
        print("refused: the development admin password outside NEXUSCART_ENV=dev", file=sys.stderr)
        return 1
    try:
        user_id = asyncio.run(create_admin(settings, args.email, password, args.name))
    except Refused as exc:
        print(f"refused: {exc.detail or exc.title}", file=sys.stderr)
        return 1
    print(f"admin user {user_id}: {args.email}")
    return 0
