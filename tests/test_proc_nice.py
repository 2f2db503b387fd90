"""Background processes of the local server run at a lower CPU priority than the edge."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools import devstack
from devtools.proc import Process


def test_a_process_started_with_nice_runs_at_that_much_lower_priority(tmp_path: Path) -> None:
    log = tmp_path / "nice.log"
    # the child prints its niceness, and that of a helper it forks (inherited)
    code = "import os, subprocess, sys; print(os.nice(0)); sys.stdout.flush(); " + (
        "subprocess.run([sys.executable, '-c', 'import os; print(os.nice(0))'])"
    )
    p = Process("nice", [sys.executable, "-c", code], log=log, nice=7).start()
    deadline = time.monotonic() + 30
    while p.running and time.monotonic() < deadline:
        time.sleep(0.05)
    mine = os.nice(0)
    assert log.read_text().split() == [str(mine + 7), str(mine + 7)]


def test_a_process_stays_in_its_supervisors_session_so_nice_takes_effect(
    tmp_path: Path,
) -> None:
    # Autogroup scheduling (the kernel's default in many distributions) shares the CPU equally
    # between sessions: a niced child in a session of its own took as much CPU as the edge
    # (storm runs of 5-6k requests/s while the services caught up, 18k once they had). The
    # session is what decides, so check that rather than /proc/self/autogroup, which reads
    # empty in some sandboxes.
    log = tmp_path / "session.log"
    code = "import os; print(os.getsid(0), os.getpgid(0), os.getpid())"
    p = Process("session", [sys.executable, "-c", code], log=log, nice=5).start()
    deadline = time.monotonic() + 30
    while p.running and time.monotonic() < deadline:
        time.sleep(0.05)
    sid, pgid, pid = (int(x) for x in log.read_text().split())
    assert sid == os.getsid(0)
    # still a process group of its own, so stop() reaches every process it starts
    assert pgid == pid


def test_a_process_started_idle_runs_under_sched_idle_and_so_do_its_helpers(
    tmp_path: Path,
) -> None:
    # one host: the services catch up on events with CPU time the edge leaves (ADR 0018)
    log = tmp_path / "idle.log"
    code = "import os, subprocess, sys; print(os.sched_getscheduler(0)); sys.stdout.flush(); " + (
        "subprocess.run([sys.executable, '-c', 'import os; print(os.sched_getscheduler(0))'])"
    )
    p = Process("idle", [sys.executable, "-c", code], log=log, idle=True).start()
    deadline = time.monotonic() + 30
    while p.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.read_text().split() == [str(os.SCHED_IDLE)] * 2


def test_redis_is_raised_above_the_edge_where_allowed_and_left_with_a_line_where_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # every request waits on Redis' one command thread (ADR 0022)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    said: list[str] = []
    try:
        if os.geteuid() == 0:
            devstack._renice(child.pid, -5, said.append)
            assert os.getpriority(os.PRIO_PROCESS, child.pid) == os.nice(0) - 5
            assert said == []

        def refused(*_: int) -> None:
            raise PermissionError

        monkeypatch.setattr(os, "setpriority", refused)
        devstack._renice(child.pid, -5, said.append)
        assert len(said) == 1
        assert "CAP_SYS_NICE" in said[0]
    finally:
        child.kill()
        child.wait()
