"""A bench run leaves nothing behind: its scratch directory (the stack it started, with the
PostgreSQL data kept inside it, and the targets it wrote) goes when the process exits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_bench_workdir_and_its_postgres_data_are_removed_when_the_run_exits() -> None:
    script = (
        "import sys\n"
        "from devtools import devstack\n"
        "from loadtest.storm import workdir\n"
        "work = workdir('nexuscart-test-workdir-')\n"
        "stack = work / 'stack'\n"
        "stack.mkdir()\n"
        "(work / 'targets.jsonl').write_text('x')\n"
        "home = devstack.pg_home(stack)\n"
        "home.mkdir(parents=True, exist_ok=True)\n"
        "(home / 'PG_VERSION').write_text('15')\n"
        "print(work)\n"
        "print(home)\n"
        "sys.exit(3)\n"  # a failed run cleans up too
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3, done.stderr
    work, home = (Path(line) for line in done.stdout.split())
    assert home.is_relative_to(work)  # PostgreSQL's data inside, even for a root run
    assert not work.exists()
