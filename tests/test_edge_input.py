"""Bad client input to the real edge is a clear 4xx, never a 500; slow or vanishing bodies
cannot pin a sale's purchase slots."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexuscart.web import ID_MAX, HTTPError, Request, path_int, query_int
from tests.conftest import EDGE_TEST_ENV, ROOT, EdgeServer
from tests.test_flash_sale_http import ADMIN, _users, buyer_headers, create_sale, token


def _arabic_indic(n: int) -> str:
    """``n`` written in Arabic-Indic digits, percent-encoded as a URL path segment."""
    from urllib.parse import quote

    return quote("".join(chr(0x660 + int(d)) for d in str(n)))


def _problem(r: httpx.Response, status: int, slug: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == f"/problems/{slug}"


@pytest.mark.parametrize(
    "path",
    ["/flash-sales/%C2%B2", "/flash-sales/%C2%B2/purchase", "/flash-sales/99999999999999999999"],
)
def test_a_non_ascii_or_huge_sale_id_is_404(edge: EdgeServer, path: str) -> None:
    method = "POST" if path.endswith("purchase") else "GET"
    r = httpx.request(
        method, edge.url + path, json={"quantity": 1}, headers=buyer_headers(next(_users))
    )
    _problem(r, 404, "not-found")


def test_an_order_id_in_superscript_digits_is_404(edge: EdgeServer) -> None:
    auth = {"authorization": f"Bearer {token(next(_users))}"}
    _problem(httpx.get(f"{edge.url}/orders/%C2%B2", headers=auth), 404, "not-found")
    _problem(httpx.get(f"{edge.url}/orders/{2**63}", headers=auth), 404, "not-found")


def test_a_sale_id_in_arabic_indic_digits_is_not_that_sale(edge: EdgeServer) -> None:
    sid = create_sale(edge, units=1)["sale_id"]
    assert httpx.get(f"{edge.url}/flash-sales/{sid}").status_code == 200
    _problem(httpx.get(f"{edge.url}/flash-sales/{_arabic_indic(sid)}"), 404, "not-found")


@pytest.mark.parametrize(
    "query",
    [
        "cursor=99999999999999999999",
        "cursor=-1",
        "cursor=%D9%A1",
        "cursor=%C2%B2",
        "cursor=1_000",
        "cursor=%20 1",
        "limit=%FF%FE",
        "limit=0",
        "limit=101",
        "limit=",
    ],
)
def test_a_bad_page_query_is_400(edge: EdgeServer, query: str) -> None:
    auth = {"authorization": f"Bearer {token(next(_users))}"}
    _problem(httpx.get(f"{edge.url}/users/me/orders?{query}", headers=auth), 400, "bad-query")


def test_the_largest_cursor_is_a_valid_page(edge: EdgeServer) -> None:
    auth = {"authorization": f"Bearer {token(next(_users))}"}
    r = httpx.get(f"{edge.url}/users/me/orders?cursor={ID_MAX}&limit=100", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "body",
    [
        b'{"\xff\xfe": 1}',
        b'{"sku": "\xff", "units": 1, "price_cents": 1, "starts_at_ms": 0, "ends_at_ms": 1}',
        b'{"sku": "A\xc3", "units": 1}',
    ],
)
def test_a_body_that_is_not_utf8_is_400(edge: EdgeServer, body: bytes) -> None:
    r = httpx.post(
        f"{edge.url}/admin/flash-sales",
        content=body,
        headers={**ADMIN, "idempotency-key": uuid.uuid4().hex, "content-type": "application/json"},
    )
    _problem(r, 400, "malformed-body")
    sid = create_sale(edge, units=5)["sale_id"]
    r = httpx.post(
        f"{edge.url}/flash-sales/{sid}/purchase",
        content=b'{"quantity": 1, "\xff": 2}',
        headers={**buyer_headers(next(_users)), "content-type": "application/json"},
    )
    _problem(r, 400, "malformed-body")


def _raw(edge: EdgeServer, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /flash-sales/%ZZ HTTP/1.1",
        b"GET /flash-sales/%C2 HTTP/1.1",
        b"GET /flash-sales/\xc2\xb2 HTTP/1.1",
        b"GET /flash-sales/1?x=%ff%fe HTTP/1.1",
        b"GET /users/me/orders?limit=%C2 HTTP/1.1",
    ],
)
def test_odd_bytes_in_the_request_line_are_a_4xx(edge: EdgeServer, request_line: bytes) -> None:
    auth = f"authorization: Bearer {token(next(_users))}\r\n".encode()
    reply = _raw(edge, request_line + b"\r\nhost: t\r\n" + auth + b"\r\n")
    status = int(reply.split(b" ", 2)[1])
    assert status < 500, reply


@pytest.mark.parametrize(
    "header",
    [
        b"authorization: Bearer \xff\xfe",
        b"authorization: Bearer caf\xc3\xa9",
        b"idempotency-key: \xff\xfe",
        b"x-forwarded-for: \xff",
    ],
)
def test_odd_bytes_in_headers_are_a_4xx(edge: EdgeServer, header: bytes) -> None:
    sid = create_sale(edge, units=1)["sale_id"]
    head = [
        f"POST /flash-sales/{sid}/purchase HTTP/1.1".encode(),
        b"host: t",
        b"content-type: application/json",
        b"content-length: 15",
        header,
    ]
    if not header.startswith(b"authorization"):
        head.append(f"authorization: Bearer {token(next(_users))}".encode())
    reply = _raw(edge, b"\r\n".join(head) + b"\r\n\r\n" + b'{"quantity": 1}')
    status = int(reply.split(b" ", 2)[1])
    assert status < 500, reply


# --- the parsers, for every string -------------------------------------------------------


def _req(params: dict[str, str] | None = None, query: str = "") -> Request:
    headers: Any = {}  # Granian passes its own mapping; a dict does here
    return Request("GET", "/", query, headers, b"", "127.0.0.1", params or {})


@given(st.text())
def test_path_int_accepts_exactly_ascii_digits_within_bigint(raw: str) -> None:
    valid = raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= ID_MAX
    if not valid:
        with pytest.raises(HTTPError) as err:
            path_int(_req({"id": raw}), "id")
        assert err.value.status == 404
    else:
        assert path_int(_req({"id": raw}), "id") == int(raw)


@given(
    st.text(st.characters(exclude_categories=["Cs"])), st.integers(0, 10), st.integers(10, ID_MAX)
)
def test_query_int_answers_a_value_in_range_or_400(raw: str, lo: int, hi: int) -> None:
    from urllib.parse import quote

    req = _req(query=f"n={quote(raw)}")
    if raw.isascii() and raw.isdigit() and len(raw) <= 19 and lo <= int(raw) <= hi:
        assert query_int(req, "n", None, lo, hi) == int(raw)
    else:
        with pytest.raises(HTTPError) as err:
            query_int(req, "n", None, lo, hi)
        assert err.value.status == 400


def test_query_int_default_when_absent() -> None:
    assert query_int(_req(query="m=1"), "n", 20, 1, 100) == 20
    assert query_int(_req(), "n", None, 1, 100) is None


# --- slow and vanishing bodies on the purchase path ----------------------------------------

SLOTS = 2


@pytest.fixture(scope="module")
def tight_edge(edge: EdgeServer) -> Iterator[EdgeServer]:
    """One worker with two purchase slots per sale and a 1 s body deadline."""
    env = {**EDGE_TEST_ENV, "GATE_MAX_IN_FLIGHT": str(SLOTS), "BODY_TIMEOUT_S": "1"}
    server = EdgeServer("edge.app:app", env, workers=1, cwd=ROOT)
    yield server
    server.stop()


def _purchase_head(sid: int, user: int, length: int) -> bytes:
    head = {
        **buyer_headers(user),
        "content-type": "application/json",
        "content-length": str(length),
    }
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
    return f"POST /flash-sales/{sid}/purchase HTTP/1.1\r\nhost: t\r\n{lines}\r\n".encode()


def _status_and_headers(conn: socket.socket) -> tuple[int, dict[str, str]]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"closed without a response: {data!r}"
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    return int(head[0].split()[1]), headers


def _connect(server: EdgeServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _buy(server: EdgeServer, sid: int) -> int:
    r = httpx.post(
        f"{server.url}/flash-sales/{sid}/purchase",
        json={"quantity": 1},
        headers=buyer_headers(next(_users)),
        timeout=10,
    )
    return r.status_code


def test_stalled_purchase_bodies_time_out_with_408_and_free_their_slots(
    tight_edge: EdgeServer,
) -> None:
    sid = create_sale(tight_edge, units=10)["sale_id"]
    conns = [
        socket.create_connection(("127.0.0.1", tight_edge.port), timeout=10)
        for _ in range(SLOTS + 2)
    ]
    try:
        for conn in conns:
            # headers and half the body, then nothing: the shape of a slow-body attack
            conn.sendall(_purchase_head(sid, next(_users), 15) + b'{"quan')
        answers = [_status_and_headers(conn) for conn in conns]
    finally:
        for conn in conns:
            conn.close()
    statuses = sorted(status for status, _ in answers)
    # every stalled request ends: 408 (it held a slot, or the gate took no slot before the
    # body) or 503 busy (the slots were all held when it came)
    assert set(statuses) <= {408, 503}, answers
    assert 408 in statuses
    assert all(h.get("connection") == "close" for s, h in answers if s == 408)
    assert _buy(tight_edge, sid) == 202


def test_purchase_clients_leaving_mid_body_free_their_slots(tight_edge: EdgeServer) -> None:
    sid = create_sale(tight_edge, units=10)["sale_id"]
    for _ in range(3):  # more rounds than slots: a leaked slot would show as 503 busy
        conns = [
            socket.create_connection(("127.0.0.1", tight_edge.port), timeout=10)
            for _ in range(SLOTS)
        ]
        for conn in conns:
            conn.sendall(_purchase_head(sid, next(_users), 15) + b'{"quan')
        for conn in conns:
            conn.close()
    # the server notices each disconnect; the slots come back without waiting the deadline
    deadline = time.monotonic() + 10
    statuses: list[Any] = []
    while time.monotonic() < deadline:
        statuses.append(_buy(tight_edge, sid))
        if statuses[-1] == 202:
            break
    assert statuses[-1] == 202, statuses


# --- large and anonymous bodies ------------------------------------------------------------


@pytest.mark.parametrize("credential", [{}, ADMIN], ids=["anonymous", "admin"])
def test_a_huge_chunked_admin_post_is_refused_before_it_is_all_sent(
    edge: EdgeServer, credential: dict[str, str]
) -> None:
    from tests.test_web_body import MANY_MB, _head, _read_response, _stream_until_answered

    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as conn:
        headers = {
            **credential,
            "idempotency-key": uuid.uuid4().hex,
            "content-type": "application/json",
            "transfer-encoding": "chunked",
        }
        conn.sendall(_head("/admin/flash-sales", headers))
        sent = _stream_until_answered(conn, b"x" * 65536, MANY_MB)
        status, _, _ = _read_response(conn)
    assert sent < MANY_MB
    # anonymous: the admin guard refuses before any body byte; admin: 413 at the limit
    assert status == (413 if credential else 401)
    assert httpx.get(f"{edge.url}/healthz", timeout=10).status_code == 200
