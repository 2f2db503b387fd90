"""``scripts/bench suite [--smoke | --quick] [--duration S] [--users N] [--workers N]``

One throwaway stack (scripts/serve.py as shipped: Redis, PostgreSQL, Kafka, stripe-mock,
the edge and every service, loopback only), then, each phase bounded by the profile:

  ceiling  bare Granian RSGI endpoint at each PT-01 concurrency
  PT-02    purchase: synchronous PostgreSQL write in the request (bench-only app) vs the
           shipped Redis Lua -> outbox -> relay -> Kafka -> orders path
  PT-01    GET /products, GET /products/{id}, GET /users/me/orders at 10..500 connections
  PT-03    edge workers 1, 2, 4 (, 8); orders projectors 1, 2, 4 in one consumer group
  PT-04    1, 3, 6, 12 partitions through two orders projectors
  mix      the shopper mix under Locust, master + workers
  PT-05    burst 50 -> 1,000 -> 50 users (Locust load shape)

The report (README.md, results.json, eight PNG plots) goes to docs/performance/<run>/
(--smoke: a temporary directory unless --out). docs/performance/README.md explains it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtest.storm import ROOT, Server
from loadtest.suite import phases, report
from loadtest.suite.profiles import FULL, PROFILES, Profile
from loadtest.suite.sampler import Sampler

ALL = ("ceiling", "catalog", "pt02", "pt01", "pt03", "pt04", "mix", "pt05")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="scripts/bench suite",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_true", help="every test in about 10 minutes")
    which.add_argument("--smoke", action="store_true", help="1-2 s per phase: the pipeline only")
    ap.add_argument("--duration", type=int, help="seconds per closed-loop measurement")
    ap.add_argument("--users", type=int, help="shopper-mix users (Locust)")
    ap.add_argument("--workers", type=int, default=2, help="edge workers (default 2)")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--out", type=Path, help="report directory")
    ap.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="passed on to scripts/serve.py (repeat), e.g. --server-arg=--crash-limit=1000",
    )
    return ap.parse_args(argv)


def profile_of(args: argparse.Namespace) -> Profile:
    p = PROFILES["quick"] if args.quick else PROFILES["smoke"] if args.smoke else FULL
    if args.duration:
        p = dataclasses.replace(p, seconds=args.duration)
    if args.users:
        p = dataclasses.replace(p, users=args.users)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    p = profile_of(args)
    only = set(args.only.split(",")) if args.only else set(ALL)
    started = time.monotonic()
    stamp = time.strftime("%Y%m%d-%H%M")
    run = f"{stamp}-{p.name}"
    out = args.out or (
        Path(tempfile.gettempdir()) / f"nexuscart-suite-{run}"
        if p.name == "smoke"
        else ROOT / "docs" / "performance" / run
    )
    res: dict[str, Any] = {
        "run": run,
        "profile": p.name,
        "profile_settings": dataclasses.asdict(p),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["scripts/bench", "suite", *(argv or sys.argv[1:])]),
        "machine": report.machine(),
        "workers": args.workers,
        "notes": [],
    }
    work = Path(tempfile.mkdtemp(prefix="nexuscart-suite-"))
    sampler = Sampler().start()
    server: Server | None = None

    def phase(name: str, fn: Callable[[], Any], part: str = "") -> Any:
        """``fn()``, unless ``name`` is not selected or the budget is spent; a failure is
        noted and the run goes on. ``part``: which half of a two-part test this is."""
        label = f"{name} {part}".strip()
        if name not in only:
            return None
        if p.budget_s is not None and time.monotonic() - started > p.budget_s - 60:
            res["notes"].append(f"{label} skipped: the {p.name} profile's time budget ran out")
            return None
        t = time.monotonic()
        phases.say(f"{label} ...")
        try:
            return fn()
        except Exception as exc:  # one phase failing must not lose the others' figures
            traceback.print_exc()
            res["notes"].append(f"{label} failed: {type(exc).__name__}: {exc}")
            return None
        finally:
            res.setdefault("phase_seconds", {})[label] = round(time.monotonic() - t, 1)

    try:
        server = Server(args.workers, work, args.server_arg)
        res["stack_start_s"] = round(time.monotonic() - started, 1)
        phases.say(f"server ready at {server.url} in {res['stack_start_s']} s")
        ctx = phases.Ctx(p, server, work, sampler, args.workers)
        routes = phases.shop_routes(server.url)
        res["routes"] = routes["cart_checkout_paths"]
        if not {"/cart/items", "/checkout"} <= set(routes["paths"]):
            res["notes"].append(
                "cart and checkout routes are not in this build's OpenAPI: the shopper mix "
                "runs browse >> flash sale >> orders only"
            )
        res["ceiling"] = phase("ceiling", lambda: phases.ceiling(ctx))
        pages = phase("catalog", lambda: phases.load_catalog(ctx)) or work / "no-pages.txt"
        res["pt02"] = {
            "async": phase("pt02", lambda: phases.pt02_async(ctx), "async"),
            "sync": phase("pt02", lambda: phases.pt02_sync(ctx), "sync"),
        }
        async_res = res["pt02"]["async"] or {"holds": p.buyers}
        tokens = phases.order_tokens(ctx, async_res)
        res["pt01"] = phase("pt01", lambda: phases.pt01(ctx, pages, tokens))
        res["pt03"] = {
            "edge": phase("pt03", lambda: phases.pt03_edge(ctx, pages), "edge workers"),
            "instances": phase("pt03", lambda: phases.pt03_instances(ctx), "orders instances"),
        }
        res["pt04"] = phase("pt04", lambda: phases.pt04(ctx))
        res["mix"] = phase("mix", lambda: phases.locust(ctx, "mix", p.users, p.mix_seconds))
        res["pt05"] = phase("pt05", lambda: phases.pt05(ctx))
    finally:
        sampler.stop()
        if server is not None:
            server.stop()
        failed = any("failed" in n for n in res["notes"])
        if failed and (work / "server.log").exists():  # kept for the failure's why
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy(work / "server.log", out / "server.log")
        shutil.rmtree(work, ignore_errors=True)
    res["total_s"] = round(time.monotonic() - started, 1)
    files = report.write(res, out)
    print(report.markdown(res))
    phases.say(f"report: {files[0]} ({res['total_s']} s in all)")
    return 1 if failed else 0
