"""Runs loadtest/locustfile.py headless against a full local stack, bounded in time.

Usage: scripts/bench locust [--users 100] [--spawn-rate 50] [--seconds 30] [--workers 2]
Writes loadtest/reports/locust-<time>.html and _stats.csv, prints the summary.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from devtools import devstack
from loadtest.storm import EDGE_ENV, create_sale, migrate
from nexuscart import config

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--spawn-rate", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    stack = devstack.start_stack(log=lambda m: print(m, file=sys.stderr))
    os.environ.update({**config.dev_defaults(), **stack.env})
    children: list[subprocess.Popen[bytes]] = []
    edge = None
    try:
        migrate(stack.env["PG_DSN"])
        edge = devstack.GranianServer("edge.app:app", EDGE_ENV, workers=args.workers, cwd=ROOT)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for svc in ("outbox_relay", "orders", "inventory"):
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", f"services.{svc}"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        sale = create_sale(edge.url, units=1_000_000, limit=3)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = ROOT / "loadtest" / "reports" / f"locust-{stamp}"
        out.parent.mkdir(exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "loadtest/locustfile.py"),
            "--headless",
            "-u",
            str(args.users),
            "-r",
            str(args.spawn_rate),
            "-t",
            f"{args.seconds}s",
            "--host",
            edge.url,
            "--html",
            f"{out}.html",
            "--csv",
            str(out),
            "--only-summary",
            "--stop-timeout",
            "5",
        ]
        print(" ".join(cmd), file=sys.stderr)
        return subprocess.run(
            cmd, env={**env, "SALE_ID": str(sale)}, timeout=args.seconds + 120
        ).returncode
    finally:
        for c in children:
            c.terminate()
        for c in children:
            c.wait(10)
        if edge is not None:
            edge.stop()
        stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
