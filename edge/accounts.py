"""Account routes: thin HTTP handlers over ``nexuscart.app.accounts`` (docs/accounts.md).

Who may call each route is in edge/access.py; the guard has put the caller in
``req.principal`` (user id and role bits) before a handler runs.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from edge.access import user_of
from edge.deps import Deps
from edge.http import handles_refusals, idem_key
from nexuscart.app.accounts import TokenPair, UsersPage, UserView
from nexuscart.web import (
    ID_MAX,
    HTTPError,
    Request,
    Response,
    Route,
    decode_body,
    json_response,
    path_int,
    query_int,
)

# Wire limits: generous bounds on what a client sends (the rules in domain.accounts are
# stricter and answer with every rule broken); they keep a huge field from reaching them.
Email = Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
RefreshTokenStr = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Role = Annotated[str, msgspec.Meta(pattern="^(customer|seller|admin)$")]


class RegisterRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    password: Password
    display_name: DisplayName


class LoginRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    password: Password


class RefreshRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refresh_token: RefreshTokenStr


class LogoutRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refresh_token: RefreshTokenStr
    everywhere: bool = False  # every session of the user, and their access tokens


class ProfileUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    display_name: DisplayName


class PasswordChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    current_password: Password
    new_password: Password


class RolesUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    roles: Annotated[list[Role], msgspec.Meta(min_length=1, max_length=3)]


_no_store: Final = [("cache-control", "no-store")]  # token answers must not be cached


def routes(deps: Deps) -> list[Route]:
    acc = deps.accounts

    @handles_refusals
    async def register(req: Request) -> Response:
        key = idem_key(req)
        body = decode_body(req, RegisterRequest)
        acc.first_line(req.client_ip)
        user, replayed = await acc.register(body.email, body.password, body.display_name, key)
        headers = [("idempotent-replayed", "true")] if replayed else []
        return json_response(user, status=201, headers=headers)

    @handles_refusals
    async def login(req: Request) -> Response:
        idem_key(req)  # every login is a new session: a retry makes another one
        body = decode_body(req, LoginRequest)
        pair = await acc.login(body.email, body.password, req.client_ip)
        return json_response(pair, headers=_no_store)

    @handles_refusals
    async def refresh(req: Request) -> Response:
        idem_key(req)  # the retry of a lost answer is recognised by its token (grace period)
        body = decode_body(req, RefreshRequest)
        return json_response(await acc.refresh(body.refresh_token), headers=_no_store)

    @handles_refusals
    async def logout(req: Request) -> Response:
        idem_key(req)  # ending a session twice is ending it once
        body = decode_body(req, LogoutRequest)
        await acc.logout(body.refresh_token, body.everywhere)
        return Response(204, b"", [])

    @handles_refusals
    async def get_me(req: Request) -> Response:
        return json_response(await acc.me(user_of(req)))

    @handles_refusals
    async def update_me(req: Request) -> Response:
        idem_key(req)  # sets values: repeating it leaves the same state
        body = decode_body(req, ProfileUpdate)
        return json_response(await acc.update_me(user_of(req), body.display_name))

    @handles_refusals
    async def change_password(req: Request) -> Response:
        idem_key(req)
        body = decode_body(req, PasswordChange)
        pair = await acc.change_password(
            user_of(req), body.current_password, body.new_password, req.client_ip
        )
        return json_response(pair, headers=_no_store)

    @handles_refusals
    async def list_users(req: Request) -> Response:
        limit = query_int(req, "limit", 20, 1, 100)
        cursor = query_int(req, "cursor", None, 0, ID_MAX)
        email = req.query_params().get("email") if req.query else None
        if email is not None and not 1 <= len(email) <= 320:
            raise HTTPError(400, "bad-query", "Invalid query parameter", "email: 1-320 chars")
        return json_response(await acc.list_users(cursor, limit, email))

    @handles_refusals
    async def set_roles(req: Request) -> Response:
        idem_key(req)  # sets values
        user_id = path_int(req, "user_id")
        body = decode_body(req, RolesUpdate)
        return json_response(await acc.set_roles(user_of(req), user_id, list(body.roles)))

    @handles_refusals
    async def disable_user(req: Request) -> Response:
        idem_key(req)  # disabling twice is disabling once
        return json_response(await acc.set_disabled(user_of(req), path_int(req, "user_id"), True))

    @handles_refusals
    async def enable_user(req: Request) -> Response:
        idem_key(req)
        return json_response(await acc.set_disabled(user_of(req), path_int(req, "user_id"), False))

    user_auth, admin_auth = "user", "admin"
    return [
        Route(
            "POST",
            "/auth/register",
            register,
            "Create a customer account (a taken email gets the same answer)",
            request=RegisterRequest,
            responses={201: UserView},
            idempotent_key=True,
            problems=(429, 503),
            tags=("accounts",),
        ),
        Route(
            "POST",
            "/auth/login",
            login,
            "Log in: an access token and a refresh token (a new session)",
            request=LoginRequest,
            responses={200: TokenPair},
            idempotent_key=True,
            problems=(401, 403, 429, 503),
            tags=("accounts",),
        ),
        Route(
            "POST",
            "/auth/refresh",
            refresh,
            "Rotate a refresh token: a new access token and refresh token",
            request=RefreshRequest,
            responses={200: TokenPair},
            idempotent_key=True,
            problems=(401, 403, 503),
            tags=("accounts",),
        ),
        Route(
            "POST",
            "/auth/logout",
            logout,
            "End the refresh token's session (every session with everywhere=true)",
            request=LogoutRequest,
            responses={204: None},
            idempotent_key=True,
            problems=(401, 503),
            tags=("accounts",),
        ),
        Route(
            "GET",
            "/users/me",
            get_me,
            "The signed-in user",
            responses={200: UserView},
            auth=user_auth,
            tags=("accounts",),
        ),
        Route(
            "PATCH",
            "/users/me",
            update_me,
            "Change the signed-in user's display name",
            request=ProfileUpdate,
            responses={200: UserView},
            auth=user_auth,
            idempotent_key=True,
            tags=("accounts",),
        ),
        Route(
            "POST",
            "/users/me/password",
            change_password,
            "Change the password: every other session ends; a new session is returned",
            request=PasswordChange,
            responses={200: TokenPair},
            auth=user_auth,
            idempotent_key=True,
            problems=(401, 429, 503),
            tags=("accounts",),
        ),
        Route(
            "GET",
            "/admin/users",
            list_users,
            "Users by id ascending, or the one with an email",
            responses={200: UsersPage},
            auth=admin_auth,
            tags=("admin",),
            query=(
                (
                    "limit",
                    "page size, 1-100 (default 20)",
                    {"type": "integer", "minimum": 1, "maximum": 100},
                ),
                (
                    "cursor",
                    "next_cursor of the previous page",
                    {"type": "integer", "minimum": 0, "maximum": ID_MAX},
                ),
                ("email", "only the user with this email", {"type": "string", "maxLength": 320}),
            ),
        ),
        Route(
            "PATCH",
            "/admin/users/{user_id}/roles",
            set_roles,
            "Set a user's roles (their access tokens issued before are revoked)",
            request=RolesUpdate,
            responses={200: UserView},
            auth=admin_auth,
            idempotent_key=True,
            problems=(409,),
            tags=("admin",),
            params=("user_id",),
        ),
        Route(
            "POST",
            "/admin/users/{user_id}/disable",
            disable_user,
            "Disable a user: their sessions and access tokens end",
            responses={200: UserView},
            auth=admin_auth,
            idempotent_key=True,
            problems=(409,),
            tags=("admin",),
            params=("user_id",),
        ),
        Route(
            "POST",
            "/admin/users/{user_id}/enable",
            enable_user,
            "Enable a disabled user",
            responses={200: UserView},
            auth=admin_auth,
            idempotent_key=True,
            tags=("admin",),
            params=("user_id",),
        ),
    ]
