"""The suite's phases, each bounded in time by the profile; each returns plain data (JSON)
that loadtest/suite/report.py turns into tables and plots."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from devtools import catalog_gen, devstack
from devtools.proc import stop_all
from loadtest.catalog import drafts, page_paths
from loadtest.locust_run import locust_cmd
from loadtest.storm import (
    HERE,
    LB_ENV,
    ROOT,
    Server,
    create_sale,
    held_units,
    orders_of_sale,
    payments_of_sale,
    write_tokens,
    wrk,
)
from loadtest.suite import events as bench_events
from loadtest.suite.probes import Kafka, Watcher, pipeline_watcher, total_lag
from loadtest.suite.profiles import Profile
from loadtest.suite.sampler import Phase, Sampler
from nexuscart import auth
from nexuscart.events import ORDERS_TOPIC, decode

WRK: Final = HERE / "wrk"
PURCHASE_CONNS: Final = 64  # PT-02: both paths at the same closed-loop concurrency
SCALING_CONNS: Final = 100
PT04_CONSUMERS: Final = 2  # one per core: what the partition count is then free to change
ASYNC_BUYERS: Final = 10_000_000  # user id ranges of the phases' buyers
SAMPLE_BUYERS: Final = 20_000_000
SYNC_BUYERS: Final = 30_000_000
WARM_BUYERS: Final = 40_000_000  # warm-up runs: buyers (and Idempotency-Keys) of their own


@dataclass
class Ctx:
    profile: Profile
    server: Server
    work: Path
    sampler: Sampler
    workers: int
    stamp: str = field(default_factory=lambda: time.strftime("%H%M%S"))

    @property
    def env(self) -> dict[str, str]:
        return self.server.env

    @property
    def secret(self) -> str:
        return self.server.env["JWT_SECRET"]


def say(text: str) -> None:
    print(f"[suite {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- wrk results ----------------------------------------------------------------------------


def measured(r: dict[str, Any]) -> dict[str, Any]:
    """storm.wrk's result plus the percentiles (ms) and socket errors report.lua printed."""
    raw = r.get("raw", "")
    out = {k: v for k, v in r.items() if k != "raw"}
    m = re.search(r"^percentiles_us: (.*)$", raw, re.M)
    if m:
        pcts = {k: int(v) / 1000 for k, v in (kv.split("=") for kv in m.group(1).split())}
        out["percentiles_ms"] = pcts
        out["p50_ms"], out["p95_ms"], out["p99_ms"] = pcts["50"], pcts["95"], pcts["99"]
    e = re.search(r"^errors: (.*)$", raw, re.M)
    if e:
        out["socket_errors"] = {k: int(v) for k, v in (kv.split("=") for kv in e.group(1).split())}
    out["errors"] = out.get("non2xx", 0) + sum(out.get("socket_errors", {}).values())
    return out


def run_wrk(
    ctx: Ctx, url: str, script: str, conns: int, env: dict[str, str], seconds: int | None = None
) -> dict[str, Any]:
    res: dict[str, Any] = {"connections": conns}
    with Phase(res, ctx.sampler):
        r = wrk(url, WRK / script, seconds or ctx.profile.seconds, conns, env)
    return {**res, **measured(r)}


# --- the bare ceiling -----------------------------------------------------------------------


def ceiling(ctx: Ctx) -> dict[str, Any]:
    """The bare Granian endpoint with the edge's worker count, at every PT-01 concurrency:
    every figure of the report is divided by the ceiling at its own concurrency."""
    bare = devstack.GranianServer(
        "loadtest.bare_app:app", {}, workers=ctx.workers, cwd=ROOT, ready_path="/"
    )
    try:
        out = {}
        for conns in ctx.profile.levels:
            out[str(conns)] = run_wrk(ctx, f"{bare.url}/", "get.lua", conns, {"PATH_TO_GET": "/"})
            say(f"ceiling @{conns}: {out[str(conns)]['rps']:.0f} req/s")
        return out
    finally:
        bare.stop()


# --- PT-01 ----------------------------------------------------------------------------------


def load_catalog(ctx: Ctx) -> Path:
    asyncio.run(catalog_gen.load(ctx.env["PG_DSN"], ctx.env["REDIS_URL"], ctx.profile.products))
    hidden = asyncio.run(drafts(ctx.env["PG_DSN"]))
    z = catalog_gen.ZipfProducts(ctx.profile.products)
    pages = ctx.work / "pages.txt"
    pages.write_text("\n".join(page_paths(z, 20_000, seed=1, hidden=hidden)) + "\n")
    return pages


def pt01(ctx: Ctx, pages: Path, order_tokens: Path) -> dict[str, Any]:
    """GET /products, GET /products/{id} (popular products, Zipf), GET /users/me/orders
    (every request a different signed-in user, buyers of PT-02 with an order each)."""
    url = ctx.server.url
    scenarios = {
        "GET /products": ("get.lua", {"PATH_TO_GET": "/products?limit=20"}),
        "GET /products/{id}": ("paths.lua", {"PATHS": str(pages)}),
        "GET /users/me/orders": (
            "authed_get.lua",
            {"PATH_TO_GET": "/users/me/orders?limit=10", "TOKENS": str(order_tokens)},
        ),
    }
    out: dict[str, Any] = {}
    for name, (script, env) in scenarios.items():
        run_wrk(ctx, url, script, 10, env, seconds=1)  # warm the workers' caches
        out[name] = {}
        for conns in ctx.profile.levels:
            r = run_wrk(ctx, url, script, conns, env)
            out[name][str(conns)] = r
            say(f"PT-01 {name} @{conns}: {r['rps']:.0f} req/s p99 {r.get('p99_ms')} ms")
    return out


# --- PT-02 ----------------------------------------------------------------------------------


class Prober(threading.Thread):
    """Purchases at a steady rate next to the load, each by a buyer of its own: the time it
    was sent and answered and its order id, for the end-to-end latency to the order row."""

    def __init__(self, url: str, secret: str, sale_id: int, rate: float, first_user: int):
        super().__init__(name="prober", daemon=True)
        self.url, self.secret, self.sale_id = url, secret, sale_id
        self.rate, self.first_user = rate, first_user
        self.samples: list[dict[str, Any]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            i = 0
            t0 = time.monotonic()
            while not self.stopping.is_set():
                user = self.first_user + i
                headers = {
                    "authorization": f"Bearer {auth.issue(self.secret, user, 7200)}",
                    "idempotency-key": f"probe-{user}",
                    "x-forwarded-for": f"11.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
                }
                sent = time.time()
                try:
                    r = http.post(
                        f"/flash-sales/{self.sale_id}/purchase",
                        json={"quantity": 1},
                        headers=headers,
                    )
                    answered = time.time()
                    if r.status_code in (201, 202):
                        self.samples.append(
                            {
                                "order_id": int(r.json()["order_id"]),
                                "user_id": user,
                                "sent": sent,
                                "answered": answered,
                            }
                        )
                except httpx.HTTPError:
                    pass  # counted by the load generator; a probe only samples
                i += 1
                self.stopping.wait(max(0.0, t0 + i / self.rate - time.monotonic()))


class EventTimes(threading.Thread):
    """When each of orders.v1's StockReserved events reached Kafka (the relay's record
    timestamp), read by a group-less consumer from the end of every partition."""

    def __init__(self, bootstrap: str):
        super().__init__(name="event-times", daemon=True)
        self.bootstrap = bootstrap
        self.times: dict[int, float] = {}
        self.ready = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        c = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await c.start()
        try:
            parts = c.partitions_for_topic(ORDERS_TOPIC) or set()
            if not parts:
                await c._client.force_metadata_update()
                parts = c.partitions_for_topic(ORDERS_TOPIC) or set()
            tps = [TopicPartition(ORDERS_TOPIC, p) for p in parts]
            c.assign(tps)
            await c.seek_to_end(*tps)
            self.ready.set()
            while not self.stopping.is_set():
                batch = await c.getmany(timeout_ms=300, max_records=5000)
                for records in batch.values():
                    for rec in records:
                        with contextlib.suppress(Exception):
                            order_id = getattr(decode(rec.value).data, "order_id", None)
                            if order_id is not None:
                                self.times.setdefault(int(order_id), rec.timestamp / 1000)
        finally:
            self.ready.set()
            await c.stop()


def _series(w: Watcher) -> dict[str, list[list[Any]]]:
    return {
        "outbox": [[t, v] for t, v in w.series["outbox"] if isinstance(v, int)],
        "lag": [[t, total_lag(v)] for t, v in w.series["lag"] if total_lag(v) is not None],
    }


async def _created(dsn: str, pairs: list[tuple[int, int]]) -> dict[int, float]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT o.order_id, extract(epoch FROM o.created_at)::float8 AS t FROM orders o "
            "JOIN unnest($1::bigint[], $2::bigint[]) AS s(u, o) "
            "ON o.user_id = s.u AND o.order_id = s.o",
            [u for u, _ in pairs],
            [o for _, o in pairs],
        )
    finally:
        await conn.close()
    return {int(r["order_id"]): float(r["t"]) for r in rows}


def _e2e(ctx: Ctx, samples: list[dict[str, Any]], kafka_times: dict[int, float]) -> dict[str, Any]:
    created = asyncio.run(
        _created(ctx.env["PG_DSN"], [(s["user_id"], s["order_id"]) for s in samples])
    )
    rows = []
    for s in samples:
        c = created.get(s["order_id"])
        k = kafka_times.get(s["order_id"])
        rows.append({**s, "created": c, "kafka": k})
    done = [r for r in rows if r["created"] is not None]
    out: dict[str, Any] = {
        "samples": len(rows),
        "with_row": len(done),
        "e2e_ms": bench_events.stats_ms([max(0.0, r["created"] - r["sent"]) for r in done]),
        "request_ms": bench_events.stats_ms([r["answered"] - r["sent"] for r in rows]),
        "series": [[r["sent"], 1000 * max(0.0, r["created"] - r["sent"])] for r in done],
    }
    staged = [r for r in done if r["kafka"] is not None]
    if staged:
        out["breakdown_ms"] = {
            "request": bench_events.stats_ms([r["answered"] - r["sent"] for r in staged]),
            "outbox to Kafka": bench_events.stats_ms(
                [max(0.0, r["kafka"] - r["answered"]) for r in staged]
            ),
            "Kafka to order row": bench_events.stats_ms(
                [max(0.0, r["created"] - r["kafka"]) for r in staged]
            ),
        }
    return out


def pt02_async(ctx: Ctx) -> dict[str, Any]:
    """The shipped purchase: Redis Lua gate -> outbox -> relay -> Kafka -> orders service."""
    p = ctx.profile
    srv = ctx.server
    tokens = ctx.work / "async-tokens.txt"
    write_tokens(tokens, ctx.secret, ASYNC_BUYERS, p.buyers)
    sale = create_sale(srv.url, ctx.secret, units=(1 << 24) - 1, limit=100)
    times = EventTimes(srv.env["KAFKA_BOOTSTRAP"])
    times.start()
    times.ready.wait(20)
    prober = Prober(srv.url, ctx.secret, sale, p.samples_per_s, SAMPLE_BUYERS)
    res: dict[str, Any] = {"connections": PURCHASE_CONNS, "sale_id": sale}
    warm = create_sale(srv.url, ctx.secret, units=(1 << 24) - 1, limit=100)
    warm_purchases(ctx, srv.url, warm, xff=True)  # a sale of its own: not counted
    watcher = pipeline_watcher(
        srv.env["REDIS_URL"], srv.env["KAFKA_BOOTSTRAP"], "orders", ORDERS_TOPIC
    )
    with watcher, Phase(res, ctx.sampler):
        prober.start()
        t0 = time.time()
        r = wrk(
            srv.url,
            WRK / "purchase.lua",
            p.seconds,
            PURCHASE_CONNS,
            {"TOKENS": str(tokens), "SALE": str(sale), "XFF": "1"},
        )
        prober.stopping.set()
        prober.join()
        held = asyncio.run(held_units(srv.env["REDIS_URL"], sale))
        orders = asyncio.run(orders_of_sale(srv.env["PG_DSN"], sale, held, p.drain_s))
        drained = time.time()
    # every order's payment intent too (the payments service and stripe-mock share the
    # cores), so that the next phases start on a quiet pipeline; bounded
    left = max(1.0, p.drain_s - (time.time() - t0 - p.seconds))
    paid = asyncio.run(payments_of_sale(srv.env["PG_DSN"], sale, held, left))
    res["payments"], res["payments_drain_s"] = paid, time.time() - drained
    times.stopping.set()
    times.join(10)
    res.update(measured(r))
    res.update(
        holds=held,
        orders=orders,
        holds_per_s=held / p.seconds,
        # orders in PostgreSQL per second, from the first request to the last order row
        orders_per_s=orders / (drained - t0),
        drain_s=drained - t0 - p.seconds,
        queues=_series(watcher),
        latency=_e2e(ctx, prober.samples, times.times),
    )
    say(
        f"PT-02 async: {res['rps']:.0f} req/s, {res['orders_per_s']:.0f} orders/s end to end, "
        f"e2e p50 {res['latency']['e2e_ms'].get('p50')} ms"
    )
    return res


async def prepare_sync(dsn: str, sale_id: int, units: int) -> None:
    """The bench-only stock row and order id sequence of the sync path (ids far above the
    edge's, so the two paths' orders never collide in one table)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_sync_stock "
            "(sale_id bigint PRIMARY KEY, units bigint);"
            "CREATE SEQUENCE IF NOT EXISTS bench_sync_order_ids START 900000000000"
        )
        await conn.execute(
            "INSERT INTO bench_sync_stock VALUES ($1, $2) "
            "ON CONFLICT (sale_id) DO UPDATE SET units = excluded.units",
            sale_id,
            units,
        )
    finally:
        await conn.close()


def pt02_sync(ctx: Ctx) -> dict[str, Any]:
    """The order written in the request (loadtest/suite/sync_app.py, bench only)."""
    p = ctx.profile
    sale, warm = 990_001, 990_000
    for s in (sale, warm):
        asyncio.run(prepare_sync(ctx.env["PG_DSN"], s, (1 << 40)))
    env = {k: v for k, v in ctx.env.items() if k in ("PG_DSN", "JWT_SECRET", "JWT_ISSUER")}
    app = devstack.GranianServer(
        "loadtest.suite.sync_app:app",
        {**env, "BENCH_POOL": "16"},
        workers=ctx.workers,
        cwd=ROOT,
        ready_path="/",
    )
    tokens = ctx.work / "sync-tokens.txt"
    write_tokens(tokens, ctx.secret, SYNC_BUYERS, p.buyers)
    res: dict[str, Any] = {"connections": PURCHASE_CONNS, "sale_id": sale}
    prober = Prober(app.url, ctx.secret, sale, p.samples_per_s, SYNC_BUYERS + 5_000_000)
    try:
        warm_purchases(ctx, app.url, warm, xff=False)
        with Phase(res, ctx.sampler):
            prober.start()
            r = wrk(
                app.url,
                WRK / "purchase.lua",
                p.seconds,
                PURCHASE_CONNS,
                {"TOKENS": str(tokens), "SALE": str(sale)},
            )
            prober.stopping.set()
            prober.join()
    finally:
        app.stop()
    res.update(measured(r))
    ok = r["total"] - r["non2xx"]
    # the order row is committed before the answer: orders/s is answers/s, latency is the
    # request's
    res.update(
        orders=ok,
        orders_per_s=ok / p.seconds,
        latency=_e2e(ctx, prober.samples, {}),
        queues={"outbox": [], "lag": []},
    )
    say(f"PT-02 sync: {res['rps']:.0f} req/s, e2e p50 {res['latency']['e2e_ms'].get('p50')} ms")
    return res


def warm_purchases(ctx: Ctx, url: str, sale: int, xff: bool) -> None:
    """One second of purchases before measuring (pools opened, code paths warm)."""
    tokens = ctx.work / "warm-tokens.txt"
    write_tokens(tokens, ctx.secret, WARM_BUYERS + sale % 1000 * 100_000, 20_000)
    env = {"TOKENS": str(tokens), "SALE": str(sale), "XFF": "1" if xff else "0"}
    wrk(url, WRK / "purchase.lua", 1, 10, env)


def order_tokens(ctx: Ctx, async_result: dict[str, Any]) -> Path:
    """Tokens of PT-02's buyers that have an order (for GET /users/me/orders)."""
    n = max(1, min(ctx.profile.buyers, int(async_result.get("holds", 0))))
    path = ctx.work / "order-tokens.txt"
    write_tokens(path, ctx.secret, ASYNC_BUYERS, n)
    return path


# --- PT-03 ----------------------------------------------------------------------------------


def pt03_edge(ctx: Ctx, pages: Path) -> dict[str, Any]:
    """Edge workers 1, 2, 4 (, 8) on the same stack: GET /products/{id} at 100 connections."""
    out: dict[str, Any] = {}
    for k in ctx.profile.edge_workers:
        edge = devstack.GranianServer(
            "edge.app:app",
            {**ctx.env, **LB_ENV, "EDGE_WORKERS": str(k), "METRICS_PORT": "0"},
            workers=k,
            cwd=ROOT,
            ready_path="/readyz",
        )
        try:
            env = {"PATHS": str(pages)}
            run_wrk(ctx, edge.url, "paths.lua", SCALING_CONNS, env, seconds=1)  # warm
            out[str(k)] = run_wrk(ctx, edge.url, "paths.lua", SCALING_CONNS, env)
        finally:
            edge.stop()
        say(f"PT-03 edge workers {k}: {out[str(k)]['rps']:.0f} req/s")
    return out


def _drain_run(
    ctx: Ctx,
    name: str,
    partitions: int,
    consumers: int,
    sale_id: int,
    rate: float | None,
) -> dict[str, Any]:
    """One bench consumer group run: a fresh topic of ``partitions``, ``consumers`` orders
    projectors as one group; with ``rate`` None the events are all in the topic before the
    consumers start (a backlog to drain), else they are sent at ``rate`` while they run."""
    p = ctx.profile
    bootstrap = ctx.env["KAFKA_BOOTSTRAP"]
    topic = f"bench.{name}.{ctx.stamp}"
    group = f"bench-{name}-{ctx.stamp}"

    async def create() -> None:
        k = Kafka(bootstrap)
        await k.start()
        try:
            await k.create_topic(topic, partitions)
        finally:
            await k.close()

    asyncio.run(create())
    res: dict[str, Any] = {"partitions": partitions, "consumers": consumers, "events": p.events}
    holder: dict[str, Kafka] = {}

    async def setup() -> None:
        holder["k"] = Kafka(bootstrap)
        await holder["k"].start()

    async def teardown() -> None:
        await holder["k"].close()

    async def lag() -> dict[int, tuple[int, int]]:
        return await holder["k"].lag(group, topic)

    watcher = Watcher({"lag": lag}, setup=setup, teardown=teardown)
    procs = []
    sent: dict[int, float] = {}
    try:
        with watcher, Phase(res, ctx.sampler):
            if rate is None:
                sent = asyncio.run(
                    bench_events.produce(ctx.env, topic, sale_id, p.events, None, sale_id)
                )
            procs = bench_events.start_consumers(ctx.env, group, topic, consumers, ctx.work)
            res["joined"] = asyncio.run(bench_events.wait_members(bootstrap, group, procs, 30))
            if rate is not None:
                sent = asyncio.run(
                    bench_events.produce(ctx.env, topic, sale_id, p.events, rate, sale_id)
                )
            asyncio.run(orders_of_sale(ctx.env["PG_DSN"], sale_id, p.events, p.drain_s))
    finally:
        stop_all(procs, 10)
    created = asyncio.run(bench_events.created_at(ctx.env["PG_DSN"], sale_id))
    res["rows"] = len(created)
    res["events_per_s"] = bench_events.drain_rate(list(created.values()))
    res["latency_ms"] = bench_events.stats_ms(
        [max(0.0, created[o] - t) for o, t in sent.items() if o in created]
    )
    lags = [(t, v) for t, v in watcher.series["lag"] if isinstance(v, dict) and "error" not in v]
    res["lag"] = [[t, total_lag(v)] for t, v in lags]
    res["lag_by_partition"] = [[t, {str(k): e - c for k, (e, c) in v.items()}] for t, v in lags]
    if lags:
        res["messages_by_partition"] = {str(k): e for k, (e, _) in lags[-1][1].items()}
    return res


def pt03_instances(ctx: Ctx) -> dict[str, Any]:
    """Orders projectors 1, 2, 4 in one group draining the same backlog (12 partitions)."""
    out = {}
    for i, n in enumerate(ctx.profile.instances):
        out[str(n)] = _drain_run(ctx, f"inst{n}", 12, n, 900 + i, None)
        say(f"PT-03 orders instances {n}: {out[str(n)]['events_per_s']} events/s")
    return out


def pt04(ctx: Ctx) -> dict[str, Any]:
    """1, 3, 6, 12 partitions, two orders projectors, events sent at a fixed rate."""
    out = {}
    for i, parts in enumerate(ctx.profile.partitions):
        r = _drain_run(ctx, f"part{parts}", parts, PT04_CONSUMERS, 950 + i, ctx.profile.event_rate)
        out[str(parts)] = r
        say(
            f"PT-04 partitions {parts}: {r['events_per_s']} events/s, "
            f"latency p99 {r['latency_ms'].get('p99')} ms"
        )
    return out


# --- Locust: the shopper mix and PT-05 ------------------------------------------------------


def shop_routes(url: str) -> dict[str, Any]:
    """Which shopper routes the edge has (cart and checkout land with issue 11)."""
    with urllib.request.urlopen(f"{url}/openapi.json", timeout=10) as resp:
        paths = json.loads(resp.read())["paths"]
    cart = sorted(p for p in paths if p.startswith(("/cart", "/checkout", "/users/me/cart")))
    return {"cart_checkout_paths": cart, "paths": sorted(paths)}


def _history(path: Path) -> list[dict[str, float]]:
    """Locust's per-second aggregated history: users, requests/s, failures/s, percentiles."""
    columns = {
        "t": "Timestamp",
        "users": "User Count",
        "rps": "Requests/s",
        "fails_per_s": "Failures/s",
        "p50": "50%",
        "p95": "95%",
        "p99": "99%",
    }
    with path.open() as f:
        return [
            {k: _num(row.get(col, "")) for k, col in columns.items()}
            for row in csv.DictReader(f)
            if row.get("Name") == "Aggregated"
        ]


def _num(v: str) -> float:
    return float(v) if v not in ("", "N/A") else float("nan")


def _summary(path: Path) -> dict[str, dict[str, float]]:
    out = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            out[f"{row['Type']} {row['Name']}".strip()] = {
                "requests": float(row["Request Count"]),
                "failures": float(row["Failure Count"]),
                "rps": float(row["Requests/s"]),
                "p50": _num(row["50%"]),
                "p95": _num(row["95%"]),
                "p99": _num(row["99%"]),
            }
    return out


def locust(
    ctx: Ctx,
    name: str,
    users: int,
    seconds: int,
    shape: str | None = None,
    watch: bool = False,
) -> dict[str, Any]:
    """Locust distributed: one master and ``locust_workers`` workers (its own --master /
    --worker), so that Locust's CPU is not the limit; returns the stats and which side ran
    out of CPU."""
    p = ctx.profile
    srv = ctx.server
    out = ctx.work / f"locust-{name}"
    port = devstack.free_port()
    sale = create_sale(srv.url, ctx.secret, units=(1 << 24) - 1, limit=3)
    env = {**os.environ, **srv.env, "PYTHONPATH": str(ROOT), "SALE_ID": str(sale)}
    env["PRODUCTS"] = str(p.products)
    env["CART"] = "1" if {"/cart/items", "/checkout"} <= set(shop_routes(srv.url)["paths"]) else "0"
    files = [HERE / "suite/burst_shape.py"] if shape else []
    if shape:
        env.update(BURST_STAGES=shape, BURST_SPAWN_RATE=str(p.spawn_rate))
    total_s = seconds + 30
    master_cmd = locust_cmd(
        srv.url,
        out,
        users,
        p.spawn_rate,
        seconds,
        files,
        [
            "--master",
            "--master-bind-host=127.0.0.1",
            f"--master-bind-port={port}",
            f"--expect-workers={p.locust_workers}",
            "--expect-workers-max-wait=30",
        ],
    )
    worker_cmd = [
        *master_cmd[:5],
        "--worker",
        "--master-host=127.0.0.1",
        f"--master-port={port}",
    ]
    res: dict[str, Any] = {"users": users, "workers": p.locust_workers, "shape": shape}
    watcher = pipeline_watcher(
        srv.env["REDIS_URL"], srv.env["KAFKA_BOOTSTRAP"], "orders", ORDERS_TOPIC
    )
    with contextlib.ExitStack() as stack:
        if watch:
            stack.enter_context(watcher)
        stack.enter_context(Phase(res, ctx.sampler))
        logf = stack.enter_context((ctx.work / f"locust-{name}.log").open("wb"))
        master = subprocess.Popen(master_cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
        workers = [
            subprocess.Popen(worker_cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
            for _ in range(p.locust_workers)
        ]
        try:
            res["exit"] = master.wait(timeout=total_s + 30)
        except subprocess.TimeoutExpired:
            master.kill()
            res["exit"] = "killed at the deadline"
        # the master tells its workers to quit, but a worker can be left waiting for a
        # master that has gone: never wait long for them
        for w in workers:
            try:
                w.wait(timeout=3)
            except subprocess.TimeoutExpired:
                w.terminate()
                try:
                    w.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    w.kill()
                    w.wait()
    hist = Path(f"{out}_stats_history.csv")
    res["history"] = _history(hist) if hist.exists() else []
    stats = Path(f"{out}_stats.csv")
    res["stats"] = _summary(stats) if stats.exists() else {}
    if watch:
        res["queues"] = _series(watcher)
    cpu = res.get("resources", {})
    generators = ("Locust workers", "Locust master", "wrk", "vegeta")
    workers_cpu = cpu.get("Locust workers", {}).get("cpu_cores", 0.0)
    gen = sum(cpu.get(k, {}).get("cpu_cores", 0.0) for k in generators)
    server = sum(v["cpu_cores"] for k, v in cpu.items() if k not in generators)
    # a Locust worker is one Python process: one core is all it can use
    res["limit"] = (
        "Locust CPU (its workers near one full core each)"
        if workers_cpu / max(1, p.locust_workers) > 0.85
        else "the server (the two cores)"
        if gen + server > 0.85 * (os.cpu_count() or 2)
        else "neither saturated: the users' think time bounded the offered load"
    )
    res["cpu_cores"] = {"locust": gen, "server": server}
    return res


def pt05(ctx: Ctx) -> dict[str, Any]:
    stages = ctx.profile.burst
    spec = ",".join(f"{u}:{s}" for u, s in stages)
    r = locust(ctx, "burst", stages[0][0], sum(s for _, s in stages), shape=spec, watch=True)
    r["stages"] = [list(s) for s in stages]
    return r
