"""Runs loadtest/locustfile.py headless against scripts/serve.py as shipped, bounded in time.

Usage: scripts/bench locust [--users 100] [--spawn-rate 50] [--seconds 30] [--workers 2]
Writes loadtest/reports/locust-<time>.html and _stats.csv, prints the summary.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from loadtest.storm import Server, create_sale, workdir

ROOT = Path(__file__).resolve().parent.parent


def locust_cmd(
    host: str,
    out: Path,
    users: int,
    spawn_rate: int,
    seconds: int,
    files: Sequence[Path] = (),
    options: Sequence[str] = (),
) -> list[str]:
    """A headless, time-bounded Locust run of the shopper mix writing ``out``.html/_*.csv;
    ``files``: more locustfiles (a load shape, say), ``options``: more Locust options."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        ",".join(map(str, [ROOT / "loadtest/locustfile.py", *files])),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(spawn_rate),
        "-t",
        f"{seconds}s",
        "--host",
        host,
        "--html",
        f"{out}.html",
        "--csv",
        str(out),
        "--only-summary",
        "--stop-timeout",
        "5",
        *options,
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--spawn-rate", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    work = workdir("nexuscart-locust-")
    server = Server(args.workers, work)  # scripts/serve.py as shipped: edge and services
    try:
        env = {**os.environ, **server.env, "PYTHONPATH": str(ROOT)}
        sale = create_sale(server.url, server.env["JWT_SECRET"], units=1_000_000, limit=3)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = ROOT / "loadtest" / "reports" / f"locust-{stamp}"
        out.parent.mkdir(exist_ok=True)
        cmd = locust_cmd(server.url, out, args.users, args.spawn_rate, args.seconds)
        print(" ".join(cmd), file=sys.stderr)
        return subprocess.run(
            cmd, env={**env, "SALE_ID": str(sale)}, timeout=args.seconds + 120
        ).returncode
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
