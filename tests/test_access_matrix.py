"""Every route of a real edge (from its /openapi.json) x every kind of caller: anonymous, each
role, an expired, a revoked and a wrongly signed token. Guarded routes answer 401 to the
callers without a valid token, 403 ``forbidden`` to a valid token without the role, and
neither to a token with the role (whatever the handler then says about the minimal body);
public routes never answer 403 and never 401 because of a token. The document's security
matches the one table in edge/access.py, and make_app refuses a route missing from it."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from edge import access
from nexuscart import auth, config
from nexuscart.adapters import revocations
from nexuscart.web import Route
from tests.conftest import EdgeServer

SECRET = config.dev_defaults()["JWT_SECRET"]
ABSENT_ID = 987_654_321  # path ids that name nothing: no route changes any real state

_users = iter(range(40_000_000, 41_000_000))

# policy -> the roles that satisfy it
ALLOWED: dict[str, set[str]] = {
    "user": {"customer", "seller", "admin"},
    "customer": {"customer"},
    "seller": {"seller", "admin"},
    "admin": {"admin"},
}
VALID_ROLES = ("customer", "seller", "admin")
INVALID = ("anonymous", "expired", "revoked", "wrong-signature")


def _token(roles: tuple[str, ...], **kw: Any) -> str:
    return "Bearer " + auth.issue(kw.pop("secret", SECRET), next(_users), roles=roles, **kw)


@pytest.fixture(scope="module")
def callers(edge: EdgeServer) -> dict[str, str | None]:
    revoked_user = next(_users)
    # the revocation's time follows from the token's, not from the clock read twice: the
    # VM's wall clock was seen to step back, and a token issued "after" its revocation
    # time is, rightly, never refused
    issued = time.time()
    revoked = "Bearer " + auth.issue(
        SECRET, revoked_user, now=issued, roles=("customer", "seller", "admin")
    )
    asyncio.run(_revoke(edge, revoked_user, revoked, not_before=issued + 1))
    return {
        "anonymous": None,
        "customer": _token(("customer",)),
        "seller": _token(("seller",)),
        "admin": _token(("admin",)),
        "expired": _token(("customer", "seller", "admin"), ttl_s=-5),
        "revoked": revoked,
        "wrong-signature": _token(("customer", "seller", "admin"), secret="not-the-secret"),
        "no-roles": _token(()),
    }


async def _revoke(edge: EdgeServer, user_id: int, authorization: str, not_before: float) -> None:
    """Revoke through Redis and wait until every worker refuses the token (20 fresh
    connections in a row; the edge has 2 workers)."""
    settings = config.load()
    client = aioredis.Redis.from_url(settings.redis.url)
    try:
        await revocations.revoke_before(client, user_id, not_before)
    finally:
        await client.aclose()
    streak, deadline = 0, time.monotonic() + 10
    async with httpx.AsyncClient(timeout=10) as http:
        while streak < 20:
            assert time.monotonic() < deadline, "revocation not applied by every worker"
            r = await http.get(
                f"{edge.url}/users/me/orders",
                headers={"authorization": authorization, "connection": "close"},
            )
            streak = streak + 1 if r.status_code == 401 else 0


def _operations(edge: EdgeServer) -> list[tuple[str, str, dict[str, Any]]]:
    spec = httpx.get(f"{edge.url}/openapi.json", timeout=10).json()
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]


def _call(
    edge: EdgeServer, method: str, path: str, op: dict[str, Any], authorization: str | None
) -> httpx.Response:
    url = edge.url + re.sub(r"\{[^}]+\}", str(ABSENT_ID), path)
    headers = {"idempotency-key": uuid.uuid4().hex, "connection": "close"}
    if authorization is not None:
        headers["authorization"] = authorization
    body = b"{}" if "requestBody" in op or method in ("POST", "PUT", "PATCH") else None
    if body is not None:
        headers["content-type"] = "application/json"
    return httpx.request(method, url, headers=headers, content=body, timeout=10)


def test_the_openapi_document_states_the_access_table(edge: EdgeServer) -> None:
    ops = _operations(edge)
    assert len(ops) >= 11
    for method, path, op in ops:
        policy = access.POLICIES[(method, path)]
        if policy == "public":
            assert "security" not in op, (method, path)
        else:
            assert op["security"] == [{"accessToken": []}], (method, path)
            assert op["x-required-role"] == policy, (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)


def test_every_route_times_every_caller(edge: EdgeServer, callers: dict[str, str | None]) -> None:
    seen: list[str] = []
    for method, path, op in _operations(edge):
        policy = access.POLICIES[(method, path)]
        anonymous = _call(edge, method, path, op, None).status_code
        for who, authorization in callers.items():
            r = _call(edge, method, path, op, authorization)
            where = f"{method} {path} as {who}: {r.status_code} {r.text[:200]}"
            if policy == "public":
                assert r.status_code != 403, where
                assert r.status_code != 401 or anonymous == 401, where
            elif who in VALID_ROLES and who in ALLOWED[policy]:
                assert r.status_code not in (401, 403), where
            elif who in VALID_ROLES or who == "no-roles":
                assert r.status_code == 403, where
                assert r.json()["type"] == "/problems/forbidden", where
            else:
                assert who in INVALID, where
                assert r.status_code == 401, where
                assert r.json()["type"] == "/problems/unauthorized", where
                assert r.headers["www-authenticate"] == "Bearer", where
            seen.append(f"{method} {path} {who}")
    assert len(seen) == len(_operations(edge)) * len(callers)


def test_apply_refuses_a_route_missing_from_the_table() -> None:
    async def handler(_: Any) -> Any:
        raise AssertionError

    with pytest.raises(ValueError, match="missing from the access table"):
        access.apply([Route("GET", "/nobody-decided", handler, "?")])
    with pytest.raises(ValueError, match="the table says 'admin'"):
        access.apply([Route("POST", "/admin/flash-sales", handler, "?", auth="user")])
    (filled,) = access.apply([Route("POST", "/admin/flash-sales", handler, "?")])
    assert filled.auth == "admin"
    (public,) = access.apply([Route("GET", "/healthz", handler, "?")])
    assert public.auth is None


def test_make_app_refuses_to_start_with_a_route_missing_from_the_table(
    edge: EdgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge import app as edge_app  # builds its own app at import: needs the stack's env
    from edge.deps import build

    monkeypatch.delitem(access.POLICIES, ("GET", "/flash-sales/{sale_id}"))
    deps = build()
    try:
        with pytest.raises(ValueError, match=r"GET /flash-sales/\{sale_id\}"):
            edge_app.make_app(deps)
    finally:
        asyncio.run(deps.close())
