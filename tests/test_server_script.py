"""scripts/serve.py (what scripts/server runs): it serves, and it leaves nothing behind.

serve.py runs against the session's stack (its URLs are in the environment, so it starts no
second Kafka) with a temp stack dir and a fake services folder: real services would join the
session's consumer groups and race the tests that drive them. The fake service spawns a
helper that ignores SIGTERM, so a clean exit proves the SIGKILL escalation and that whole
process groups, not just the direct children, are stopped.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nexuscart import devstack

ROOT = Path(__file__).resolve().parent.parent
SERVE = ROOT / "scripts" / "serve.py"
STARTED = re.compile(rb"started (\S+) \(pid (\d+), process group (\d+)\)")

SLEEPER = """\
import subprocess, sys, time
helper = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('stubborn helper up', flush=True); time.sleep(300)"
)
subprocess.Popen([sys.executable, "-c", helper])  # same process group as this service
print("sleeper up", flush=True)
time.sleep(300)
"""

CRASHER = """\
import time
print("crasher up", flush=True)
time.sleep(0.5)
raise SystemExit(3)
"""


class Serve:
    """serve.py as a child process, its output collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[bytes] = []
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVE), "--no-bootstrap", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            self.lines.append(line)

    @property
    def output(self) -> str:
        return b"".join(self.lines).decode(errors="replace")

    def wait_for(self, *needles: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not all(n in self.output for n in needles):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                time.sleep(0.2)  # let the last lines arrive
                pytest.fail(f"never saw {needles}; output:\n{self.output}")
            time.sleep(0.05)

    def started(self) -> dict[str, int]:
        """name -> process group of every child serve.py reported starting."""
        out = {}
        for line in self.lines:
            if m := STARTED.search(line):
                assert m.group(2) == m.group(3), "each child leads its own process group"
                out[m.group(1).decode()] = int(m.group(3))
        return out

    def finish(self, timeout: float = 20) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # its children die with it (PR_SET_PDEATHSIG)
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# --- /proc helpers: who is alive, in which group ----------------------------------------------


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, pgid, start time) of a live, non-zombie process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[2]), int(fields[19])


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live descendant of ``root``."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for pid in _all_pids():
        if (st := _stat(pid)) is not None:
            children.setdefault(st[0], []).append(pid)
            starts[pid] = st[2]
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = starts[child]
            todo.append(child)
    return found


def survivors(pids: dict[int, int], groups: set[int]) -> list[int]:
    """Processes of the snapshot still alive (same start time), or anything in those groups."""
    left = {pid for pid, start in pids.items() if (st := _stat(pid)) and st[2] == start}
    left |= {pid for pid in _all_pids() if (st := _stat(pid)) and st[1] in groups}
    return sorted(left)


# --- fixtures ------------------------------------------------------------------------------------


def _fake_services(tmp_path: Path, **sources: str) -> Path:
    folder = tmp_path / "fakesvc"  # a package name no real module uses
    for name, source in sources.items():
        (folder / name).mkdir(parents=True)
        (folder / name / "__main__.py").write_text(source)
    return folder


@pytest.fixture
def serve_env(stack: devstack.Stack) -> dict[str, str]:
    env = dict(os.environ)  # the stack fixture put the stack URLs and dev secrets here
    for var, _, _ in devstack.PARTS.values():
        assert env.get(var), f"{var} must come from the session stack"
    return env


@pytest.fixture
def serve_args(tmp_path: Path) -> list[str]:
    return [
        "--workdir", str(tmp_path / "stack"),
        "--port", str(devstack.free_port()),
        "--no-seed",  # demo data would land in the session's shared database
        "--ready-timeout", "30",
        "--stop-timeout", "2",
    ]  # fmt: skip


# --- tests -----------------------------------------------------------------------------------


def test_ctrl_c_stops_edge_services_and_their_helpers(
    stack: devstack.Stack, serve_env: dict[str, str], serve_args: list[str], tmp_path: Path
) -> None:
    services = _fake_services(tmp_path, sleeper=SLEEPER)
    serve = Serve([*serve_args, "--services-dir", str(services)], serve_env)
    try:
        serve.wait_for("ready: http://127.0.0.1:", "/readyz 200", "stubborn helper up")
        started = serve.started()
        assert set(started) == {"edge", "sleeper"}
        tree = descendants(serve.proc.pid)
        # edge master + its worker(s), the service and its helper
        assert len(tree) >= 4, tree
        serve.proc.send_signal(signal.SIGINT)
        rc = serve.finish()
    finally:
        serve.kill()
    assert rc == 0, serve.output
    assert "SIGINT: shutting down" in serve.output
    assert "sleeper did not stop within 2s: SIGKILL" in serve.output  # the stubborn helper
    assert survivors(tree, set(started.values())) == []
    # what serve.py did not start, it does not stop
    assert all(server.running for server in stack.servers.values())


def test_a_dying_child_stops_everything(
    serve_env: dict[str, str], serve_args: list[str], tmp_path: Path
) -> None:
    services = _fake_services(tmp_path, crasher=CRASHER)
    serve = Serve([*serve_args, "--services-dir", str(services)], serve_env)
    try:
        serve.wait_for("started crasher")
        started = serve.started()
        tree = descendants(serve.proc.pid)
        rc = serve.finish()
    finally:
        serve.kill()
    assert rc == 1, serve.output
    assert "crasher exited unexpectedly (code 3)" in serve.output
    assert survivors(tree, set(started.values())) == []


def test_missing_prerequisites_one_line_each_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {p[0] for p in devstack.PARTS.values()}}
    empty = tmp_path / "empty"
    empty.mkdir()
    # nothing on PATH, no Kafka classpath cache, no GOBIN: redis, kafka and stripe-mock missing
    env.update(PATH=str(empty), XDG_CACHE_HOME=str(empty), GOBIN=str(empty), GOPATH=str(empty))
    proc = subprocess.run(
        [sys.executable, str(SERVE), "--no-bootstrap", "--workdir", str(tmp_path / "stack")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert lines
    assert all(line.startswith("missing: ") for line in lines), lines
    for what in ("redis-server", "java", "Kafka", "stripe-mock"):
        assert sum(what in line for line in lines) == 1, (what, lines)
    assert not (tmp_path / "stack").exists(), "nothing is started or created"
