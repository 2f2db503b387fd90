"""Logs: one JSON object per line with the request id (and trace id) in context; the edge
logs one line per sampled request; no secret or token ever reaches a log, with every
request logged (ACCESS_LOG_SAMPLE=1) and known secrets driven through login, refresh,
purchase and webhook paths of a real edge, beside real payments, relay and orders services;
and with every purchase traced (TRACE_SAMPLE=1), one purchase's trace id is found in the
span lines of the edge, the relay and the consumers (real processes, real stack)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from devtools import devstack
from devtools.proc import Process
from nexuscart import auth, observability
from tests.conftest import EDGE_TEST_ENV, EdgeServer

ROOT = Path(__file__).resolve().parent.parent

# distinctive values: any of them (or the tokens made from them) in a log is a leak
KNOWN = {
    "JWT_SECRET": "jwt-" + secrets.token_hex(24),
    "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(24),
    "STRIPE_API_KEY": "sk_test_" + secrets.token_hex(24),
}
PASSWORD = "correct horse " + secrets.token_hex(8)


def test_json_lines_carry_the_request_and_trace_ids_and_extra_fields() -> None:
    fmt = observability.JsonFormatter("orders")
    rec = logging.makeLogRecord(
        {"name": "nexuscart.x", "levelname": "INFO", "msg": "applied %d", "args": (3,)}
    )
    rec.__dict__["batch"] = 7
    rid, tid = observability.REQUEST_ID.set("r1"), observability.TRACE_ID.set("t1")
    try:
        line = json.loads(fmt.format(rec))
    finally:
        observability.REQUEST_ID.reset(rid)
        observability.TRACE_ID.reset(tid)
    assert line["msg"] == "applied 3"
    assert line["service"] == "orders"
    assert (line["request_id"], line["trace_id"], line["batch"]) == ("r1", "t1", 7)
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    assert "ValueError: boom" in json.loads(fmt.format(rec))["exc"]


@pytest.fixture(scope="module")
def logged(stack: devstack.Stack, migrated: None) -> Iterator[tuple[EdgeServer, list[Path]]]:
    env = {
        **EDGE_TEST_ENV,
        **KNOWN,
        "NEXUSCART_ENV": "test",
        "LOG_FORMAT": "json",
        "ACCESS_LOG_SAMPLE": "1",
        "TRACE_SAMPLE": "1",
    }
    edge = EdgeServer("edge.app:app", env, workers=1, cwd=ROOT)
    pythonpath = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    services = [
        Process(
            name,
            [sys.executable, "-m", f"services.{name}"],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONPATH": pythonpath},
            log=stack.workdir / f"logs-test-{name}.log",
        ).start()
        for name in ("payments", "outbox_relay", "orders")
    ]
    for p in services:
        assert p.log is not None
    yield edge, [edge.log, *(p.log for p in services if p.log is not None)]
    edge.stop()
    for p in services:
        p.stop()


def _lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for raw in path.read_text().splitlines():
        if raw.startswith("{"):
            out.append(json.loads(raw))
    return out


def test_no_secret_or_token_is_ever_logged(logged: tuple[EdgeServer, list[Path]]) -> None:
    edge, logs = logged
    url = edge.url
    email = f"logs-{uuid.uuid4().hex[:12]}@example.com"
    leaks = {*KNOWN.values(), PASSWORD}
    with httpx.Client(base_url=url, timeout=30) as c:

        def post(path: str, body: Any, **headers: str) -> httpx.Response:
            return c.post(path, json=body, headers={"idempotency-key": uuid.uuid4().hex, **headers})

        reg = post("/auth/register", {"email": email, "password": PASSWORD, "display_name": "L"})
        assert reg.status_code == 201, reg.text
        bad = post("/auth/login", {"email": email, "password": PASSWORD + "x"})
        assert bad.status_code == 401
        login = post("/auth/login", {"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        pair = login.json()
        leaks |= {pair["access_token"], pair["refresh_token"]}
        fresh = post("/auth/refresh", {"refresh_token": pair["refresh_token"]}).json()
        leaks |= {fresh["access_token"], fresh["refresh_token"]}
        auth = {"authorization": f"Bearer {fresh['access_token']}"}
        buy = post("/flash-sales/999999999/purchase", {"quantity": 1}, **auth)
        assert buy.status_code in (404, 409), buy.text
        assert c.get("/users/me", headers=auth).status_code == 200
        body = json.dumps({"id": "evt_logs", "object": "event", "type": "charge.updated"}).encode()
        sig = str(
            stripe.WebhookSignature.generate_signature_header(
                body.decode(), KNOWN["STRIPE_WEBHOOK_SECRET"]
            )
        )
        leaks.add(sig.split("v1=")[1])
        hook = c.post(
            "/webhooks/stripe",
            content=body,
            headers={"stripe-signature": sig, "content-type": "application/json"},
        )
        assert hook.status_code < 500, hook.text
        forged = c.post("/webhooks/stripe", content=body, headers={"stripe-signature": "t=1,v1=00"})
        assert forged.status_code == 400
        c.get("/healthz", headers={"x-request-id": "trace-me-42"})
    time.sleep(1.5)  # the services log on their own timers; let them write
    access = [ln for ln in _lines(edge.log) if ln["logger"] == "nexuscart.access"]
    assert len(access) >= 9  # one line per request
    assert all(ln["request_id"] and ln["route"] and ln["status"] for ln in access)
    assert any(ln["request_id"] == "trace-me-42" for ln in access)
    for path in logs:
        text = path.read_text()
        found = sorted(s[:12] + "..." for s in leaks if s in text)
        assert found == [], f"{path} holds secrets: {found}"


def test_one_purchase_is_followed_by_its_trace_id_through_every_process_log(
    logged: tuple[EdgeServer, list[Path]],
) -> None:
    edge, (edge_log, payments_log, relay_log, orders_log) = logged
    admin = auth.issue(KNOWN["JWT_SECRET"], 9_999_998, roles=("admin",))
    buyer = auth.issue(KNOWN["JWT_SECRET"], 4242)
    now = int(time.time() * 1000)
    sale = httpx.post(
        f"{edge.url}/admin/flash-sales",
        json={
            "sku": "TRACE-1", "units": 3, "price_cents": 999, "per_user_limit": 1,
            "starts_at_ms": now - 1000, "ends_at_ms": now + 3_600_000, "hold_ttl_s": 600,
        },
        headers={"authorization": f"Bearer {admin}", "idempotency-key": uuid.uuid4().hex},
        timeout=10,
    )  # fmt: skip
    assert sale.status_code == 201, sale.text
    buy = httpx.post(
        f"{edge.url}/flash-sales/{sale.json()['sale_id']}/purchase",
        json={"quantity": 1},
        headers={"authorization": f"Bearer {buyer}", "idempotency-key": uuid.uuid4().hex},
        timeout=10,
    )
    assert buy.status_code in (200, 201, 202), buy.text

    def spans(path: Path, name: str, **attrs: Any) -> set[str]:
        return {
            ln["trace_id"]
            for ln in _lines(path)
            if ln["logger"] == "nexuscart.trace"
            and ln["msg"] == f"span {name}"
            and all(ln.get(f"attr.{k}") == v for k, v in attrs.items())
        }

    deadline = time.monotonic() + 60
    while True:  # spans are exported in batches (every few seconds)
        [trace] = spans(edge_log, "flash_sale.purchase", sale_id=sale.json()["sale_id"]) or [""]
        if (
            trace
            and trace in spans(relay_log, "outbox_relay.publish")
            and trace in spans(orders_log, "orders.apply")
            and trace in spans(payments_log, "payments.apply")
        ):
            break
        assert time.monotonic() < deadline, f"trace {trace!r} not followed: see {orders_log}"
        time.sleep(0.5)
