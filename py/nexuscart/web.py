"""A small RSGI toolkit for the edge: routing, msgspec JSON, problem+json, OpenAPI, metrics.

Why not a framework: on our machine a general-purpose framework costs 4-6x on a trivial route
(ADR 0005). This module keeps the per-request work to one dict lookup (static
routes) or a short segment match, one msgspec decode and one encode with pre-built
encoders, and still derives an OpenAPI document from the same route table.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import re
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import msgspec
from granian._granian import RSGIProtocolClosed as ProtocolClosed

from nexuscart.gc_tuning import tune_gc
from nexuscart.observability import REQUEST_ID

log = logging.getLogger("nexuscart.edge")
access_log = logging.getLogger("nexuscart.access")
# a caller's X-Request-Id is carried on only if short and plain (it ends up in log lines)
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id(headers: Mapping[str, str] | Any) -> str:
    """The caller's X-Request-Id when usable, else a new random one."""
    given = headers.get("x-request-id")
    return given if given and _REQUEST_ID.fullmatch(given) else os.urandom(8).hex()


JSON: Final = "application/json"
PROBLEM_JSON: Final = "application/problem+json"
_encoder: Final = msgspec.json.Encoder()
_json_headers: Final = [("content-type", JSON)]
_problem_headers: Final = [("content-type", PROBLEM_JSON)]


class Problem(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details. ``type`` is stable and documented in docs/api.md."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[str] | None = None


class HTTPError(Exception):
    """Raised by handlers and the toolkit; rendered as problem+json."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        errors: list[str] | None = None,
    ):
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = list(headers)
        self.errors = errors


class DependencyUnavailable(Exception):
    """A dependency (Redis, PostgreSQL, Kafka, Stripe) failed or timed out: answer 503."""

    def __init__(self, dependency: str, retry_after_s: int = 1):
        super().__init__(f"{dependency} unavailable")
        self.dependency = dependency
        self.retry_after_s = retry_after_s


def problem_type(slug: str) -> str:
    return f"/problems/{slug}"


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: list[tuple[str, str]]):
        self.status = status
        self.body = body
        self.headers = headers


def json_response(obj: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> Response:
    return Response(
        status, _encoder.encode(obj), [*_json_headers, *headers] if headers else _json_headers
    )


def raw_json(body: bytes, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> Response:
    return Response(status, body, [*_json_headers, *headers] if headers else _json_headers)


def problem_response(err: HTTPError, instance: str | None = None) -> Response:
    body = _encoder.encode(
        Problem(
            type=problem_type(err.slug),
            title=err.title,
            status=err.status,
            detail=err.detail,
            instance=instance,
            errors=err.errors,
        )
    )
    return Response(err.status, body, [*_problem_headers, *err.headers])


class HeadersLike(Protocol):
    def get(self, key: str, default: str | None = None) -> str | None: ...


class Scope(Protocol):
    method: str
    path: str
    query_string: str
    client: str

    @property
    def headers(self) -> HeadersLike: ...


class HTTPProto(Protocol):
    def __call__(self) -> Awaitable[bytes]: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...


class BodyLimits:
    """How much of a body the app reads and for how long (one per App, shared by requests).

    The deadline is kept by one sweep per ``timeout_s / 4`` (while any body is being read)
    that cancels the reads past it, rather than by a timer per read: ``asyncio.timeout``
    costs 12-20 us per request here, a third of a purchase's budget. A read is thus cut
    between ``timeout_s`` and ``1.25 * timeout_s`` after it began."""

    __slots__ = ("_expired", "_reading", "_sweep", "_sweep_loop", "max_bytes", "timeout_s")

    def __init__(self, max_bytes: int, timeout_s: float):
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._reading: dict[asyncio.Task[Any], float] = {}  # reader -> deadline (loop time)
        self._expired: set[asyncio.Task[Any]] = set()  # cancelled by the sweep, not by others
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None

    async def read(self, proto: HTTPProto, length: int) -> bytes:
        """The body: ``length`` is the declared Content-Length (already checked against the
        limit), -1 for a chunked body. 413 as soon as a chunked body passes the limit, 408 when
        the client is too slow, 400 when it went away mid-body."""
        if length == 0:
            return b""
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        self._reading[task] = loop.time() + self.timeout_s
        if self._sweep is None or self._sweep_loop is not loop:
            self._sweep_loop = loop
            self._sweep = loop.call_later(self.timeout_s / 4, self._cut_late_reads, loop)
        try:
            if length > 0:
                # hyper reads exactly the declared length: bounded by the check on it
                body = await proto()
            else:
                body = await self._read_chunked(proto)
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            task.uncancel()
            raise HTTPError(
                408,
                "body-timeout",
                "Request body not received in time",
                f"send the whole body within {self.timeout_s:g} s",
                headers=[("connection", "close")],
            ) from None
        except ProtocolClosed:  # the client went away mid-body, or broke the chunk framing
            raise _incomplete() from None
        finally:
            self._reading.pop(task, None)
        if length > 0 and len(body) != length:
            raise _incomplete()
        return body

    def _cut_late_reads(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._sweep_loop:
            return  # superseded by a sweep on another loop (tests run several)
        now = loop.time()
        for task, deadline in list(self._reading.items()):
            if deadline <= now and task not in self._expired and task.get_loop() is loop:
                self._expired.add(task)
                task.cancel()
        self._sweep = (
            loop.call_later(self.timeout_s / 4, self._cut_late_reads, loop)
            if self._reading
            else None
        )

    async def _read_chunked(self, proto: HTTPProto) -> bytes:
        # Granian ends the stream with b"" whether the body ended or broke (client gone, bad
        # framing): a cut chunked body reaches the handler short, where a JSON body fails to
        # decode. (An extra b"" cannot tell them apart: HTTP/2 ends a body with an empty DATA
        # frame, which adds one, and so do HTTP/1.1 trailers.)
        chunks: list[bytes] = []
        size = 0
        async for chunk in proto:
            if not chunk:
                continue
            size += len(chunk)
            if size > self.max_bytes:
                raise HTTPError(
                    413,
                    "body-too-large",
                    "Request body too large",
                    f"limit is {self.max_bytes} bytes",
                    headers=[("connection", "close")],
                )
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _incomplete() -> HTTPError:
    return HTTPError(
        400,
        "body-incomplete",
        "Request body incomplete",
        "the connection ended before the declared Content-Length arrived",
        headers=[("connection", "close")],
    )


class Request:
    __slots__ = (
        "_length",
        "_limits",
        "_proto",
        "body",
        "client_ip",
        "headers",
        "method",
        "params",
        "path",
        "principal",
        "query",
        "state",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: HeadersLike,
        body: bytes,
        client_ip: str,
        params: dict[str, str],
    ):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.client_ip = client_ip
        self.params = params
        self.state: dict[str, Any] = {}
        # what the route's guard returned (the buyer's user id, ...); None without a guard
        self.principal: object = None
        self._proto: HTTPProto | None = None  # set while a deferred body is unread
        self._length = -1
        self._limits: BodyLimits | None = None

    async def read_body(self) -> bytes:
        """Read a deferred body (routes with ``defer_body``); a no-op when already read."""
        proto = self._proto
        if proto is not None and self._limits is not None:
            self._proto = None
            self.body = await self._limits.read(proto, self._length)
        return self.body

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def query_params(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.query:
            from urllib.parse import parse_qsl

            # undecodable percent-escapes become U+FFFD: never an exception
            for k, v in parse_qsl(self.query, keep_blank_values=True):
                out[k] = v
        return out


_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}
T = TypeVar("T")


def decode_body(req: Request, typ: type[T]) -> T:
    """Decode the JSON body as ``typ``: 400 for malformed JSON, 422 for the wrong shape."""
    dec = _decoders.get(typ)
    if dec is None:
        dec = _decoders[typ] = msgspec.json.Decoder(typ)
    if not req.body:
        raise HTTPError(400, "malformed-body", "Request body required", "expected a JSON object")
    try:
        value: T = dec.decode(req.body)
        return value
    except msgspec.ValidationError as exc:
        raise HTTPError(
            422, "validation-error", "Request body failed validation", str(exc)
        ) from exc
    except msgspec.DecodeError as exc:
        raise HTTPError(400, "malformed-body", "Request body is not valid JSON", str(exc)) from exc
    except UnicodeDecodeError as exc:  # msgspec raises it for a string that is not UTF-8
        raise HTTPError(400, "malformed-body", "Request body is not UTF-8", str(exc)) from exc


def _check_size(size: int, limit: int) -> None:
    """413 for a body over ``limit`` bytes; ``size`` -1 means an unparseable Content-Length."""
    if size < 0 or size > limit:
        raise HTTPError(413, "body-too-large", "Request body too large", f"limit is {limit} bytes")


ID_MAX: Final = (1 << 63) - 1  # ids are PostgreSQL bigints
_ID_DIGITS: Final = len(str(ID_MAX))


def _ascii_int(raw: str, lo: int, hi: int) -> int | None:
    """``raw`` as an int in [lo, hi] if it is 1+ ASCII digits, else None (str.isdigit alone
    takes '²' and Arabic-Indic digits; int() takes spaces, '_' and signs)."""
    if not raw or len(raw) > _ID_DIGITS or not raw.isascii() or not raw.isdigit():
        return None
    value = int(raw)
    return value if lo <= value <= hi else None


def path_int(req: Request, name: str) -> int:
    """A path id: ASCII digits within the bigint range, else 404 (no such resource)."""
    value = _ascii_int(req.params[name], 0, ID_MAX)
    if value is None:
        raise HTTPError(404, "not-found", "Not found", f"{name} must be a non-negative integer")
    return value


D = TypeVar("D", int, None)


def query_int(req: Request, name: str, default: D, lo: int, hi: int) -> int | D:
    """An integer query parameter in [lo, hi] (ASCII digits), ``default`` when absent, else
    400. Each call parses the query string: fine for the few routes that take one."""
    raw = req.query_params().get(name) if req.query else None
    if raw is None:
        return default
    value = _ascii_int(raw, lo, hi)
    if value is None:
        raise HTTPError(
            400, "bad-query", "Invalid query parameter", f"{name} must be an integer in {lo}..{hi}"
        )
    return value


Handler = Callable[[Request], Awaitable[Response]]
# Checks a request's credential before its body is read: raises HTTPError (401) or returns
# the principal (e.g. the buyer's user id), which the handler finds in ``req.principal``.
Guard = Callable[[Request], object]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    request: type[Any] | None = None
    responses: dict[int, type[Any] | None] = field(default_factory=dict)
    # the role policy ("user", "customer", "seller", "admin"; None: public): the route's
    # security in OpenAPI, and the name of the App guard that checks it before any body
    # byte is read (see App)
    auth: str | None = None
    idempotent_key: bool = False  # accepts Idempotency-Key
    tags: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    # (name, description[, JSON schema]) of query parameters; the schema defaults to string
    query: tuple[tuple[str, str] | tuple[str, str, dict[str, Any]], ...] = ()
    # problem statuses the handler itself answers (409, 429, ...); the input checks of the
    # toolkit (400, 401, 404, 408, 413, 422, 503) are derived from the route's shape
    problems: tuple[int, ...] = ()
    # The handler reads the body itself (Request.read_body) once it knows it needs it:
    # awaiting a Granian body costs a cross-thread wake-up, which the purchase path skips
    # for the requests the gate rejects in-process.
    defer_body: bool = False


class MetricsSnapshot(msgspec.Struct, array_like=True):
    """One worker's counters, as it publishes them for the others to add up."""

    requests: list[tuple[str, int, int]]
    latency: dict[str, list[int]]
    latency_sum: dict[str, float]
    counters: list[tuple[str, str, int]]
    server: str = ""  # server_id of the worker's Granian server


def server_id(pid: int) -> str:
    """``pid:start time`` of a process: a server's workers (children of one Granian process)
    agree on their parent's; a later server reusing the pid (PID 1 in a container) differs."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # field 22, starttime; the fields after the command name ("(...)") start at 3
            return f"{pid}:{int(f.read().rsplit(b')', 1)[1].split()[19])}"
    except (OSError, IndexError, ValueError):
        return str(pid)  # no procfs: the pid alone


# Every metric of the edge (name without the nexuscart_ prefix -> type, help): /metrics
# describes each one, samples or not, so Prometheus knows it before the first increment
# (the dashboards' test checks their queries against it; docs/observability.md lists them).
EDGE_METRICS: Final[dict[str, tuple[str, str]]] = {
    "http_requests_total": ("counter", "Answers by route template and status"),
    "http_request_duration_seconds": ("histogram", "Time from request to answer, by route"),
    "dependency_failures_total": ("counter", "Requests answered 503 because a dependency failed"),
    "flash_sale_gate_decisions_total": (
        "counter",
        "Rust gate decisions on purchases: admit, sold_out, rate_limited, busy",
    ),
    "payments_webhooks_total": ("counter", "Stripe webhooks by outcome"),
    "catalog_stock_low_total": ("counter", "Stock level changes that crossed the low mark"),
    "catalog_page_builds_total": (
        "counter",
        "Product pages a worker did not have, by source: shared (another worker's, from "
        "Redis) or built (from PostgreSQL)",
    ),
    "catalog_stock_copies_dropped_total": (
        "counter",
        "Copied stock values dropped on Redis' invalidation push (ADR 0019)",
    ),
    "recs_views_dropped_total": (
        "counter",
        "Product views not published to interactions.v1 (over the per-worker cap, Kafka down)",
    ),
    "search_cache_misses_total": ("counter", "Search queries the result cache did not have"),
    "search_index_documents": ("gauge", "Documents in this worker's search index"),
    "search_index_ready": ("gauge", "1 once this worker's search index is built"),
    "worker_snapshots": ("gauge", "Edge workers whose counters this scrape summed"),
}


class Metrics:
    """Prometheus counters and a latency histogram (text exposition format).

    Granian's workers share one port, so a scrape reaches one of them. With ``shared_dir``,
    each worker publishes its counters there every ``publish_s`` and a scrape answers the sum
    of every worker's (its own live, the others' as last published). A dead worker's file
    stays, so the sum never goes down while the server runs; files another server left (one
    whose workers were killed with it) carry its ``server_id`` and are skipped.
    """

    BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = {}
        self.counters: dict[tuple[str, str], int] = {}  # (name, rendered labels) -> n
        self.gauges: dict[str, Callable[[], float]] = {}
        self.shared_dir: Path | None = None
        self.server = ""
        self.publish_s = 1.0

    def snapshot(self) -> MetricsSnapshot:
        return MetricsSnapshot(
            [(r, s, n) for (r, s), n in self.requests.items()],
            {r: list(b) for r, b in self.latency.items()},
            dict(self.latency_sum),
            [(name, labels, n) for (name, labels), n in self.counters.items()],
            self.server,
        )

    def add(self, snap: MetricsSnapshot) -> None:
        for route, status, n in snap.requests:
            self.requests[(route, status)] = self.requests.get((route, status), 0) + n
        for route, buckets in snap.latency.items():
            mine = self.latency.setdefault(route, [0] * (len(self.BUCKETS) + 1))
            for i, n in enumerate(buckets[: len(mine)]):
                mine[i] += n
            self.latency_sum[route] = self.latency_sum.get(route, 0.0) + snap.latency_sum.get(
                route, 0.0
            )
        for name, labels, n in snap.counters:
            self.inc(name, labels, n)

    def share(self, directory: Path, publish_s: float = 1.0, server: str = "") -> None:
        """Sum with the workers of ``server`` (a ``server_id``) publishing to ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        self.shared_dir, self.publish_s, self.server = directory, publish_s, server

    def _own_file(self) -> Path | None:
        return self.shared_dir / f"{os.getpid()}.metrics" if self.shared_dir else None

    def publish(self) -> None:
        """Write this worker's counters for the others (atomically: write, then rename)."""
        own = self._own_file()
        if own is None:
            return
        tmp = own.with_suffix(".tmp")
        tmp.write_bytes(msgspec.msgpack.encode(self.snapshot()))
        tmp.replace(own)

    def unpublish(self) -> None:
        """Remove this worker's file and stop publishing (a timer may still fire)."""
        own, directory = self._own_file(), self.shared_dir
        self.shared_dir = None
        if own is not None and directory is not None:
            own.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                directory.rmdir()  # the last worker out removes the directory

    def render_all(self) -> bytes:
        """This worker's live counters plus every other worker's last published ones."""
        own = self._own_file()
        if own is None or self.shared_dir is None:
            return self.render()
        total = Metrics()
        total.add(self.snapshot())
        decoder = msgspec.msgpack.Decoder(MetricsSnapshot)
        workers = 1
        for path in self.shared_dir.glob("*.metrics"):
            if path == own:
                continue
            try:
                snap = decoder.decode(path.read_bytes())
            except (OSError, msgspec.DecodeError):
                continue  # vanished or half-written by a dying worker: skip this scrape
            if snap.server == self.server:
                total.add(snap)
                workers += 1
        total.gauges = {**self.gauges, "worker_snapshots": lambda: float(workers)}
        return total.render()

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        buckets = self.latency.get(route)
        if buckets is None:
            buckets = self.latency[route] = [0] * (len(self.BUCKETS) + 1)
            self.latency_sum[route] = 0.0
        i = 0
        for bound in self.BUCKETS:
            if seconds <= bound:
                break
            i += 1
        buckets[i] += 1
        self.latency_sum[route] += seconds

    def inc(self, name: str, labels: str = "", by: int = 1) -> None:
        """``labels`` is the rendered label set, e.g. 'dependency="redis"'."""
        key = (name, labels)
        self.counters[key] = self.counters.get(key, 0) + by

    def render(self) -> bytes:
        lines: list[str] = []
        described: set[str] = set()

        def describe(name: str, kind: str) -> None:
            described.add(name)
            _, text = EDGE_METRICS.get(name, (kind, ""))
            if text:
                lines.append(f"# HELP nexuscart_{name} {text}")
            lines.append(f"# TYPE nexuscart_{name} {kind}")

        describe("http_requests_total", "counter")
        for (route, status), n in sorted(self.requests.items()):
            lines.append(f'nexuscart_http_requests_total{{route="{route}",status="{status}"}} {n}')
        hist = "nexuscart_http_request_duration_seconds"
        describe("http_request_duration_seconds", "histogram")
        for route, buckets in sorted(self.latency.items()):
            cum = 0
            for bound, n in zip((*self.BUCKETS, float("inf")), buckets, strict=True):
                cum += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'{hist}_bucket{{route="{route}",le="{le}"}} {cum}')
            lines.append(f'{hist}_count{{route="{route}"}} {cum}')
            lines.append(f'{hist}_sum{{route="{route}"}} {self.latency_sum[route]}')
        for (name, labels), n in sorted(self.counters.items()):
            if name not in described:  # one TYPE line per metric name, whatever its labels
                describe(name, "counter")
            lines.append(f"nexuscart_{name}{{{labels}}} {n}" if labels else f"nexuscart_{name} {n}")
        for name, fn in sorted(self.gauges.items()):
            describe(name, "gauge")
            lines.append(f"nexuscart_{name} {fn()}")
        for name, (kind, _) in EDGE_METRICS.items():
            if name not in described:  # none yet: described all the same
                describe(name, kind)
        return ("\n".join(lines) + "\n").encode()


class Router:
    """Static paths: one dict lookup. Parameterised paths: matched segment by segment."""

    def __init__(self, routes: Sequence[Route]):
        self.routes = list(routes)
        self.static: dict[tuple[str, str], Route] = {}
        self.dynamic: list[tuple[str, list[str], Route]] = []
        self.paths: dict[str, set[str]] = {}
        # (method, path) -> match of a parameterised route: hot paths (one sale's purchase)
        # repeat, so the segment walk runs once per distinct path. Handlers must not mutate
        # the shared params dict.
        self._hits: dict[tuple[str, str], tuple[Route, dict[str, str]]] = {}
        for r in self.routes:
            self.paths.setdefault(r.path, set()).add(r.method)
            if "{" in r.path:
                self.dynamic.append((r.method, r.path.strip("/").split("/"), r))
            else:
                self.static[(r.method, r.path)] = r

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, params, path_exists_with_other_method)."""
        route = self.static.get((method, path))
        if route is not None:
            return route, {}, False
        hit = self._hits.get((method, path))
        if hit is not None:
            return hit[0], hit[1], False
        segs = path.strip("/").split("/")
        other = path in self.paths
        for m, pattern, r in self.dynamic:
            if len(pattern) != len(segs):
                continue
            params: dict[str, str] = {}
            for p, s in zip(pattern, segs, strict=True):
                if p[0] == "{":
                    if not s:
                        break
                    params[p[1:-1]] = s
                elif p != s:
                    break
            else:
                if m == method:
                    if len(self._hits) >= 4096:
                        self._hits.clear()
                    self._hits[(method, path)] = (r, params)
                    return r, params, False
                other = True
        return None, {}, other


class ClientAddress:
    """Who the client is, for per-IP limits: the TCP peer, unless the peer is a trusted proxy;
    then the right-most X-Forwarded-For entry that is not itself a trusted proxy (entries
    left of it are written by the client and cannot be trusted)."""

    def __init__(self, trusted_proxies: Sequence[str] = ()):
        self.networks = [ipaddress.ip_network(n.strip(), strict=False) for n in trusted_proxies]
        # IPv4 as (network, mask) integers: behind a balancer every buyer's address is new, so
        # a cache misses and ipaddress's parser (~3 us) would run on every purchase
        self._v4 = [
            (int(n.network_address), int(n.netmask))
            for n in self.networks
            if isinstance(n, ipaddress.IPv4Network)
        ]
        self._v6 = [n for n in self.networks if isinstance(n, ipaddress.IPv6Network)]
        self._trusted: dict[str, bool] = {}  # IPv6 and odd spellings only

    def is_trusted(self, addr: str) -> bool:
        try:
            ip = int.from_bytes(socket.inet_pton(socket.AF_INET, addr), "big")
        except OSError:
            return self._is_trusted_slow(addr)
        for net, mask in self._v4:  # noqa: SIM110 (a loop: no generator per request)
            if ip & mask == net:
                return True
        return False

    def _is_trusted_slow(self, addr: str) -> bool:
        hit = self._trusted.get(addr)
        if hit is None:
            try:
                ip = ipaddress.ip_address(addr.strip("[]"))
                if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                    hit = self.is_trusted(str(ip.ipv4_mapped))
                else:
                    hit = any(ip in n for n in self._v6)
            except ValueError:
                hit = False
            if len(self._trusted) >= 65_536:
                self._trusted.clear()
            self._trusted[addr] = hit
        return hit

    def __call__(self, peer: str, forwarded_for: str | None) -> str:
        if not self.networks or not forwarded_for or not self.is_trusted(peer):
            return peer
        for hop in reversed(forwarded_for.split(",")):
            hop = hop.strip()
            if not hop:
                continue
            if not self.is_trusted(hop):
                return hop
        return peer


class App:
    """The RSGI application: ``__rsgi__`` per request, ``__rsgi_init__``/``__rsgi_del__``."""

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        max_body_bytes: int,
        body_timeout_s: float = 5.0,
        guards: Mapping[str, Guard] | None = None,
        on_startup: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        metrics: Metrics | None = None,
        client_address: ClientAddress | None = None,
        share_metrics: str | None = None,
        access_log_sample: float = 0.0,
    ):
        """``guards``: Route.auth name -> Guard, run before the body is read; given, every
        route's auth must have one. None leaves credentials to the handlers.
        ``share_metrics``: None keeps metrics per worker; a directory (or "" for one per
        server under the temp dir) adds up every worker's on each scrape (see Metrics).
        ``access_log_sample``: the share of requests logged, one line each (method, route
        template, status, duration, request id; never headers, query or body)."""
        self.access_log_sample = access_log_sample
        self.router = Router(routes)
        self.client_address = client_address or ClientAddress()
        self.share_metrics = share_metrics
        self.max_body_bytes = max_body_bytes
        self.body = BodyLimits(max_body_bytes, body_timeout_s)
        self.guards = dict(guards) if guards is not None else {}
        if guards is not None:
            unguarded = sorted({r.auth for r in routes if r.auth and r.auth not in guards})
            if unguarded:
                raise ValueError(f"no guard for route auth {unguarded}")
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.metrics = metrics or Metrics()
        self._started: asyncio.Future[None] | None = None

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        tune_gc()
        if self.share_metrics is not None:
            # Runs in the worker: its parent is the Granian server all the workers share.
            default = Path(tempfile.gettempdir()) / f"nexuscart-metrics-{os.getppid()}"
            self.metrics.share(
                Path(self.share_metrics) if self.share_metrics else default,
                server=server_id(os.getppid()),
            )
            self._publish_metrics(loop)
        if self.on_startup is not None:
            self._started = asyncio.ensure_future(self.on_startup(), loop=loop)

    def _publish_metrics(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.metrics.shared_dir is None:
            return  # unpublished: shutting down
        try:
            self.metrics.publish()
        except OSError:
            log.warning("cannot publish metrics to %s", self.metrics.shared_dir, exc_info=True)
        loop.call_later(self.metrics.publish_s, self._publish_metrics, loop)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.metrics.unpublish()
        if self.on_shutdown is not None:
            loop.run_until_complete(self.on_shutdown())

    async def __rsgi__(self, scope: Scope, proto: HTTPProto) -> None:
        t0 = time.perf_counter()
        # one attribute test when off; a sampled request's log lines carry its request id
        logged = self.access_log_sample and random.random() < self.access_log_sample
        if logged:
            token = REQUEST_ID.set(request_id(scope.headers))
        if self._started is not None:
            if not self._started.done():
                await asyncio.shield(self._started)
            elif self._started.exception() is not None:
                self._started = asyncio.ensure_future(self.on_startup())  # type: ignore[misc]
                await asyncio.shield(self._started)
        route, params, other = self.router.match(scope.method, scope.path)
        label = route.path if route is not None else "unmatched"
        if route is None:
            if other:
                resp = problem_response(
                    HTTPError(405, "method-not-allowed", "Method not allowed"), scope.path
                )
            else:
                resp = problem_response(HTTPError(404, "not-found", "Not found"), scope.path)
        else:
            resp = await self._dispatch(route, params, scope, proto)
        proto.response_bytes(resp.status, resp.headers, resp.body)
        self.metrics.observe(label, resp.status, time.perf_counter() - t0)
        if logged:
            access_log.info(
                "%s %s %d",
                scope.method,
                label,
                resp.status,
                extra={
                    "method": scope.method,
                    "route": label,
                    "status": resp.status,
                    "duration_ms": round((time.perf_counter() - t0) * 1000, 3),
                },
            )
            REQUEST_ID.reset(token)

    async def _dispatch(
        self, route: Route, params: dict[str, str], scope: Scope, proto: HTTPProto
    ) -> Response:
        headers = scope.headers
        req: Request | None = None
        try:
            length = 0
            has_body = route.request is not None or scope.method in ("POST", "PUT", "PATCH")
            if has_body:
                # Granian (hyper) has validated Content-Length and dropped it when the body is
                # chunked: None means chunked (or no body), read with the limit as it streams
                declared = headers.get("content-length")
                if declared is None:
                    length = -1
                else:
                    length = int(declared) if declared.isdigit() else -1
                    _check_size(length, self.max_body_bytes)
            client = scope.client
            peer = client.rsplit(":", 1)[0] if client else ""
            if self.client_address.networks:
                peer = self.client_address(peer, headers.get("x-forwarded-for"))
            req = Request(scope.method, scope.path, scope.query_string, headers, b"", peer, params)
            if route.auth is not None:
                guard = self.guards.get(route.auth)
                if guard is not None:
                    # before any body byte: an anonymous 200 MB upload is refused unread
                    req.principal = guard(req)
            if has_body:
                if route.defer_body:
                    req._proto, req._length, req._limits = proto, length, self.body
                else:
                    req.body = await self.body.read(proto, length)
            return await route.handler(req)
        except HTTPError as err:
            return problem_response(err, scope.path)
        except DependencyUnavailable as err:
            self.metrics.inc("dependency_failures_total", f'dependency="{err.dependency}"')
            return problem_response(
                HTTPError(
                    503,
                    "dependency-unavailable",
                    "A dependency is unavailable",
                    f"{err.dependency} did not answer; retry later",
                    headers=[("retry-after", str(err.retry_after_s))],
                ),
                scope.path,
            )
        except Exception:
            log.exception(
                "unhandled error on %s %s",
                scope.method,
                scope.path,
                extra={"request_id": REQUEST_ID.get() or request_id(headers)},
            )
            return problem_response(
                HTTPError(500, "internal-error", "Internal server error"), scope.path
            )
        finally:
            if req is not None and req._proto is not None and req._length > _DRAIN_ABOVE:
                with contextlib.suppress(Exception):
                    await req.read_body()


# A deferred body the handler did not read stays in the connection. Granian passes over a
# small one (one packet, already buffered) and keeps the connection; a larger one makes it
# close the connection after the response. Reading it (its declared length is within
# MAX_BODY_BYTES, and the read has the body deadline) keeps the connection for the client's
# next request. Chunked bodies are not drained: Granian closes those connections.
_DRAIN_ABOVE: Final = 1024


def openapi(routes: Sequence[Route], *, title: str, version: str) -> dict[str, Any]:
    """OpenAPI 3.1 document derived from the route table and msgspec types."""
    types: list[Any] = [Problem]
    for r in routes:
        if r.request is not None:
            types.append(r.request)
        types.extend(t for t in r.responses.values() if t is not None)
    uniq = list(dict.fromkeys(types))
    schemas, components = msgspec.json.schema_components(
        uniq, ref_template="#/components/schemas/{name}"
    )
    ref = dict(zip(uniq, schemas, strict=True))
    problem_ref = ref[Problem]
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {"summary": r.summary, "operationId": _op_id(r), "tags": list(r.tags)}
        parameters: list[dict[str, Any]] = [
            {
                "name": p,
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 0, "maximum": ID_MAX}
                if p.endswith("_id")
                else {"type": "string"},
            }
            for p in r.params
        ]
        parameters += [
            {
                "name": q[0],
                "in": "query",
                "required": False,
                "description": q[1],
                "schema": q[2] if len(q) > 2 else {"type": "string"},
            }
            for q in r.query
        ]
        if r.idempotent_key:
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                }
            )
        if parameters:
            op["parameters"] = parameters
        if r.request is not None:
            op["requestBody"] = {"required": True, "content": {JSON: {"schema": ref[r.request]}}}
        responses: dict[str, Any] = {}
        for status, typ in r.responses.items():
            if typ is None:
                responses[str(status)] = {"description": "no body"}
            else:
                ct = "text/plain" if typ is str else JSON
                schema = {"type": "string"} if typ is str else ref[typ]
                responses[str(status)] = {"description": "ok", "content": {ct: {"schema": schema}}}
        for status in _problem_statuses(r):
            if str(status) not in responses:
                responses[str(status)] = {
                    "description": _PROBLEMS[status],
                    "content": {PROBLEM_JSON: {"schema": problem_ref}},
                }
        responses["default"] = {
            "description": "problem",
            "content": {PROBLEM_JSON: {"schema": problem_ref}},
        }
        op["responses"] = responses
        if r.auth is not None:
            # one bearer scheme; the role the route needs (its access policy) rides along
            op["security"] = [{"accessToken": []}]
            op["x-required-role"] = r.auth
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "accessToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


# status -> what it means, with the problem types (docs/api.md has the full table)
_PROBLEMS: Final = {
    400: "malformed request: body not JSON or UTF-8, Idempotency-Key, query",
    401: "missing or invalid credential (unauthorized)",
    403: "valid credential without the role the route needs (forbidden)",
    404: "no such resource (not-found)",
    408: "body not received in time (body-timeout)",
    409: "refused in the resource's current state",
    412: "If-Match names another version than the resource's (precondition-failed)",
    413: "body over MAX_BODY_BYTES (body-too-large)",
    422: "body failed validation (validation-error, idempotency-key-reused)",
    428: "If-Match required (precondition-required)",
    429: "rate limited (rate-limited); Retry-After",
    503: "a dependency is unavailable or the route is busy; Retry-After",
}


def _problem_statuses(r: Route) -> list[int]:
    has_body = r.request is not None or r.method in ("POST", "PUT", "PATCH")
    derived = {
        400: has_body or r.idempotent_key or bool(r.query),
        401: r.auth is not None,
        403: r.auth is not None,
        404: bool(r.params),
        408: has_body,
        413: has_body,
        422: r.request is not None,
        # routes that take input reach Redis or PostgreSQL
        503: r.auth is not None or bool(r.params) or r.request is not None,
    }
    return sorted({s for s, on in derived.items() if on} | set(r.problems))


def _op_id(r: Route) -> str:
    name = getattr(r.handler, "__name__", "op")
    return name.lstrip("_")
