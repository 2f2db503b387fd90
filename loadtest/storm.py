"""Flash-sale load runs against the configuration ``scripts/server`` ships, on loopback, with
the bare-Granian ceiling measured in the same run.

The server is ``scripts/serve.py`` itself (its own Redis, PostgreSQL and Kafka, the edge with
``--workers``, and every service: relay, orders, inventory), with one setting added: its
load balancer is loopback (``TRUSTED_PROXIES=127.0.0.1/32``) and every buyer comes from its
own address in ``X-Forwarded-For``, so the per-IP buckets apply per buyer as in production.

Phases (each bounded in time, 127.0.0.1 only):
  1. ceiling     wrk on a bare Granian RSGI JSON endpoint (loadtest/bare_app.py)
  2. view        wrk on GET /flash-sales/{id}
  3. stock-rich  every purchase admitted: successful holds/s
  4. sell-out    --runs times: N units, distinct buyers (one token and one address each),
                 --seconds each: requests/s, p99, exactly N holds and N orders in PostgreSQL
  5. after       the sold-out sale keeps being hit by fresh buyers: every Redis command
                 (INFO commandstats) per rejected request
  6. open loop   vegeta at a fixed offered rate (--rate) on a fresh sell-out sale, and on
                 the bare endpoint: the latency tail without coordinated omission

Usage: scripts/bench storm [--workers 2] [--seconds 30] [--runs 5] [--units 10000] [--rate 10000]
Writes loadtest/reports/storm-<time>.md and .json, and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Final

import asyncpg
import redis
import redis.asyncio as aioredis

from devtools import devstack
from devtools.proc import Process
from nexuscart import auth
from nexuscart.adapters.flash_sales import FlashSaleStore

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "loadtest"
LB_ENV = {"TRUSTED_PROXIES": "127.0.0.1/32"}  # the load balancer in front of the edge


def wrk(
    url: str, script: Path, seconds: int, connections: int, env: dict[str, str], threads: int = 1
) -> dict[str, Any]:
    exe = shutil.which("wrk")
    if exe is None:
        sys.exit("wrk not found: run scripts/bootstrap")
    out = subprocess.run(
        [
            exe,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "WRK_THREADS": str(threads)},
        timeout=seconds + 60,
        check=True,
    ).stdout
    rps = float(_found(r"Requests/sec:\s+([\d.]+)", out))
    total = int(_found(r"(\d+) requests in", out))
    non2xx_m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)", out, re.M))
    return {
        "rps": rps,
        "total": total,
        "non2xx": int(non2xx_m.group(1)) if non2xx_m else 0,
        "p50": lat.get("50"),
        "p99": lat.get("99"),
        "raw": out,
    }


def _found(pattern: str, wrk_output: str) -> str:
    m = re.search(pattern, wrk_output)
    if m is None:
        sys.exit(f"unexpected wrk output (no {pattern!r}):\n{wrk_output}")
    return m.group(1)


def vegeta(targets: Path, rate: int, seconds: int) -> dict[str, Any]:
    """An open-loop run: requests are sent at ``rate`` per second whatever the answers'
    latency (new connections as needed), so a slow answer cannot slow the offered load."""
    exe = shutil.which("vegeta") or str(Path.home() / "go/bin/vegeta")
    if not Path(exe).exists():
        sys.exit("vegeta not found: scripts/bench installs it (go install)")
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    attack = subprocess.Popen(
        [
            exe,
            "attack",
            "-format=json",
            f"-targets={targets}",
            f"-rate={rate}/s",
            f"-duration={seconds}s",
            "-timeout=10s",
            # bounded: past them vegeta falls behind the rate, and says so (achieved/s)
            "-max-workers=1024",
            "-max-connections=1024",
        ],
        stdout=subprocess.PIPE,
    )
    report = subprocess.run(
        [exe, "report", "-type=json"],
        stdin=attack.stdout,
        capture_output=True,
        check=True,
        timeout=seconds + 60,
    )
    attack.wait(timeout=30)
    after, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic() - t0
    r = json.loads(report.stdout)
    lat = r["latencies"]
    return {
        "rate": rate,
        "seconds": seconds,
        "requests": r["requests"],
        "sent_per_s": r["rate"],  # vegeta's "throughput" counts only 2xx answers
        "throughput": r["throughput"],
        "status_codes": r["status_codes"],
        "p50_ms": lat["50th"] / 1e6,
        "p99_ms": lat["99th"] / 1e6,
        "max_ms": lat["max"] / 1e6,
        # the generator shares the server's cores: what it took of them
        "generator_cores": round(
            (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / wall, 2
        ),
    }


def http(
    method: str, url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    req = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        out: dict[str, Any] = json.loads(resp.read())
        return out


def workdir(prefix: str) -> Path:
    """A scratch directory for one bench run (its stack, targets, logs), removed with
    everything in it when the process exits (a run left up to 1.5 GB behind otherwise)."""
    scratch = devstack.scratch_dir(prefix)
    atexit.register(scratch.cleanup)
    return Path(scratch.name)


class Server:
    """``scripts/serve.py`` as shipped, on a free port, with a throwaway stack."""

    def __init__(self, workers: int, work: Path, extra_args: list[str] | None = None):
        self.port = devstack.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / "server.log"
        stackdir = work / "stack"
        # a clean environment for the stack: the server starts its own parts
        env = {k: v for k, v in os.environ.items() if k not in _STACK_VARS}
        self.process = Process(
            "server",
            [
                sys.executable,
                str(ROOT / "scripts/serve.py"),
                "--no-bootstrap",
                "--no-seed",
                "--workdir",
                str(stackdir),
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                *(extra_args or []),
            ],
            cwd=ROOT,
            env={**env, **LB_ENV},
            log=self.log,
        ).start()
        deadline = time.monotonic() + 180
        while not self._ready():
            if not self.process.running or time.monotonic() > deadline:
                self.process.stop()
                sys.exit(f"scripts/serve.py did not become ready; log:\n{self.log.read_text()}")
            time.sleep(0.5)
        self.env = _read_env_file(stackdir / "server.env")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    @property
    def pid(self) -> int:
        assert self.process.proc is not None
        return self.process.proc.pid

    def stop(self) -> None:
        self.process.stop(timeout=30)


_STACK_VARS = ("REDIS_URL", "PG_DSN", "KAFKA_BOOTSTRAP", "STRIPE_API_BASE")


def _read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        out[name] = shlex.split(value)[0] if value else ""
    return out


ADMIN_USER_ID = 1  # the load generator acts as an admin: an access token it mints itself


def admin_token(secret: str) -> str:
    """An admin's access token, signed with JWT_SECRET (there is no shared admin password)."""
    return auth.issue(secret, ADMIN_USER_ID, ttl_s=600, roles=("admin",))


def create_sale(base: str, secret: str, units: int, limit: int) -> int:
    """Create a sale as an admin (``secret``: the server's JWT_SECRET)."""
    now = int(time.time() * 1000)
    sale = http(
        "POST",
        f"{base}/admin/flash-sales",
        {
            "sku": "BENCH-1",
            "units": units,
            "price_cents": 4999,
            "per_user_limit": limit,
            "starts_at_ms": now - 1000,
            "ends_at_ms": now + 3_600_000,
        },
        {
            "authorization": f"Bearer {admin_token(secret)}",
            "idempotency-key": f"bench-{time.time_ns()}",
        },
    )
    return int(sale["sale_id"])


def write_tokens(path: Path, secret: str, first_user: int, n: int) -> None:
    now = time.time()
    with path.open("w") as f:
        for u in range(first_user, first_user + n):
            f.write(auth.issue(secret, u, ttl_s=7200, now=now) + "\n")


def write_targets(
    path: Path, url: str, secret: str, first_user: int, n: int, purchase: bool
) -> None:
    """vegeta JSON targets: one buyer (token, address, idempotency key) per request."""
    body = base64.b64encode(b'{"quantity": 1}').decode()
    now = time.time()
    with path.open("w") as f:
        for i in range(n):
            if not purchase:
                f.write(vegeta_target("GET", url))
                continue
            header = {
                "Authorization": [f"Bearer {auth.issue(secret, first_user + i, 7200, now=now)}"],
                "Idempotency-Key": [f"open-{i}"],
                "Content-Type": ["application/json"],
                "X-Forwarded-For": [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"],
            }
            f.write(vegeta_target("POST", url, header, body))


def vegeta_target(
    method: str, url: str, header: dict[str, list[str]] | None = None, body_b64: str = ""
) -> str:
    """One line of vegeta's JSON targets (the body base64-encoded, as vegeta reads it)."""
    target: dict[str, Any] = {"method": method, "url": url}
    if header:
        target["header"] = header
    if body_b64:
        target["body"] = body_b64
    return json.dumps(target) + "\n"


# the server's processes, by the part of the platform they are (first match of the command line)
_PARTS: Final = (
    ("granian", "edge (Granian workers)"),
    ("services.orders", "orders service"),
    ("services.outbox_relay", "outbox relay"),
    ("services.inventory", "inventory service"),
    ("services.payments", "payments service"),
    ("services.recommendations", "recommendations service"),
    ("stripe-mock", "stripe-mock (Stripe's stand-in)"),
    ("redis-server", "Redis"),
    ("java", "Kafka"),
    ("postgres", "PostgreSQL"),
)


def part_of(cmdline: str) -> str:
    """The part of the platform a process is, by its command line."""
    return next((name for key, name in _PARTS if key in cmdline), "other")


def cpu_by_part(root_pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by every process under ``root_pid``, summed
    per part of the platform: what one admitted purchase costs each part, whatever else the
    machine is doing (unlike throughput, which any other load on the two cores changes)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        part = part_of(cmd)
        times = stats.get(pid)
        if times is not None:  # fields 14 and 15 of stat: utime, stime
            out[part] = out.get(part, 0.0) + (int(times[11]) + int(times[12])) / tick
    return out


def redis_commands(r: redis.Redis) -> int:
    """Every command Redis executed so far, those run inside scripts included."""
    stats: dict[str, Any] = r.info("commandstats")
    return sum(int(v.get("calls", 0)) for v in stats.values())


async def held_units(url: str, sale_id: int) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        stock = await FlashSaleStore(client).stock(sale_id)
    finally:
        await client.aclose()
    return 0 if stock is None else stock[1]


async def orders_of_sale(dsn: str, sale_id: int, want: int, wait_s: float) -> int:
    """Orders the orders service wrote for the sale, once it reaches ``want`` (bounded)."""
    sql = "SELECT count(*) FROM orders WHERE sale_id = $1"
    return await count_until(dsn, sql, sale_id, want, wait_s)


async def payments_of_sale(dsn: str, sale_id: int, want: int, wait_s: float) -> int:
    """The sale's orders the payments service asked Stripe to charge, once ``want`` (bounded)."""
    sql = "SELECT count(*) FROM payments WHERE sale_id = $1 AND requested"
    return await count_until(dsn, sql, sale_id, want, wait_s)


async def count_until(dsn: str, sql: str, arg: int, want: int, wait_s: float) -> int:
    """``sql``'s count (of ``arg``), once it reaches ``want`` or ``wait_s`` has passed."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            n: int = await conn.fetchval(sql, arg)
            if n >= want or time.monotonic() > deadline:
                return n
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--runs", type=int, default=5, help="sell-out runs, one after another")
    ap.add_argument("--ceiling-seconds", type=int, default=10)
    ap.add_argument("--units", type=int, default=10_000)
    ap.add_argument("--buyers", type=int, default=1_000_000)
    ap.add_argument("--connections", type=int, default=256)
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--rate", type=int, default=10_000, help="open-loop offered requests/s")
    ap.add_argument("--open-seconds", type=int, default=15)
    ap.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="passed on to scripts/serve.py (repeat), e.g. --server-arg=--background-nice=0",
    )
    args = ap.parse_args()

    work = workdir("nexuscart-bench-")
    bare: devstack.GranianServer | None = None
    server: Server | None = None
    try:
        results: dict[str, Any] = {
            "workers": args.workers,
            "connections": args.connections,
            "config": "scripts/serve.py as shipped (services on) + "
            + json.dumps(LB_ENV)
            + (f" + {' '.join(args.server_arg)}" if args.server_arg else ""),
        }
        server = srv = Server(args.workers, work, args.server_arg)
        print(f"server ready at {srv.url}", file=sys.stderr)
        secret = srv.env["JWT_SECRET"]
        bare = devstack.GranianServer(
            "loadtest.bare_app:app", {}, workers=args.workers, cwd=ROOT, ready_path="/"
        )
        results["ceiling"] = wrk(
            f"{bare.url}/",
            HERE / "wrk/get.lua",
            args.ceiling_seconds,
            args.connections,
            {"PATH_TO_GET": "/"},
            args.wrk_threads,
        )
        print(f"ceiling: {results['ceiling']['rps']:.0f} req/s", file=sys.stderr)

        r = redis.Redis.from_url(server.env["REDIS_URL"])
        tokens = work / "tokens.txt"
        rich = create_sale(server.url, secret, units=(1 << 24) - 1, limit=100)
        results["view"] = wrk(
            server.url,
            HERE / "wrk/get.lua",
            args.ceiling_seconds,
            args.connections,
            {"PATH_TO_GET": f"/flash-sales/{rich}"},
            args.wrk_threads,
        )
        print(f"view: {results['view']['rps']:.0f} req/s", file=sys.stderr)

        def purchases(sale_id: int, seconds: int) -> dict[str, Any]:
            env = {"TOKENS": str(tokens), "SALE": str(sale_id), "XFF": "1"}
            script = HERE / "wrk/purchase.lua"
            return wrk(srv.url, script, seconds, args.connections, env, args.wrk_threads)

        def held(sale_id: int) -> int:
            return asyncio.run(held_units(srv.env["REDIS_URL"], sale_id))

        write_tokens(tokens, secret, 1, args.buyers)
        rich_secs = min(args.seconds, 15)
        t0 = time.monotonic()
        cpu0 = cpu_by_part(srv.pid)
        results["stock_rich"] = purchases(rich, rich_secs)
        held_rich = held(rich)
        # the services write every hold's order: wait for them (bounded) so that the next
        # phase starts on a drained pipeline, and report how fast they kept up
        orders_rich = asyncio.run(orders_of_sale(srv.env["PG_DSN"], rich, held_rich, 300))
        results["stock_rich"]["orders"] = orders_rich
        results["stock_rich"]["orders_per_s"] = orders_rich / (time.monotonic() - t0)
        # and every order's payment intent (Stripe is stripe-mock here, on the same cores)
        paid_rich = asyncio.run(payments_of_sale(srv.env["PG_DSN"], rich, held_rich, 300))
        results["stock_rich"]["payments"] = paid_rich
        results["stock_rich"]["payments_per_s"] = paid_rich / (time.monotonic() - t0)
        cpu1 = cpu_by_part(srv.pid)
        results["stock_rich"]["cpu_us_per_hold"] = {
            part: 1e6 * (cpu1[part] - cpu0.get(part, 0.0)) / max(held_rich, 1) for part in cpu1
        }
        results["stock_rich"]["holds"] = held_rich
        results["stock_rich"]["holds_per_s"] = held_rich / rich_secs
        print(f"stock-rich: {held_rich / rich_secs:.0f} holds/s", file=sys.stderr)

        runs = []
        sale = 0
        for n in range(args.runs):
            # fresh buyers for every run: a token range of its own
            write_tokens(tokens, secret, 10_000_000 * (n + 1), args.buyers)
            sale = create_sale(srv.url, secret, units=args.units, limit=1)
            cpu0 = cpu_by_part(srv.pid)
            storm = purchases(sale, args.seconds)
            # what each part took of the two cores while wrk ran: the pipeline catching up on
            # the run's holds competes with the edge for them
            cpu1 = cpu_by_part(srv.pid)
            storm["cpu_s"] = {part: cpu1[part] - cpu0.get(part, 0.0) for part in cpu1}
            h = held(sale)
            orders = asyncio.run(orders_of_sale(server.env["PG_DSN"], sale, h, 60))
            # the next run starts on a drained pipeline: every order's payment intent asked for
            paid = asyncio.run(payments_of_sale(server.env["PG_DSN"], sale, h, 180))
            storm.update({"units": args.units, "holds": h, "orders": orders, "payments": paid})
            runs.append(storm)
            print(
                f"sell-out run {n + 1}: {storm['rps']:.0f} req/s p99 {storm['p99']}, "
                f"holds {h}, orders {orders}",
                file=sys.stderr,
            )
        results["sell_out"] = runs
        results["sell_out_seconds"] = args.seconds
        results["cores"] = os.cpu_count()
        # After the sell-out, fresh buyers keep coming: count every Redis command (INFO
        # commandstats, background polling and services included) per rejected request.
        write_tokens(tokens, secret, 90_000_000, args.buyers // 2)
        before = redis_commands(r)
        after_sell_out = purchases(sale, args.ceiling_seconds)
        commands = redis_commands(r) - before
        after_sell_out["redis_commands"] = commands
        after_sell_out["redis_commands_per_rejection"] = commands / max(after_sell_out["total"], 1)
        results["after_sell_out"] = after_sell_out

        n_open = args.rate * args.open_seconds
        targets = work / "targets.json"
        open_sale = create_sale(srv.url, secret, units=args.units, limit=1)
        url = f"{server.url}/flash-sales/{open_sale}/purchase"
        write_targets(targets, url, secret, 95_000_000, n_open, purchase=True)
        results["open_loop"] = vegeta(targets, args.rate, args.open_seconds)
        results["open_loop"]["holds"] = held(open_sale)
        write_targets(targets, f"{bare.url}/", secret, 0, n_open, purchase=False)
        results["open_loop_ceiling"] = vegeta(targets, args.rate, args.open_seconds)
        report(results)
        ok = all(run["holds"] == args.units == run["orders"] for run in runs)
        return 0 if ok and results["open_loop"]["holds"] <= args.units else 1
    finally:
        if bare is not None:
            bare.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def report(res: dict[str, Any]) -> None:
    ceiling = res["ceiling"]["rps"]
    rows: list[tuple[str, dict[str, Any], str]] = [
        ("bare Granian RSGI JSON (ceiling)", res["ceiling"], ""),
        ("GET /flash-sales/{id}", res["view"], ""),
        (
            "purchase, stock-rich (all admitted)",
            res["stock_rich"],
            f"{res['stock_rich']['holds_per_s']:.0f} holds/s; every order in PostgreSQL at "
            f"{res['stock_rich']['orders_per_s']:.0f} orders/s end to end, its payment intent "
            f"at {res['stock_rich']['payments_per_s']:.0f}/s",
        ),
    ]
    for n, run in enumerate(res["sell_out"], 1):
        rows.append(
            (
                f"purchase, sell-out storm, run {n}",
                run,
                f"holds {run['holds']}/{run['units']}, orders {run['orders']}, "
                f"payment intents {run['payments']}",
            )
        )
    after = res["after_sell_out"]
    rows.append(
        (
            "purchase, after sell-out (fresh buyers)",
            after,
            f"{after['redis_commands']} Redis commands in {after['total']} requests "
            f"({after['redis_commands_per_rejection']:.5f} per rejection)",
        )
    )
    lines = [
        f"Workers: {res['workers']}, connections: {res['connections']}, wrk on the same 2 cores",
        f"Configuration: {res['config']}",
        "",
        "Closed loop (wrk):",
        "",
        "| scenario | requests/s | vs ceiling | p50 | p99 | notes |",
        "|---|---|---|---|---|---|",
    ]
    for name, r, note in rows:
        lines.append(
            f"| {name} | {r['rps']:,.0f} | {r['rps'] / ceiling:.2f} | {r['p50']} | "
            f"{r['p99']} | {note} |"
        )
    cpu = res["stock_rich"]["cpu_us_per_hold"]
    lines += [
        "",
        "CPU per admitted purchase, stock-rich phase until its orders were in PostgreSQL and "
        "their payment intents asked for (user + system time of each part's processes / holds):",
        "",
        "| part | CPU µs per hold |",
        "|---|---|",
        *(f"| {part} | {us:,.0f} |" for part, us in sorted(cpu.items(), key=lambda kv: -kv[1])),
        f"| total | {sum(cpu.values()):,.0f} |",
    ]
    runs = res["sell_out"]
    parts = sorted(runs[0].get("cpu_s", {}), key=lambda p: -sum(r["cpu_s"][p] for r in runs))
    if parts:
        lines += [
            "",
            "CPU seconds each part used while wrk ran a sell-out storm (user + system; the "
            "load generator's own is not in it; "
            f"{res['cores'] * res['sell_out_seconds']} core-seconds in a run):",
            "",
            "| part | " + " | ".join(f"run {n}" for n in range(1, len(runs) + 1)) + " |",
            "|---|" + "---|" * len(runs),
            *(
                f"| {part} | " + " | ".join(f"{r['cpu_s'][part]:.1f}" for r in runs) + " |"
                for part in parts
            ),
        ]
    lines += [
        "",
        "Open loop (vegeta, fixed offered rate):",
        "",
        "| target | offered/s | sent/s | p50 ms | p99 ms | max ms | status codes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, o in (
        ("purchase, sell-out sale", res["open_loop"]),
        ("bare Granian (ceiling)", res["open_loop_ceiling"]),
    ):
        lines.append(
            f"| {name} | {o['rate']:,} | {o['sent_per_s']:,.0f} | {o['p50_ms']:.1f} | "
            f"{o['p99_ms']:.1f} | {o['max_ms']:.1f} | {o['status_codes']} |"
        )
    text = "\n".join(lines)
    print(text)
    save_report("storm", text, res)


def phase_table(results: dict[str, Any], phases: list[tuple[str, str]]) -> list[str]:
    """Markdown rows of wrk phases: (phase, the bare-Granian phase of the same run it is
    divided by)."""
    out = [
        "| phase | conns | req/s | ratio to bare | p50 | p99 | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, ceiling in phases:
        r, c = results[name], results[ceiling]["rps"]
        conns = r.get("connections", results.get("connections", ""))
        out.append(
            f"| {name} | {conns} | {r['rps']:.0f} | {r['rps'] / c:.2f} | {r['p50']} "
            f"| {r['p99']} | {r['non2xx']} |"
        )
    return out


def save_report(name: str, markdown: str, results: dict[str, Any]) -> str:
    """Write loadtest/reports/<name>-<time>.md and .json (wrk's raw output left out); returns
    the time stamp. Every load script reports through this."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = HERE / "reports"
    out.mkdir(exist_ok=True)
    (out / f"{name}-{stamp}.md").write_text(markdown.rstrip("\n") + "\n")
    (out / f"{name}-{stamp}.json").write_text(json.dumps(_without_raw(results), indent=2) + "\n")
    return stamp


def _without_raw(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _without_raw(x) for k, x in v.items() if k != "raw"}
    if isinstance(v, list):
        return [_without_raw(x) for x in v]
    return v


if __name__ == "__main__":
    raise SystemExit(main())
