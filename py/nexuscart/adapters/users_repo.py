"""PostgreSQL side of accounts: the users, user_emails and users_outbox tables (migration
0004). SQL lives in sql/queries/*.sql; this module binds parameters and maps rows. Every
statement carries its table's distribution key (single shard on Citus) except the admin
listing and the outbox relay's poll."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, NamedTuple

import asyncpg
import msgspec

from nexuscart import events
from nexuscart.adapters.postgres import query

Pool = Callable[[], Awaitable[asyncpg.Pool]]

# A claim older than this whose user row never came (its registration died between the
# two statements) may be taken over by a new registration of the same email.
ORPHAN_CLAIM_S: Final = 60.0

_encoder: Final = msgspec.json.Encoder()


class User(NamedTuple):
    user_id: int
    email: str
    display_name: str
    roles: tuple[str, ...]
    disabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    password_hash: str | None = None


def _user(row: Any) -> User:
    return User(
        user_id=row["user_id"],
        email=row["email"],
        display_name=row["display_name"],
        roles=tuple(row["roles"]),
        disabled=row["disabled"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        password_hash=row.get("password_hash"),
    )


def registered_event(user: User) -> tuple[uuid.UUID, bytes]:
    """The UserRegistered envelope of a new user, encoded as it goes to Kafka."""
    event_id = uuid.uuid4()
    env = events.UserEnvelope(
        id=event_id,
        type="UserRegistered",
        version=1,
        occurred_at=user.created_at,
        key=str(user.user_id),
        data=events.UserRegistered(
            user_id=user.user_id,
            email=user.email,
            display_name=user.display_name,
            roles=list(user.roles),
            registered_at_ms=int(user.created_at.timestamp() * 1000),
        ),
    )
    return event_id, _encoder.encode(env)


class OutboxRow(NamedTuple):
    user_id: int
    event_id: uuid.UUID
    topic: str
    payload: bytes


class UsersRepo:
    def __init__(self, pool: Pool):
        self.pool = pool

    async def next_id(self) -> int:
        p = await self.pool()
        user_id: int = await p.fetchval(query("user_id_next"))
        return user_id

    async def claim_email(self, email: str, user_id: int) -> bool:
        """Claim ``email`` for ``user_id``; False if it belongs to someone. A claim left
        without a user (a registration that died halfway) for ORPHAN_CLAIM_S is taken over."""
        p = await self.pool()
        if await p.fetchval(query("user_email_claim"), email, user_id) is not None:
            return True
        row = await p.fetchrow(query("user_email_lookup"), email)
        if row is None or await self.by_id(row["user_id"]) is not None:
            return False
        took = await p.fetchval(
            query("user_email_takeover"), email, row["user_id"], ORPHAN_CLAIM_S, user_id
        )
        return took is not None

    async def create(
        self, user_id: int, email: str, display_name: str, password_hash: str, roles: Sequence[str]
    ) -> User:
        """The user row and its UserRegistered outbox row, in one single-shard transaction."""
        p = await self.pool()
        async with p.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                query("user_insert"), user_id, email, display_name, password_hash, list(roles)
            )
            user = _user(row)
            event_id, payload = registered_event(user)
            await conn.execute(
                query("users_outbox_insert"), user_id, event_id, events.USERS_TOPIC, payload
            )
        return user

    async def id_of_email(self, email: str) -> int | None:
        p = await self.pool()
        row = await p.fetchrow(query("user_email_lookup"), email)
        return None if row is None else int(row["user_id"])

    async def by_id(self, user_id: int) -> User | None:
        p = await self.pool()
        row = await p.fetchrow(query("user_by_id"), user_id)
        if row is None or row["password_hash"] is None:
            return None  # a row without a password predates accounts: not an account
        return _user(row)

    async def set_password(self, user_id: int, new_hash: str) -> bool:
        """A password change."""
        p = await self.pool()
        return await p.fetchval(query("user_set_password"), user_id, new_hash) is not None

    async def rehash_password(self, user_id: int, new_hash: str, old_hash: str) -> bool:
        """Today's parameters for an old hash, unless the password changed meanwhile."""
        p = await self.pool()
        done = await p.fetchval(query("user_rehash_password"), user_id, new_hash, old_hash)
        return done is not None

    async def _update(self, name: str, *args: object) -> User | None:
        p = await self.pool()
        row = await p.fetchrow(query(name), *args)
        return None if row is None else _user(row)

    async def update_profile(self, user_id: int, display_name: str) -> User | None:
        return await self._update("user_update_profile", user_id, display_name)

    async def set_roles(self, user_id: int, roles: Sequence[str]) -> User | None:
        return await self._update("user_set_roles", user_id, list(roles))

    async def set_disabled(self, user_id: int, disabled: bool) -> User | None:
        return await self._update("user_set_disabled", user_id, disabled)

    async def page(self, cursor: int | None, limit: int) -> list[User]:
        p = await self.pool()
        return [_user(r) for r in await p.fetch(query("users_page"), cursor, limit)]

    async def outbox_batch(self, limit: int) -> list[OutboxRow]:
        p = await self.pool()
        rows = await p.fetch(query("users_outbox_batch"), limit)
        return [
            OutboxRow(r["user_id"], r["event_id"], r["topic"], bytes(r["payload"])) for r in rows
        ]

    async def outbox_delete(self, rows: Sequence[OutboxRow]) -> None:
        p = await self.pool()
        await p.executemany(query("users_outbox_delete"), [(r.user_id, r.event_id) for r in rows])
