"""Request bodies through the toolkit under a real Granian server: guards run before any body
byte is read, chunked bodies stop at the limit, slow or vanishing clients get a deadline and
leave nothing held.

The app under test is defined here (module level, as Granian imports it); it needs no stack.
"""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from nexuscart.web import App, HTTPError, Request, Response, Route, json_response
from tests.conftest import ROOT, EdgeServer

TOKEN = "Bearer test-token"
LIMIT = 64 * 1024
BODY_TIMEOUT_S = 0.5
# Per worker (the server runs one): handler entries and their finally blocks.
STATS = {"entered": 0, "released": 0, "read": 0}


def admin_guard(req: Request) -> object:
    if req.header("authorization") != TOKEN:
        raise HTTPError(401, "unauthorized", "Admin credential required")
    return "admin"


async def upload(req: Request) -> Response:
    STATS["read"] += 1
    return json_response({"bytes": len(req.body), "principal": req.principal})


async def deferred(req: Request) -> Response:
    # the shape of the purchase route: something held from before the body read until after
    STATS["entered"] += 1
    try:
        body = await req.read_body()
        return json_response({"bytes": len(body)})
    finally:
        STATS["released"] += 1


async def stats(_: Request) -> Response:
    return json_response(STATS)


async def healthz(_: Request) -> Response:
    return json_response({"status": "ok"})


ROUTES = [
    Route("POST", "/upload", upload, "eager body", auth="admin"),
    Route("POST", "/deferred", deferred, "deferred body", auth="admin", defer_body=True),
    Route("GET", "/stats", stats, "counters"),
    Route("GET", "/healthz", healthz, "liveness"),
]
app = App(
    ROUTES, max_body_bytes=LIMIT, body_timeout_s=BODY_TIMEOUT_S, guards={"admin": admin_guard}
)


@pytest.fixture(scope="module")
def server() -> Iterator[EdgeServer]:
    srv = EdgeServer("tests.test_web_body:app", {}, workers=1, cwd=ROOT)
    yield srv
    srv.stop()


def _connect(server: EdgeServer) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: t", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _read_response(conn: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response (Granian sends content-length); raises if the connection ends first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = conn.recv(65536)
        assert chunk, "connection closed inside a response body"
        rest += chunk
    return int(status_line.split()[1]), headers, rest[:length]


def _closed_by_server(conn: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or reset)."""
    try:
        return conn.recv(65536) == b""
    except ConnectionResetError:
        return True


def _stream_until_answered(conn: socket.socket, chunk: bytes, max_bytes: int) -> int:
    """Send ``chunk`` repeatedly until the server answers or drops the connection; return
    how many bytes went out."""
    sent = 0
    while sent < max_bytes:
        readable, _, _ = select.select([conn], [], [], 0)
        if readable:
            break
        try:
            conn.sendall(_chunk(chunk))
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(chunk)
    return sent


def _stats(server: EdgeServer) -> dict[str, Any]:
    out: dict[str, Any] = httpx.get(f"{server.url}/stats", timeout=10).json()
    return out


MANY_MB = 200 * 1024 * 1024


def test_an_anonymous_chunked_upload_is_refused_before_any_body_byte(
    server: EdgeServer,
) -> None:
    read_before = _stats(server)["read"]
    with _connect(server) as conn:
        # only the headers: had the server waited for the body, no answer would ever come
        conn.sendall(_head("/upload", {"transfer-encoding": "chunked"}))
        status, _, body = _read_response(conn)
        assert status == 401
        assert json.loads(body)["type"] == "/problems/unauthorized"
        # the upload it then tries is not read: the server drops the connection long before
        sent = _stream_until_answered(conn, b"x" * 65536, MANY_MB)
        assert sent < MANY_MB
        assert _closed_by_server(conn)
    assert _stats(server)["read"] == read_before
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize("path", ["/upload", "/deferred"])
def test_an_oversize_chunked_body_is_413_before_it_is_all_sent(
    server: EdgeServer, path: str
) -> None:
    before = _stats(server)
    with _connect(server) as conn:
        conn.sendall(_head(path, {"authorization": TOKEN, "transfer-encoding": "chunked"}))
        sent = _stream_until_answered(conn, b"x" * 65536, MANY_MB)
        assert sent < MANY_MB
        status, headers, body = _read_response(conn)
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["type"] == "/problems/body-too-large"
    after = _stats(server)
    assert after["read"] == before["read"]  # the eager route's handler never ran
    assert after["entered"] - before["entered"] == after["released"] - before["released"]
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize("path", ["/upload", "/deferred"])
def test_a_chunked_body_within_the_limit_is_read_whole(server: EdgeServer, path: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(12):
            yield b"y" * 5000

    r = httpx.post(
        f"{server.url}{path}", content=chunks(), headers={"authorization": TOKEN}, timeout=10
    )
    assert r.status_code == 200, r.text
    assert r.json()["bytes"] == 60_000
    exact = httpx.post(
        f"{server.url}{path}", content=b"z" * LIMIT, headers={"authorization": TOKEN}, timeout=10
    )
    assert (exact.status_code, exact.json()["bytes"]) == (200, LIMIT)
    over = httpx.post(
        f"{server.url}{path}",
        content=b"z" * (LIMIT + 1),
        headers={"authorization": TOKEN},
        timeout=10,
    )
    assert over.status_code == 413


def test_the_guard_result_is_the_request_principal(server: EdgeServer) -> None:
    r = httpx.post(f"{server.url}/upload", content=b"{}", headers={"authorization": TOKEN})
    assert r.json() == {"bytes": 2, "principal": "admin"}


@pytest.mark.parametrize(
    ("framing", "partial"),
    [({"content-length": "1000"}, b"x" * 10), ({"transfer-encoding": "chunked"}, _chunk(b"x"))],
    ids=["content-length", "chunked"],
)
@pytest.mark.parametrize("path", ["/upload", "/deferred"])
def test_a_stalled_body_gets_408_and_the_connection_is_closed(
    server: EdgeServer, framing: dict[str, str], partial: bytes, path: str
) -> None:
    before = _stats(server)
    with _connect(server) as conn:
        conn.sendall(_head(path, {"authorization": TOKEN, **framing}) + partial)
        status, headers, body = _read_response(conn)
        assert status == 408
        assert headers["connection"] == "close"
        assert json.loads(body)["type"] == "/problems/body-timeout"
        assert _closed_by_server(conn)
    after = _stats(server)
    assert after["read"] == before["read"]
    assert after["entered"] - before["entered"] == after["released"] - before["released"]
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("framing", "partial"),
    [({"content-length": "1000"}, b"x" * 10), ({"transfer-encoding": "chunked"}, _chunk(b"x"))],
    ids=["content-length", "chunked"],
)
def test_a_client_leaving_mid_body_leaves_nothing_held(
    server: EdgeServer, framing: dict[str, str], partial: bytes
) -> None:
    before = _stats(server)
    with _connect(server) as conn:
        conn.sendall(_head("/deferred", {"authorization": TOKEN, **framing}) + partial)
        # the handler has started (it holds its resource) once the server saw the headers
        _wait_for(server, lambda s: s["entered"] > before["entered"])
    # closed mid-body: the handler's finally block runs, however the read ended
    _wait_for(server, lambda s: s["released"] > before["released"])
    after = _stats(server)
    assert after["entered"] - before["entered"] == after["released"] - before["released"] == 1
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


def _wait_for(server: EdgeServer, cond: Any) -> None:
    """Poll /stats until ``cond`` holds (bounded: a hang fails instead of blocking)."""
    for _ in range(500):
        if cond(_stats(server)):
            return
        select.select([], [], [], 0.01)
    raise AssertionError(f"condition never held: {_stats(server)}")


def test_an_app_refuses_a_route_whose_auth_has_no_guard() -> None:
    with pytest.raises(ValueError, match="buyer"):
        App(
            [Route("GET", "/me", healthz, "me", auth="buyer")],
            max_body_bytes=1,
            guards={"admin": admin_guard},
        )


def test_a_chunked_body_with_trailers_is_read_whole(server: EdgeServer) -> None:
    # Granian streams the trailers as one more empty chunk, as it does HTTP/2's final
    # empty DATA frame: neither may be taken for a broken body
    with _connect(server) as conn:
        head = _head("/upload", {"authorization": TOKEN, "transfer-encoding": "chunked"})
        conn.sendall(head + _chunk(b"a" * 100) + _chunk(b"b" * 50) + b"0\r\nx-sum: 1\r\n\r\n")
        status, _, body = _read_response(conn)
    assert status == 200
    assert json.loads(body)["bytes"] == 150
