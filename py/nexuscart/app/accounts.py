"""Account use cases: registration, login, refresh-token rotation, logout, profile, password
change and the admin's user management (docs/accounts.md). Handlers and the bootstrap
command call these; the rules are in ``domain.accounts``, the storage in the adapters."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol

import asyncpg
import msgspec
import redis.asyncio as aioredis

from nexuscart import _core, auth, config
from nexuscart.adapters import revocations
from nexuscart.adapters.login_guard import Limits, LoginGuard
from nexuscart.adapters.passwords import HasherBusy, PasswordHasher
from nexuscart.adapters.redis_pipe import RedisPipe
from nexuscart.adapters.sessions import RegistrationReplays, SessionStore
from nexuscart.adapters.users_repo import User, UsersRepo
from nexuscart.app.errors import Refused, Unavailable, pg_errors, redis_errors
from nexuscart.domain import accounts as rules

__all__ = ["Accounts", "Refused", "TokenPair", "Unavailable", "UserView", "UsersPage"]


class UserView(msgspec.Struct, frozen=True):
    user_id: int
    email: str
    display_name: str
    roles: list[str]
    disabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class TokenPair(msgspec.Struct, frozen=True):
    access_token: str
    token_type: str
    expires_in: int  # seconds the access token lives
    refresh_token: str
    refresh_expires_in: int  # seconds the session lives unused
    user_id: int
    roles: list[str]


class UsersPage(msgspec.Struct, frozen=True):
    items: list[UserView]
    next_cursor: str | None


class Mint(Protocol):
    def __call__(self, user_id: int, roles: Sequence[str]) -> str: ...


RevokeBefore = Callable[[int, float], Awaitable[None]]

INVALID_CREDENTIALS: Final = (401, "invalid-credentials", "Email or password is wrong")
INVALID_REFRESH: Final = (401, "invalid-refresh-token", "Refresh token is not valid")
DISABLED: Final = (403, "account-disabled", "This account is disabled")
NOT_FOUND: Final = (404, "not-found", "No such user")
LOCKED_TITLE: Final = "Too many login attempts"


def view(user: User) -> UserView:
    return UserView(
        user_id=user.user_id,
        email=user.email,
        display_name=user.display_name,
        roles=list(user.roles),
        disabled=user.disabled,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


def _policy(exc: rules.PolicyError) -> Refused:
    return Refused(422, "validation-error", "Request body failed validation", str(exc))


def _busy() -> Refused:
    return Refused(
        503, "busy", "Too many password checks in progress", "retry shortly", retry_after_s=1
    )


class Accounts:
    def __init__(
        self,
        repo: UsersRepo,
        sessions: SessionStore,
        replays: RegistrationReplays,
        guard: LoginGuard,
        hasher: PasswordHasher,
        mint: Mint,
        revoke_before: RevokeBefore,
        settings: config.AccountsSettings,
        ip_gate: _core.Gate | None = None,
    ):
        self.repo = repo
        self.sessions = sessions
        self.replays = replays
        self.guard = guard
        self.hasher = hasher
        self.mint = mint
        self.revoke_before = revoke_before
        self.settings = settings
        self.ip_gate = ip_gate

    def close(self) -> None:
        self.hasher.close()
        if self.sessions.pipe is not None:
            self.sessions.pipe.close()

    # -- helpers --------------------------------------------------------------------------

    def first_line(self, ip: str) -> None:
        """The in-process per-IP GCRA bucket (Rust gate) for login and registration: a flood
        from one address is refused before it costs a Redis call or a hash."""
        if self.ip_gate is None:
            return
        code, retry_ms = self.ip_gate.check(0, 0, ip)
        if code == _core.RATE_LIMITED:
            raise Refused(
                429,
                "rate-limited",
                "Too many requests from this address",
                retry_after_s=max(1, -(-retry_ms // 1000)),
            )

    async def _hash(self, password: str) -> str:
        try:
            return await self.hasher.hash(rules.password_bytes(password))
        except HasherBusy:
            raise _busy() from None

    async def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return await self.hasher.verify(password_hash, rules.password_bytes(password))
        except HasherBusy:
            raise _busy() from None

    async def _user(self, user_id: int) -> User:
        with pg_errors():
            user = await self.repo.by_id(user_id)
        if user is None:
            raise Refused(*NOT_FOUND)
        return user

    async def _new_session(self, user: User) -> TokenPair:
        s = self.settings
        token = rules.new_refresh_token(user.user_id, rules.new_family())
        with redis_errors():
            await self.sessions.issue(token, s.refresh_token_ttl_s, user.roles, user.disabled)
        return self._pair(user.user_id, user.roles, token.raw)

    def _pair(self, user_id: int, roles: Sequence[str], refresh: str) -> TokenPair:
        s = self.settings
        return TokenPair(
            access_token=self.mint(user_id, roles),
            token_type="Bearer",
            expires_in=s.access_token_ttl_s,
            refresh_token=refresh,
            refresh_expires_in=s.refresh_token_ttl_s,
            user_id=user_id,
            roles=list(roles),
        )

    async def _revoke_tokens(self, user_id: int) -> None:
        """Access tokens of the user issued before now stop being accepted (within the
        edge's revocation feed delay; docs/accounts.md)."""
        with redis_errors():
            await self.revoke_before(user_id, time.time())

    async def _record(self, user: User) -> None:
        with redis_errors():
            await self.sessions.put_record(user.user_id, user.roles, user.disabled)

    # -- registration and login -----------------------------------------------------------

    async def register(
        self, email: str, password: str, display_name: str, idem_key: str
    ) -> tuple[UserView, bool]:
        """A new customer; (the user, whether this answer is a replay of the key's first).

        A taken email gets the same answer as a new one (201 and a user with a fresh id
        that is never stored) after the same work (a hash, an id, a claim attempt): the
        answer cannot tell anyone whether the address has an account."""
        try:
            email = rules.normalise_email(email)
            display_name = rules.normalise_display_name(display_name)
            rules.check_password(password, email, display_name)
        except rules.PolicyError as exc:
            raise _policy(exc) from None
        with redis_errors():
            replayed = await self.replays.get(email, idem_key)
        if replayed is not None:
            return msgspec.json.decode(replayed, type=UserView), True
        password_hash = await self._hash(password)
        roles = rules.DEFAULT_ROLES
        with pg_errors():
            user_id = await self.repo.next_id()
            claimed = await self.repo.claim_email(email, user_id)
            user = (
                await self.repo.create(user_id, email, display_name, password_hash, roles)
                if claimed
                else None
            )
        if user is not None:
            await self._record(user)
            out = view(user)
        else:
            now = dt.datetime.now(dt.UTC)
            out = UserView(user_id, email, display_name, list(roles), False, now, now)
        with redis_errors():
            await self.replays.put(email, idem_key, msgspec.json.encode(out))
        return out, False

    async def login(self, email: str, password: str, ip: str) -> TokenPair:
        self.first_line(ip)
        try:
            email = rules.normalise_email(email)
        except rules.PolicyError as exc:
            raise _policy(exc) from None
        with redis_errors():
            wait_s = await self.guard.attempt(email, ip)
        if wait_s:
            # the same answer for a locked account, an unknown one and a locked address
            raise Refused(
                429,
                "too-many-attempts",
                LOCKED_TITLE,
                "login is locked for a while after repeated failures",
                retry_after_s=wait_s,
            )
        with pg_errors():
            user_id = await self.repo.id_of_email(email)
            user = None if user_id is None else await self.repo.by_id(user_id)
        ok = await self._verify(None if user is None else user.password_hash, password)
        if not ok or user is None or user.password_hash is None:
            raise Refused(*INVALID_CREDENTIALS)
        with redis_errors():
            await self.guard.succeeded(email, ip)
        if user.disabled:
            raise Refused(*DISABLED)
        if self.hasher.needs_rehash(user.password_hash):
            # the parameters changed since this hash was made: store one at today's; a
            # password changed meanwhile wins (compare-and-set on the old hash)
            new_hash = await self._hash(password)
            with pg_errors():
                await self.repo.rehash_password(user.user_id, new_hash, user.password_hash)
        return await self._new_session(user)

    # -- sessions -------------------------------------------------------------------------

    async def refresh(self, raw: str) -> TokenPair:
        presented = rules.parse_refresh_token(raw)
        if presented is None:
            raise Refused(*INVALID_REFRESH)
        s = self.settings
        successor = rules.new_refresh_token(presented.user_id, presented.family)
        for _ in range(2):
            with redis_errors():
                rot = await self.sessions.rotate(
                    presented, successor, s.refresh_grace_s, s.refresh_token_ttl_s
                )
            if rot.outcome != "nouser":
                break
            # the user's record is gone from Redis (flushed, restored): reload it once
            with pg_errors():
                user = await self.repo.by_id(presented.user_id)
            if user is None:
                raise Refused(*INVALID_REFRESH)
            await self._record(user)
        if rot.outcome in ("ok", "replay") and rot.token is not None:
            return self._pair(presented.user_id, rot.roles, rot.token)
        if rot.outcome == "disabled":
            raise Refused(*DISABLED)
        if rot.outcome == "reused":
            raise Refused(
                *INVALID_REFRESH[:2],
                "Refresh token was already used",
                "a rotated refresh token came back: its session is revoked; log in again",
            )
        raise Refused(*INVALID_REFRESH)

    async def logout(self, raw: str, everywhere: bool) -> None:
        """End the token's session; with ``everywhere`` every session of its user, and
        their access tokens. Ending an ended session again is a no-op."""
        token = rules.parse_refresh_token(raw)
        if token is None:
            raise Refused(*INVALID_REFRESH)
        with redis_errors():
            outcome = await self.sessions.logout(token)
        if not everywhere:
            return
        if outcome != "valid":
            raise Refused(*INVALID_REFRESH)
        with redis_errors():
            await self.sessions.revoke_all(token.user_id)
        await self._revoke_tokens(token.user_id)

    # -- the signed-in user ---------------------------------------------------------------

    async def me(self, user_id: int) -> UserView:
        return view(await self._user(user_id))

    async def update_me(self, user_id: int, display_name: str) -> UserView:
        try:
            name = rules.normalise_display_name(display_name)
        except rules.PolicyError as exc:
            raise _policy(exc) from None
        with pg_errors():
            user = await self.repo.update_profile(user_id, name)
        if user is None:
            raise Refused(*NOT_FOUND)
        return view(user)

    async def change_password(self, user_id: int, current: str, new: str, ip: str) -> TokenPair:
        """Replace the password, end every session (and access token) of the user, and
        start a new session for the caller."""
        user = await self._user(user_id)
        try:
            rules.check_password(new, user.email, user.display_name)
        except rules.PolicyError as exc:
            raise _policy(exc) from None
        # a stolen access token must not become a way to guess the password: the same guard
        with redis_errors():
            wait_s = await self.guard.attempt(user.email, ip)
        if wait_s:
            raise Refused(429, "too-many-attempts", LOCKED_TITLE, retry_after_s=wait_s)
        if not await self._verify(user.password_hash, current):
            raise Refused(*INVALID_CREDENTIALS)
        with redis_errors():
            await self.guard.succeeded(user.email, ip)
        new_hash = await self._hash(new)
        with pg_errors():
            await self.repo.set_password(user_id, new_hash)
        with redis_errors():
            await self.sessions.revoke_all(user_id)
        await self._revoke_tokens(user_id)
        return await self._new_session(user)

    # -- admin ----------------------------------------------------------------------------

    async def list_users(self, cursor: int | None, limit: int, email: str | None) -> UsersPage:
        if email is not None:
            try:
                email = rules.normalise_email(email)
            except rules.PolicyError:
                return UsersPage(items=[], next_cursor=None)
            with pg_errors():
                user_id = await self.repo.id_of_email(email)
                user = None if user_id is None else await self.repo.by_id(user_id)
            hit = user is not None and (cursor is None or user.user_id > cursor)
            return UsersPage(items=[view(user)] if hit and user else [], next_cursor=None)
        with pg_errors():
            users = await self.repo.page(cursor, limit)
        more = len(users) == limit
        return UsersPage(
            items=[view(u) for u in users],
            next_cursor=str(users[-1].user_id) if more and users else None,
        )

    async def set_roles(self, admin_id: int, user_id: int, roles: list[str]) -> UserView:
        try:
            canonical = rules.check_roles(roles)
        except rules.PolicyError as exc:
            raise _policy(exc) from None
        if user_id == admin_id and "admin" not in canonical:
            raise Refused(409, "self-lockout", "An admin cannot remove their own admin role")
        with pg_errors():
            user = await self.repo.set_roles(user_id, canonical)
        if user is None:
            raise Refused(*NOT_FOUND)
        await self._record(user)
        await self._revoke_tokens(user_id)  # tokens carrying the old roles stop working
        return view(user)

    async def set_disabled(self, admin_id: int, user_id: int, disabled: bool) -> UserView:
        if disabled and user_id == admin_id:
            raise Refused(409, "self-lockout", "An admin cannot disable their own account")
        with pg_errors():
            user = await self.repo.set_disabled(user_id, disabled)
        if user is None:
            raise Refused(*NOT_FOUND)
        await self._record(user)
        if disabled:
            with redis_errors():
                await self.sessions.revoke_all(user_id)
            await self._revoke_tokens(user_id)
        return view(user)

    # -- bootstrap ------------------------------------------------------------------------

    async def ensure_admin(self, email: str, password: str, display_name: str) -> User:
        """The bootstrap path (``python -m services.accounts.admin create-admin``): register the
        account if the email has none, then give it the admin role (and customer). An
        existing account keeps its password: the command never resets anyone's password."""
        await self.register(email, password, display_name, f"create-admin-{time.time_ns()}")
        email = rules.normalise_email(email)
        with pg_errors():
            user_id = await self.repo.id_of_email(email)
            user = None if user_id is None else await self.repo.by_id(user_id)
            if user is None:
                raise RuntimeError(f"no account for {email} after registering it")
            updated = await self.repo.set_roles(user.user_id, ("customer", "admin"))
            assert updated is not None
        await self._record(updated)
        return updated


def build(
    s: config.Settings, client: aioredis.Redis, pg: Callable[[], Awaitable[asyncpg.Pool]]
) -> Accounts:
    """The accounts use cases over a process's clients (the edge's composition root, and
    the create-admin command's)."""
    a = s.accounts
    secret, issuer, ttl = s.auth.jwt_secret, s.auth.jwt_issuer, a.access_token_ttl_s

    def mint(user_id: int, roles: Sequence[str]) -> str:
        return auth.issue(secret, user_id, ttl_s=ttl, issuer=issuer, roles=roles)

    async def revoke_before(user_id: int, epoch_s: float) -> None:
        await revocations.revoke_before(client, user_id, epoch_s)

    window = a.login_failure_window_s
    return Accounts(
        UsersRepo(pg),
        SessionStore(client, RedisPipe(s.redis.url, s.edge.dependency_timeout_s)),
        RegistrationReplays(client),
        LoginGuard(
            client,
            Limits(a.login_free_failures, a.login_lock_base_s, a.login_lock_max_s, window),
            Limits(a.login_ip_free_failures, a.login_lock_base_s, a.login_lock_max_s, window),
        ),
        PasswordHasher(a.hash_threads, a.hash_queue),
        mint,
        revoke_before,
        a,
        # the in-process first line per IP: only its IP buckets are used (sale 0, user 0)
        ip_gate=_core.Gate(1e9, 1 << 30, a.login_ip_rate, a.login_ip_burst, 1),
    )
