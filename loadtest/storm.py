"""Flash-sale load runs on loopback, with the bare-Granian ceiling measured in the same run.

Phases (each bounded in time, 127.0.0.1 only):
  1. ceiling      wrk on a bare Granian RSGI JSON endpoint (loadtest/bare_app.py)
  2. view         wrk on GET /flash-sales/{id} (served from each worker's 100 ms view cache)
  3. stock-rich   every request admitted: successful holds/s
  4. sell-out     N units, distinct buyers (one token each, none repeats while
                  --buyers >= requests sent): requests/s, p99, exactly N holds
  5. after        the sold-out sale keeps being hit by fresh buyers: every Redis command
                  (INFO commandstats) per rejected request

Usage: scripts/bench storm [--workers 2] [--seconds 30] [--units 10000] [--buyers 1000000]
Writes loadtest/reports/storm-<time>.md and .json, and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis

from devtools import devstack
from nexuscart import auth, config

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "loadtest"
ADMIN = config.dev_defaults()["ADMIN_TOKEN"]
# One client IP (loopback) sends everything: the per-IP bucket is opened wide.
EDGE_ENV = {
    "GATE_IP_RATE": "100000000",
    "GATE_IP_BURST": "100000000",
    "GATE_MAX_IN_FLIGHT": "4096",
    "REDIS_MAX_CONNECTIONS": "64",
}


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


def create_sale(base: str, units: int, limit: int) -> int:
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
        {"authorization": f"Bearer {ADMIN}", "idempotency-key": f"bench-{now}-{units}"},
    )
    return int(sale["sale_id"])


def write_tokens(path: Path, first_user: int, n: int) -> None:
    secret = config.dev_defaults()["JWT_SECRET"]
    now = time.time()
    with path.open("w") as f:
        for u in range(first_user, first_user + n):
            f.write(auth.issue(secret, u, ttl_s=7200, now=now) + "\n")


def migrate(dsn: str) -> None:
    from nexuscart.adapters.postgres import migrate_dsn

    asyncio.run(migrate_dsn(dsn))


def redis_commands(r: redis.Redis) -> int:
    """Every command Redis executed so far, those run inside scripts included."""
    stats: dict[str, Any] = r.info("commandstats")
    return sum(int(v.get("calls", 0)) for v in stats.values())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--ceiling-seconds", type=int, default=10)
    ap.add_argument("--units", type=int, default=10_000)
    ap.add_argument("--buyers", type=int, default=1_000_000)
    ap.add_argument("--connections", type=int, default=256)
    ap.add_argument("--wrk-threads", type=int, default=1)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="nexuscart-bench-"))
    stack = devstack.start_stack(
        parts=("redis", "postgres", "kafka"), log=lambda m: print(m, file=sys.stderr)
    )
    os.environ.update({**config.dev_defaults(), **stack.env})
    servers: list[devstack.GranianServer] = []
    try:
        migrate(stack.env["PG_DSN"])
        results: dict[str, Any] = {"workers": args.workers, "connections": args.connections}
        bare = devstack.GranianServer(
            "loadtest.bare_app:app", {}, workers=args.workers, cwd=ROOT, ready_path="/"
        )
        servers.append(bare)
        results["ceiling"] = wrk(
            f"{bare.url}/",
            HERE / "wrk/get.lua",
            args.ceiling_seconds,
            args.connections,
            {"PATH_TO_GET": "/"},
            args.wrk_threads,
        )
        bare.stop()
        print(f"ceiling: {results['ceiling']['rps']:.0f} req/s", file=sys.stderr)

        edge = devstack.GranianServer("edge.app:app", EDGE_ENV, workers=args.workers, cwd=ROOT)
        servers.append(edge)
        r = redis.Redis.from_url(stack.env["REDIS_URL"])
        tokens = work / "tokens.txt"
        write_tokens(tokens, 1, args.buyers)

        rich = create_sale(edge.url, units=(1 << 24) - 1, limit=100)
        results["view"] = wrk(
            edge.url,
            HERE / "wrk/get.lua",
            args.ceiling_seconds,
            args.connections,
            {"PATH_TO_GET": f"/flash-sales/{rich}"},
            args.wrk_threads,
        )
        print(f"view: {results['view']['rps']:.0f} req/s", file=sys.stderr)

        def purchases(sale_id: int, seconds: int) -> dict[str, Any]:
            env = {"TOKENS": str(tokens), "SALE": str(sale_id)}
            script = HERE / "wrk/purchase.lua"
            return wrk(edge.url, script, seconds, args.connections, env, args.wrk_threads)

        rich_secs = min(args.seconds, 15)
        results["stock_rich"] = purchases(rich, rich_secs)
        held_rich = int(r.hget(f"{{fs:{rich}}}:stock", "held") or 0)
        results["stock_rich"]["holds"] = held_rich
        results["stock_rich"]["holds_per_s"] = held_rich / rich_secs
        print(f"stock-rich: {held_rich / rich_secs:.0f} holds/s", file=sys.stderr)

        # Sell-out storm on fresh buyers (a second token range).
        write_tokens(tokens, 10_000_000, args.buyers)
        sale = create_sale(edge.url, units=args.units, limit=1)
        storm = purchases(sale, args.seconds)
        stock = r.hmget(f"{{fs:{sale}}}:stock", ["available", "held", "sold"])
        held = int(stock[1] or 0)
        rejected = storm["total"] - held
        storm.update(
            {
                "units": args.units,
                "holds": held,
                "available_after": int(stock[0] or 0),
                "rejected": rejected,
                "oversold": held > args.units,
            }
        )
        results["sell_out"] = storm
        # After the sell-out, fresh buyers keep coming: count every Redis command (INFO
        # commandstats, background polling included) per rejected request.
        write_tokens(tokens, 20_000_000, args.buyers // 2)
        before = redis_commands(r)
        after_sell_out = purchases(sale, args.ceiling_seconds)
        commands = redis_commands(r) - before
        after_sell_out["redis_commands"] = commands
        after_sell_out["redis_commands_per_rejection"] = commands / max(after_sell_out["total"], 1)
        results["after_sell_out"] = after_sell_out
        report(results)
        return 0 if held == args.units else 1
    finally:
        for s in servers:
            s.stop()
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)


def report(res: dict[str, Any]) -> None:
    ceiling = res["ceiling"]["rps"]
    rows = [
        ("bare Granian RSGI JSON (ceiling)", res["ceiling"], ""),
        ("GET /flash-sales/{id}", res["view"], ""),
        (
            "purchase, stock-rich (all admitted)",
            res["stock_rich"],
            f"{res['stock_rich']['holds_per_s']:.0f} holds/s",
        ),
        (
            "purchase, sell-out storm",
            res["sell_out"],
            f"holds {res['sell_out']['holds']}/{res['sell_out']['units']}",
        ),
        (
            "purchase, after sell-out (fresh buyers)",
            res["after_sell_out"],
            f"{res['after_sell_out']['redis_commands']} Redis commands in "
            f"{res['after_sell_out']['total']} requests "
            f"({res['after_sell_out']['redis_commands_per_rejection']:.5f} per rejection)",
        ),
    ]
    lines = [
        f"Workers: {res['workers']}, connections: {res['connections']}, wrk on the same 2 cores",
        "",
        "| scenario | requests/s | vs ceiling | p50 | p99 | notes |",
        "|---|---|---|---|---|---|",
    ]
    for name, r, note in rows:
        lines.append(
            f"| {name} | {r['rps']:,.0f} | {r['rps'] / ceiling:.2f} | {r['p50']} | "
            f"{r['p99']} | {note} |"
        )
    text = "\n".join(lines)
    print(text)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = HERE / "reports"
    out.mkdir(exist_ok=True)
    (out / f"storm-{stamp}.md").write_text(text + "\n")
    (out / f"storm-{stamp}.json").write_text(
        json.dumps(
            {
                k: ({kk: vv for kk, vv in v.items() if kk != "raw"} if isinstance(v, dict) else v)
                for k, v in res.items()
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
