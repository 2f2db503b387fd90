"""Accounts end to end over HTTP: a real edge (Granian, 2 workers) on the real stack.

Sign-up to admin: register, log in, refresh (rotation, reuse, retry), log out, the profile,
a password change, the admin's user management, the bootstrap command; the registration
race; the brute-force guard with 500 parallel logins."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from devtools import devstack
from nexuscart import config
from tests.conftest import EDGE_TEST_ENV, EdgeServer

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple 42"
ADMIN_PASSWORD = "admin horse battery staple 42"

# The per-IP limits are open (EDGE_TEST_ENV), so the per-account guard is what the lock
# tests see; a long lock outlives each test.
ENV = {
    **EDGE_TEST_ENV,
    "LOGIN_LOCK_BASE_S": "120",
    "PASSWORD_HASH_QUEUE": "1000",
    "REFRESH_GRACE_S": "10",
}


@pytest.fixture(scope="module")
def edge(stack: devstack.Stack, migrated: None) -> Iterator[EdgeServer]:
    server = EdgeServer("edge.app:app", ENV, workers=2, cwd=ROOT)
    yield server
    server.stop()


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:16]}@example.com"


def post(
    edge: EdgeServer, path: str, body: Any, token: str | None = None, **headers: str
) -> httpx.Response:
    h = {"idempotency-key": uuid.uuid4().hex, **headers}
    if token:
        h["authorization"] = f"Bearer {token}"
    return httpx.post(f"{edge.url}{path}", json=body, headers=h, timeout=30)


def patch(edge: EdgeServer, path: str, body: Any, token: str) -> httpx.Response:
    h = {"idempotency-key": uuid.uuid4().hex, "authorization": f"Bearer {token}"}
    return httpx.patch(f"{edge.url}{path}", json=body, headers=h, timeout=30)


def get(edge: EdgeServer, path: str, token: str) -> httpx.Response:
    return httpx.get(f"{edge.url}{path}", headers={"authorization": f"Bearer {token}"}, timeout=30)


def register(edge: EdgeServer, email: str, password: str = PASSWORD) -> dict[str, Any]:
    r = post(edge, "/auth/register", {"email": email, "password": password, "display_name": "Ann"})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def login(edge: EdgeServer, email: str, password: str = PASSWORD) -> dict[str, Any]:
    r = post(edge, "/auth/login", {"email": email, "password": password})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def until(check: Callable[[], bool], within_s: float = 10.0) -> None:
    """Poll ``check`` until it holds (revocations reach every worker within a bounded delay)."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def refused(r: httpx.Response, status: int, slug: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == f"/problems/{slug}"


@pytest.fixture(scope="module")
def admin(edge: EdgeServer) -> dict[str, Any]:
    """The first admin, made by the bootstrap command (password on stdin), logged in."""
    email = new_email()
    env = {k: v for k, v in os.environ.items() if k != "NEXUSCART_ADMIN_PASSWORD"}
    done = subprocess.run(
        [sys.executable, "-m", "services.accounts.admin", "create-admin", "--email", email],
        input=ADMIN_PASSWORD + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert ADMIN_PASSWORD not in done.stdout + done.stderr
    pair = login(edge, email, ADMIN_PASSWORD)
    assert pair["roles"] == ["customer", "admin"]
    return {"email": email, **pair}


def test_sign_up_log_in_refresh_and_log_out(edge: EdgeServer) -> None:
    email = new_email()
    user = register(edge, email.upper())  # the address is normalised
    assert user["email"] == email
    assert user["roles"] == ["customer"]
    pair = login(edge, email)
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == 900
    assert pair["user_id"] == user["user_id"]
    me = get(edge, "/users/me", pair["access_token"])
    assert me.status_code == 200
    assert me.json()["user_id"] == user["user_id"]
    # the new access token is a customer's: it may buy, it may not administer
    refused(get(edge, "/admin/users", pair["access_token"]), 403, "forbidden")

    r = post(edge, "/auth/refresh", {"refresh_token": pair["refresh_token"]})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    rotated = r.json()
    assert rotated["refresh_token"] != pair["refresh_token"]
    assert get(edge, "/users/me", rotated["access_token"]).status_code == 200

    r = post(edge, "/auth/logout", {"refresh_token": rotated["refresh_token"]})
    assert r.status_code == 204
    refused(
        post(edge, "/auth/refresh", {"refresh_token": rotated["refresh_token"]}),
        401,
        "invalid-refresh-token",
    )
    # logging out again is a no-op
    assert (
        post(edge, "/auth/logout", {"refresh_token": rotated["refresh_token"]}).status_code == 204
    )


def test_a_refresh_token_used_twice_revokes_its_session(edge: EdgeServer) -> None:
    email = new_email()
    register(edge, email)
    t1 = login(edge, email)["refresh_token"]
    t2 = post(edge, "/auth/refresh", {"refresh_token": t1}).json()["refresh_token"]
    t3 = post(edge, "/auth/refresh", {"refresh_token": t2}).json()["refresh_token"]
    # t1 is two rotations old: a thief or a broken client; the session ends
    r = post(edge, "/auth/refresh", {"refresh_token": t1})
    refused(r, 401, "invalid-refresh-token")
    assert "already used" in r.json()["title"]
    refused(post(edge, "/auth/refresh", {"refresh_token": t3}), 401, "invalid-refresh-token")


def test_a_refresh_retried_after_a_lost_answer_gets_the_same_token(edge: EdgeServer) -> None:
    email = new_email()
    register(edge, email)
    t1 = login(edge, email)["refresh_token"]
    first = post(edge, "/auth/refresh", {"refresh_token": t1}).json()
    retry = post(edge, "/auth/refresh", {"refresh_token": t1})  # the first answer was lost
    assert retry.status_code == 200
    assert retry.json()["refresh_token"] == first["refresh_token"]
    nxt = post(edge, "/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert nxt.status_code == 200


def test_a_taken_email_gets_the_same_answer_as_a_new_one(edge: EdgeServer) -> None:
    email = new_email()
    first = register(edge, email)
    again = post(
        edge,
        "/auth/register",
        {"email": email, "password": "another pass phrase 9", "display_name": "Ann"},
    )
    assert again.status_code == 201
    dup = again.json()
    assert dup.keys() == first.keys()
    assert {k: dup[k] for k in ("email", "roles", "disabled")} == {
        k: first[k] for k in ("email", "roles", "disabled")
    }
    assert dup["user_id"] != first["user_id"]  # a fresh id that was never stored
    # the account keeps its password: the second registration changed nothing
    login(edge, email)
    refused(
        post(edge, "/auth/login", {"email": email, "password": "another pass phrase 9"}),
        401,
        "invalid-credentials",
    )


def test_a_registration_retried_with_its_key_gets_the_first_answer(edge: EdgeServer) -> None:
    email, key = new_email(), uuid.uuid4().hex
    body = {"email": email, "password": PASSWORD, "display_name": "Ann"}
    first = post(edge, "/auth/register", body, **{"idempotency-key": key})
    again = post(edge, "/auth/register", body, **{"idempotency-key": key})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"email": "x@example.com", "password": "password1", "display_name": "X"}, "too common"),
        ({"email": "x@example.com", "password": "short", "display_name": "X"}, "at least 8"),
        ({"email": "not-an-email", "password": PASSWORD, "display_name": "X"}, "email"),
        ({"email": "x@example.com", "password": PASSWORD, "display_name": " "}, "display_name"),
        ({"email": "x@example.com", "password": "p" * 2000, "display_name": "X"}, "length"),
    ],
)
def test_registration_input_that_breaks_a_rule_is_422(
    edge: EdgeServer, body: dict[str, str], fragment: str
) -> None:
    r = post(edge, "/auth/register", body)
    refused(r, 422, "validation-error")
    assert fragment in r.json()["detail"]


def test_an_unknown_email_and_a_wrong_password_answer_alike(edge: EdgeServer) -> None:
    email = new_email()
    register(edge, email)
    wrong = post(edge, "/auth/login", {"email": email, "password": "not the password 1"})
    unknown = post(edge, "/auth/login", {"email": new_email(), "password": "not the password 1"})
    refused(wrong, 401, "invalid-credentials")
    assert wrong.json() == unknown.json()
    assert wrong.headers.keys() == unknown.headers.keys()


def test_the_profile_can_be_read_and_renamed(edge: EdgeServer) -> None:
    email = new_email()
    register(edge, email)
    token = login(edge, email)["access_token"]
    r = patch(edge, "/users/me", {"display_name": "  Ann B.  "}, token)
    assert r.status_code == 200, r.text
    assert r.json()["display_name"] == "Ann B."
    assert get(edge, "/users/me", token).json()["display_name"] == "Ann B."
    refused(httpx.get(f"{edge.url}/users/me", timeout=10), 401, "unauthorized")


def test_a_password_change_ends_every_other_session(edge: EdgeServer) -> None:
    email = new_email()
    register(edge, email)
    a, b = login(edge, email), login(edge, email)
    new_password = "a brand new pass phrase 7"
    r = post(
        edge,
        "/users/me/password",
        {"current_password": PASSWORD, "new_password": new_password},
        a["access_token"],
    )
    assert r.status_code == 200, r.text
    c = r.json()
    refused(
        post(edge, "/auth/refresh", {"refresh_token": b["refresh_token"]}),
        401,
        "invalid-refresh-token",
    )
    refused(
        post(edge, "/auth/refresh", {"refresh_token": a["refresh_token"]}),
        401,
        "invalid-refresh-token",
    )
    # the access tokens issued before the change stop working on every worker
    until(lambda: get(edge, "/users/me", b["access_token"]).status_code == 401)
    assert get(edge, "/users/me", c["access_token"]).status_code == 200
    assert post(edge, "/auth/refresh", {"refresh_token": c["refresh_token"]}).status_code == 200
    refused(
        post(edge, "/auth/login", {"email": email, "password": PASSWORD}),
        401,
        "invalid-credentials",
    )
    login(edge, email, new_password)


def test_a_password_change_needs_the_current_password(edge: EdgeServer) -> None:
    email = new_email()
    register(edge, email)
    token = login(edge, email)["access_token"]
    r = post(
        edge,
        "/users/me/password",
        {"current_password": "not it at all 3", "new_password": "a brand new pass phrase 7"},
        token,
    )
    refused(r, 401, "invalid-credentials")


def test_logout_everywhere_ends_every_session_and_access_token(edge: EdgeServer) -> None:
    email = new_email()
    register(edge, email)
    a, b = login(edge, email), login(edge, email)
    r = post(edge, "/auth/logout", {"refresh_token": a["refresh_token"], "everywhere": True})
    assert r.status_code == 204
    refused(
        post(edge, "/auth/refresh", {"refresh_token": b["refresh_token"]}),
        401,
        "invalid-refresh-token",
    )
    until(lambda: get(edge, "/users/me", b["access_token"]).status_code == 401)
    assert get(edge, "/users/me", login(edge, email)["access_token"]).status_code == 200


def test_admin_lists_users_sets_roles_and_disables(edge: EdgeServer, admin: dict[str, Any]) -> None:
    token = admin["access_token"]
    for _ in range(2):  # more users than one page holds, whichever tests ran before
        register(edge, new_email())
    email = new_email()
    user = register(edge, email)
    uid = user["user_id"]
    session = login(edge, email)

    r = get(edge, f"/admin/users?email={email.upper()}", token)
    assert r.status_code == 200, r.text
    assert [u["user_id"] for u in r.json()["items"]] == [uid]
    page = get(edge, "/admin/users?limit=2", token).json()
    assert len(page["items"]) == 2
    assert page["next_cursor"] is not None
    nxt = get(edge, f"/admin/users?limit=2&cursor={page['next_cursor']}", token).json()
    assert nxt["items"][0]["user_id"] > page["items"][-1]["user_id"]
    refused(get(edge, "/admin/users?limit=0", token), 400, "bad-query")

    r = patch(edge, f"/admin/users/{uid}/roles", {"roles": ["seller", "customer"]}, token)
    assert r.status_code == 200, r.text
    assert r.json()["roles"] == ["customer", "seller"]
    # tokens minted with the old roles stop working; a refresh carries the new ones
    until(lambda: get(edge, "/users/me", session["access_token"]).status_code == 401)
    refreshed = post(edge, "/auth/refresh", {"refresh_token": session["refresh_token"]}).json()
    assert refreshed["roles"] == ["customer", "seller"]
    refused(
        patch(edge, f"/admin/users/{uid}/roles", {"roles": ["root"]}, token),
        422,
        "validation-error",
    )
    refused(patch(edge, "/admin/users/1/roles", {"roles": ["customer"]}, token), 404, "not-found")

    r = post(edge, f"/admin/users/{uid}/disable", None, token)
    assert r.status_code == 200, r.text
    assert r.json()["disabled"] is True
    refused(
        post(edge, "/auth/refresh", {"refresh_token": refreshed["refresh_token"]}),
        401,
        "invalid-refresh-token",
    )
    refused(
        post(edge, "/auth/login", {"email": email, "password": PASSWORD}), 403, "account-disabled"
    )
    until(lambda: get(edge, "/users/me", refreshed["access_token"]).status_code == 401)

    assert post(edge, f"/admin/users/{uid}/enable", None, token).json()["disabled"] is False
    login(edge, email)
    # an admin cannot lock themself out
    refused(
        post(edge, f"/admin/users/{admin['user_id']}/disable", None, token), 409, "self-lockout"
    )


def test_the_dev_admin_password_is_refused_outside_dev(edge: EdgeServer) -> None:
    env = {
        **os.environ,
        "NEXUSCART_ENV": "test",
        "NEXUSCART_ADMIN_PASSWORD": config.DEV_ADMIN_PASSWORD,
    }
    env.update({k: "x" * 40 + k for k in config.SECRET_VARS})
    done = subprocess.run(
        [sys.executable, "-m", "services.accounts.admin", "create-admin", "--email", new_email()],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "development admin password" in done.stderr


async def test_50_parallel_registrations_of_one_email_create_one_user(
    edge: EdgeServer, settings: config.Settings
) -> None:
    email = new_email()
    body = {"email": email, "password": PASSWORD, "display_name": "Racer"}
    async with httpx.AsyncClient(base_url=edge.url, timeout=60) as client:
        replies = await asyncio.gather(
            *(
                client.post(
                    "/auth/register", json=body, headers={"idempotency-key": uuid.uuid4().hex}
                )
                for _ in range(50)
            )
        )
    assert [r.status_code for r in replies] == [201] * 50
    conn = await asyncpg.connect(settings.postgres.dsn)
    try:
        claimed = await conn.fetch("SELECT user_id FROM user_emails WHERE email = $1", email)
        users = await conn.fetch("SELECT user_id FROM users WHERE email = $1", email)
        events = await conn.fetchval(
            "SELECT count(*) FROM users_outbox WHERE user_id = $1", claimed[0]["user_id"]
        )
    finally:
        await conn.close()
    assert len(claimed) == 1
    assert [u["user_id"] for u in users] == [claimed[0]["user_id"]]
    assert events <= 1  # one UserRegistered (the relay may have sent and deleted it already)


async def test_500_parallel_wrong_logins_end_locked_and_the_right_password_waits(
    edge: EdgeServer,
) -> None:
    email = new_email()
    register(edge, email)
    wrong = {"email": email, "password": "not the password 1"}
    async with httpx.AsyncClient(
        base_url=edge.url, timeout=60, limits=httpx.Limits(max_connections=200)
    ) as client:
        replies = await asyncio.gather(
            *(
                client.post(
                    "/auth/login", json=wrong, headers={"idempotency-key": uuid.uuid4().hex}
                )
                for _ in range(500)
            )
        )
    statuses = [r.status_code for r in replies]
    # only the free attempts reached a password check; every other one met the lock
    assert statuses.count(401) == 5
    assert statuses.count(429) == 495
    locked = post(edge, "/auth/login", {"email": email, "password": PASSWORD})
    refused(locked, 429, "too-many-attempts")
    assert int(locked.headers["retry-after"]) >= 1


def test_a_locked_account_and_an_unknown_one_answer_identically(edge: EdgeServer) -> None:
    known, unknown = new_email(), new_email()
    register(edge, known)
    answers: dict[str, list[httpx.Response]] = {known: [], unknown: []}
    for _ in range(7):
        for email in (known, unknown):
            answers[email].append(
                post(edge, "/auth/login", {"email": email, "password": "nope nope 12"})
            )
    for a, b in zip(answers[known], answers[unknown], strict=True):
        assert (a.status_code, a.json()) == (b.status_code, b.json())
        assert a.headers.keys() == b.headers.keys()
        if a.status_code == 429:
            assert abs(int(a.headers["retry-after"]) - int(b.headers["retry-after"])) <= 1
    assert [r.status_code for r in answers[known]] == [401] * 5 + [429] * 2


async def test_a_login_rehashes_a_password_hashed_with_older_parameters(
    edge: EdgeServer, settings: config.Settings
) -> None:
    import argon2

    email = new_email()
    uid = register(edge, email)["user_id"]
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD.encode())
    conn = await asyncpg.connect(settings.postgres.dsn)
    try:
        await conn.execute("UPDATE users SET password_hash = $2 WHERE user_id = $1", uid, weak)
        login(edge, email)
        stored = await conn.fetchval("SELECT password_hash FROM users WHERE user_id = $1", uid)
    finally:
        await conn.close()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    login(edge, email)  # and the new hash verifies
