"""scripts/serve.py (what scripts/server runs): it serves, restarts what dies, and leaves
nothing behind.

serve.py runs against the session's stack (its URLs are in the environment, so it starts no
second Kafka) with a temp stack dir and a fake services folder: real consumers would join the
session's consumer groups and race the tests that drive them (the relay, which consumes no
Kafka topic, runs for real). The fake service spawns a helper that ignores SIGTERM, so a
clean exit proves the SIGKILL escalation and that whole process groups, not just the direct
children, are stopped.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from devtools import devstack

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
time.sleep(0.2)
raise SystemExit(3)
"""

# The real outbox relay, under a folder name serve.py starts it from.
RELAY = """\
import runpy
runpy.run_module("services.outbox_relay", run_name="__main__", alter_sys=True)
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
        """name -> process group of the latest start serve.py reported for each child."""
        return {name: groups[-1] for name, groups in self.starts().items()}

    def starts(self) -> dict[str, list[int]]:
        """name -> process groups of every start serve.py reported, in order."""
        out: dict[str, list[int]] = {}
        for line in list(self.lines):
            if m := STARTED.search(line):
                assert m.group(2) == m.group(3), "each child leads its own process group"
                out.setdefault(m.group(1).decode(), []).append(int(m.group(3)))
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


def test_a_crash_looping_child_stops_everything(
    serve_env: dict[str, str], serve_args: list[str], tmp_path: Path
) -> None:
    services = _fake_services(tmp_path, crasher=CRASHER)
    args = [*serve_args, "--services-dir", str(services), "--restart-backoff", "0.05"]
    serve = Serve([*args, "--crash-limit", "3"], serve_env)
    try:
        serve.wait_for("started crasher")
        tree = descendants(serve.proc.pid)
        rc = serve.finish()
    finally:
        serve.kill()
    assert rc == 1, serve.output
    # restarted with a growing delay, then given up on as a crash loop
    assert "crasher exited (code 3); restarting in 0.1s (exit 1 of 3" in serve.output
    assert "crasher exited (code 3); restarting in 0.1s (exit 2 of 3" in serve.output
    assert "crasher exited 3 times within 60s (last code 3): crash loop" in serve.output
    groups = {g for gs in serve.starts().values() for g in gs}
    assert len(serve.starts()["crasher"]) == 3
    assert survivors(tree, groups) == []


def _readyz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
        return int(resp.status)


def test_a_killed_relay_is_restarted_and_the_server_stays_ready(
    serve_env: dict[str, str], serve_args: list[str], tmp_path: Path
) -> None:
    # Regression (issue 8, item 11): SIGKILL of the relay used to stop the whole server.
    services = _fake_services(tmp_path, outbox_relay=RELAY)
    serve = Serve([*serve_args, "--services-dir", str(services)], serve_env)
    port = int(serve_args[serve_args.index("--port") + 1])
    try:
        serve.wait_for("ready: http://127.0.0.1:", "/readyz 200")
        first = serve.started()["outbox_relay"]
        os.killpg(first, signal.SIGKILL)
        serve.wait_for("outbox_relay exited (code -9); restarting in 0.5s (exit 1 of 5")
        deadline = time.monotonic() + 30
        while len(serve.starts()["outbox_relay"]) < 2:
            if serve.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the relay did not come back; output:\n{serve.output}")
            time.sleep(0.05)
        second = serve.started()["outbox_relay"]
        assert second != first
        assert _stat(second) is not None, "the new relay runs"
        # services run under SCHED_IDLE by default (ADR 0018), a restarted one too
        assert os.sched_getscheduler(second) == os.SCHED_IDLE
        assert _readyz(port) == 200
        assert serve.proc.poll() is None, "the server is still up"
        assert _stat(second) is not None, "and so is the relay"
        serve.proc.send_signal(signal.SIGTERM)
        rc = serve.finish()
    finally:
        serve.kill()
    assert rc == 0, serve.output
    assert survivors({}, {first, second}) == []


def test_the_server_writes_its_settings_for_reconcile_and_removes_them_on_exit(
    serve_env: dict[str, str], serve_args: list[str], tmp_path: Path
) -> None:
    # Regression: scripts/reconcile next to a running scripts/server failed with
    # "missing required environment variables".
    services = _fake_services(tmp_path)
    serve = Serve([*serve_args, "--services-dir", str(services)], serve_env)
    workdir = Path(serve_args[serve_args.index("--workdir") + 1])
    env_file = workdir / "server.env"
    try:
        serve.wait_for("ready: http://127.0.0.1:")
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600, "it holds secrets"
        text = env_file.read_text()
        for var in ("REDIS_URL", "PG_DSN", "KAFKA_BOOTSTRAP", "JWT_SECRET", "NEXUSCART_ENV"):
            assert f"{var}=" in text, var
        bare = {k: v for k, v in serve_env.items() if k not in {"REDIS_URL", "PG_DSN"}}
        proc = subprocess.run(
            [str(ROOT / "scripts" / "reconcile"), "--redis-only"],
            env={**bare, "NEXUSCART_WORKDIR": str(workdir)},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "missing required" not in proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode in (0, 1), proc.stderr  # 1: another test's sale is mid-flight
        serve.proc.send_signal(signal.SIGINT)
        assert serve.finish() == 0, serve.output
    finally:
        serve.kill()
    assert not env_file.exists(), "its URLs are gone with the server"
    proc = subprocess.run(
        [str(ROOT / "scripts" / "reconcile")],
        env={**bare, "NEXUSCART_WORKDIR": str(workdir)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no scripts/server is running" in proc.stderr


def test_server_help_is_instant_without_bootstrap() -> None:
    # Regression: `scripts/server --help` ran the whole bootstrap before printing help.
    proc = subprocess.run(
        [str(ROOT / "scripts" / "server"), "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: scripts/server")
    assert "--restart-backoff" in proc.stdout
    assert "bootstrap:" not in proc.stderr, "bootstrap ran"


def test_a_part_that_fails_to_start_is_named_in_one_line_with_its_log_tail(
    serve_env: dict[str, str], serve_args: list[str], tmp_path: Path
) -> None:
    # PostgreSQL is started by serve.py here (PG_DSN unset), on a data dir initdb refuses.
    workdir = Path(serve_args[serve_args.index("--workdir") + 1])
    workdir.mkdir()
    home = devstack.pg_home(workdir)  # as root under a closed parent: outside workdir
    (home / "pgdata").mkdir(parents=True)
    (home / "pgdata" / "stray-file").write_text("not a database")
    env = {k: v for k, v in serve_env.items() if k != "PG_DSN"}
    services = _fake_services(tmp_path)
    serve = Serve([*serve_args, "--services-dir", str(services)], env)
    try:
        rc = serve.finish(timeout=60)
    finally:
        serve.kill()
        if home != workdir:
            shutil.rmtree(home)
    assert rc == 1, serve.output
    assert "Traceback" not in serve.output
    assert "CalledProcessError" not in serve.output
    line = next(x for x in serve.output.splitlines() if "error: " in x)
    assert "error: postgres did not start: initdb" in line, serve.output
    assert "exited with code 1" in line
    assert "is not empty" in serve.output  # initdb's own words, from the tail


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


def test_a_dead_stack_server_is_not_restarted_and_stops_everything(
    serve_env: dict[str, str], serve_args: list[str], tmp_path: Path
) -> None:
    # serve.py starts its own Redis here (REDIS_URL unset); the databases are not restarted.
    env = {k: v for k, v in serve_env.items() if k != "REDIS_URL"}
    services = _fake_services(tmp_path, sleeper=SLEEPER)
    serve = Serve([*serve_args, "--services-dir", str(services)], env)
    try:
        serve.wait_for("redis ready on", "ready: http://127.0.0.1:")
        redis = [
            pid
            for pid in descendants(serve.proc.pid)
            if Path(f"/proc/{pid}/comm").read_text().strip() == "redis-server"
        ]
        assert len(redis) == 1
        tree = descendants(serve.proc.pid)
        os.kill(redis[0], signal.SIGKILL)
        rc = serve.finish()
    finally:
        serve.kill()
    assert rc == 1, serve.output
    assert "error: redis exited unexpectedly (code -9" in serve.output
    assert "redis exited (code" not in serve.output, "not restarted"
    assert survivors(tree, set(serve.started().values())) == []
