#!/usr/bin/env python3
"""The whole NexusCart platform on this machine; one Ctrl-C stops all of it.

``scripts/server`` runs ``scripts/bootstrap`` and then this file, which:

1. starts the local stack (Redis, PostgreSQL, Kafka, stripe-mock) through
   ``devtools.devstack`` for every part whose URL is not already in the environment,
2. fills in NEXUSCART_ENV=dev and the dev secrets that are not set (``config.dev_defaults()``)
   and writes the resulting settings to ``<workdir>/server.env`` (mode 600), where
   ``scripts/reconcile`` and other scripts find them while the server runs,
3. runs the PostgreSQL migrations and loads the demo data (``devtools.seed``),
4. starts the edge under Granian and one process per ``services/<name>/__main__.py``,
5. prints the URL and how long it took until ``/readyz`` answered 200, then supervises: an
   edge or service that dies is restarted with capped exponential backoff (one log line
   each); Ctrl-C, SIGTERM, SIGHUP, a stack server dying, or a crash loop (``--crash-limit``
   exits of one child within ``--crash-window`` seconds) stops the children, then the stack.

Every child runs in its own process group (``devtools.proc``) so that stopping it reaches its
own children (Granian workers, a service's helpers) too. Only the standard library is
imported at the top, so ``--help`` and the bootstrap step work before the venv exists.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import fcntl
import importlib
import importlib.util
import inspect
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from devtools.devstack import Stack
    from devtools.proc import Process
    from nexuscart.config import Settings

T0 = time.time()  # "time to ready" counts from here unless scripts/server passes --started-at
ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

# Exit codes: 0 stopped on request, 1 something failed or died, 2 prerequisites missing.
EXIT_OK, EXIT_FAILED, EXIT_PREREQ = 0, 1, 2

# The executables devstack runs, and the part each prerequisite line of
# check_prerequisites() belongs to (so a part given by env does not need its binary).
# (Debian installs redis-server as a symlink to redis-check-rdb, which /proc/<pid>/exe names.)
STACK_EXES = frozenset({"redis-server", "redis-check-rdb", "postgres", "java", "stripe-mock"})
PREREQ_PART = {
    "redis-server": "redis",
    "PostgreSQL": "postgres",
    "java": "kafka",
    "Kafka": "kafka",
    "stripe-mock": "stripe",
}


def _ensure_importable() -> None:
    """Make ``nexuscart`` (py/) and ``devtools``/``edge``/``services`` (repo root) importable."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if importlib.util.find_spec("nexuscart") is None:
        # Not installed in this interpreter (no `maturin develop` yet): use the source tree.
        # Only as a fallback, so an installed wheel that carries _core is never shadowed.
        sys.path.insert(0, str(ROOT / "py"))


def _python_path() -> str:
    parts = [str(ROOT)]
    if str(ROOT / "py") in sys.path:
        parts.append(str(ROOT / "py"))
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


# --- output --------------------------------------------------------------------------------


class Console:
    """Every child's output, one line at a time, prefixed with its name (``docker compose``
    style); a lock keeps lines from different children whole."""

    WIDTH = 15
    COLORS = (36, 33, 32, 35, 34, 91, 92, 93, 94, 95, 96)

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self._codes: dict[str, int] = {}

    def _prefix(self, name: str) -> bytes:
        label = f"{name:<{self.WIDTH}}|"
        if not self._color:
            return label.encode() + b" "
        code = self._codes.setdefault(name, self.COLORS[len(self._codes) % len(self.COLORS)])
        return f"\033[{code}m{label}\033[0m ".encode()

    def line(self, name: str, text: bytes) -> None:
        with self._lock:
            self._out.write(self._prefix(name) + text.rstrip(b"\r\n") + b"\n")
            self._out.flush()

    def say(self, text: str) -> None:
        self.line("server", text.encode())


# --- children ---------------------------------------------------------------------------------


@dataclass
class Child:
    """One supervised edge or service: its command, its current process, when it died."""

    name: str
    argv: list[str]
    env: dict[str, str]
    nice: int = 0
    idle: bool = False
    process: Process = field(init=False)  # set by start()
    deaths: collections.deque[float] = field(default_factory=collections.deque)
    restart_at: float | None = None  # monotonic time of the next start, while it is down

    @property
    def pgid(self) -> int:
        return self.process.pgid  # the child leads its own process group

    def start(self, console: Console) -> None:
        from devtools.proc import Process

        name = self.name
        self.process = Process(
            name,
            self.argv,
            cwd=ROOT,
            env=self.env,
            nice=self.nice,
            idle=self.idle,
            on_line=lambda raw: console.line(name, raw),
            # if this supervisor is SIGKILLed, the kernel TERMs the child: edge and services
            # never outlive it; the next run sweeps up the stack servers (see sweep_orphans)
            die_with_parent=True,
        ).start()
        console.say(f"started {name} (pid {self.process.pid}, process group {self.pgid})")


def spawn(
    name: str,
    argv: list[str],
    env: dict[str, str],
    console: Console,
    nice: int = 0,
    idle: bool = False,
) -> Child:
    child = Child(name, argv, env, nice, idle)
    child.start(console)
    return child


def _group_alive(pgid: int) -> bool:
    from devtools.proc import group_alive

    return group_alive(pgid)


def stop_children(children: Sequence[Child], timeout: float, console: Console) -> None:
    """SIGTERM every group at once, SIGKILL what is left at the deadline (devtools.proc)."""
    from devtools.proc import stop_all

    for process in stop_all([c.process for c in children], timeout):
        console.say(f"{process.name} did not stop within {timeout:.0f}s: SIGKILL")


# --- the stack directory ---------------------------------------------------------------------


def lock_workdir(workdir: Path) -> IO[str] | None:
    """One supervisor per stack dir: a second one would fight over PostgreSQL's data dir and
    its orphan sweep would kill the first one's servers. The kernel drops the lock when we
    die, however we die. Returns None when another live supervisor holds it."""
    workdir.mkdir(parents=True, exist_ok=True)
    handle = (workdir / "server.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _proc_path(pid: str, what: str) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/{what}"))
    except OSError:
        return None  # gone, or not ours to inspect


def sweep_orphans(workdir: Path, console: Console, pg_home: Path) -> None:
    """Stop stack servers left running in ``workdir`` by a supervisor that was SIGKILLed.

    devstack starts every server with its working directory inside the stack dir (Redis and
    PostgreSQL even chdir into their data dirs; PostgreSQL's may live in ``pg_home``
    instead), so "one of our server executables, running with its cwd in our stack dir"
    identifies them without a pid file that a crash could leave stale. We hold the workdir
    lock, so no live supervisor owns them."""
    roots = {workdir.resolve(), pg_home.resolve()}
    victims: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        exe, cwd = _proc_path(entry.name, "exe"), _proc_path(entry.name, "cwd")
        if exe is None or cwd is None:
            continue
        if exe.name.removesuffix(" (deleted)") in STACK_EXES and any(
            cwd == root or root in cwd.parents for root in roots
        ):
            victims.append(int(entry.name))
    if not victims:
        return
    console.say(f"stopping {len(victims)} stack process(es) left over from an earlier run")
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in victims):
        time.sleep(0.1)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live process: tells a pid from its reuse."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[19])


def record_children(workdir: Path, children: Sequence[Child]) -> None:
    """Remember our process groups, so a run after a SIGKILLed supervisor can stop what
    PR_SET_PDEATHSIG does not reach (a service's own helper processes)."""
    lines = [f"{c.pgid} {_start_time(c.pgid) or 0}\n" for c in children]
    (workdir / "server.children").write_text("".join(lines))


def stop_recorded_children(workdir: Path, console: Console) -> None:
    record = workdir / "server.children"
    try:
        entries = [tuple(map(int, line.split())) for line in record.read_text().splitlines()]
    except (OSError, ValueError):
        entries = []
    # A group outlives its leader, but Linux never hands out a pid still used as a group id:
    # a leader with another start time means the pid was reused and that group is gone.
    groups = [
        pgid for pgid, start in entries if _start_time(pgid) in (None, start) and _group_alive(pgid)
    ]
    if groups:
        console.say(f"stopping {len(groups)} process group(s) left over from an earlier run")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_group_alive(g) for g in groups):
            time.sleep(0.05)
    record.unlink(missing_ok=True)


def clear_stale_postmaster_pid(pg_home: Path, console: Console) -> None:
    """PostgreSQL refuses to start while ``postmaster.pid`` names a live process it may signal;
    after a hard kill that pid can be reused (by the postgres of another stack, say). Once
    the sweep ran, no postmaster of ours is alive, so a pid file naming anything but a live
    postgres on this data dir is stale."""
    pidfile = pg_home / "pgdata" / "postmaster.pid"
    try:
        pid = pidfile.read_text().split("\n", 1)[0].strip()
    except OSError:
        return
    exe, cwd = _proc_path(pid, "exe"), _proc_path(pid, "cwd")
    if exe is not None and exe.name == "postgres" and cwd == pidfile.parent.resolve():
        return  # a real postmaster still owns it; PostgreSQL itself will say so
    console.say(f"removing stale {pidfile} (pid {pid} is no postmaster of ours)")
    pidfile.unlink(missing_ok=True)


# --- setup steps -----------------------------------------------------------------------------


class Shutdown(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM/SIGHUP; unwinding stops everything.
    A BaseException, like KeyboardInterrupt, so that no `except Exception` swallows it."""


class Failure(Exception):
    """A step failed; the message is the one line to print."""


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """The settings this server runs with, for scripts/reconcile and friends: every variable
    config declares, shell-quoted (``set -a; . <file>`` works). Mode 600: it holds secrets."""
    import shlex

    from nexuscart.config import ENV_VARS

    lines = [f"{var}={shlex.quote(env[var])}\n" for var, *_ in ENV_VARS if env.get(var)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as f:
        f.writelines(lines)


def missing_prerequisites(parts: Sequence[str]) -> list[str]:
    from devtools import devstack

    problems = []
    for line in devstack.check_prerequisites():
        part = next((p for key, p in PREREQ_PART.items() if key in line), None)
        if part is None or part in parts:  # an unknown line is kept: better safe than silent
            problems.append(line)
    for module, why in (
        ("granian", "the edge's HTTP server"),
        ("uvloop", "Granian's loop"),
        ("asyncpg", "migrations"),
        ("msgspec", "settings"),
    ):
        if importlib.util.find_spec(module) is None:
            problems.append(f"Python package {module} not installed ({why})")
    return problems


async def _migrate(dsn: str) -> list[str]:
    from nexuscart.adapters.postgres import migrate_dsn

    return await migrate_dsn(dsn)


def find_seed() -> Callable[[Settings], Awaitable[object]] | None:
    """``async def seed(settings)`` from scripts/seed.py or devtools.seed, if either exists."""
    module: ModuleType | None = None
    script = ROOT / "scripts" / "seed.py"
    if script.is_file():
        spec = importlib.util.spec_from_file_location("nexuscart_seed_script", script)
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    elif importlib.util.find_spec("devtools.seed") is not None:
        module = importlib.import_module("devtools.seed")
    fn = getattr(module, "seed", None)
    if fn is None or not inspect.iscoroutinefunction(fn):
        return None
    seed: Callable[[Settings], Awaitable[object]] = fn
    return seed


def discover_services(services_dir: Path) -> list[str]:
    """Every ``<dir>/<name>/__main__.py``, looked up at start (services come and go)."""
    if not services_dir.is_dir():
        return []
    return sorted(
        p.parent.name for p in services_dir.glob("*/__main__.py") if p.parent.name.isidentifier()
    )


def port_free(host: str, port: int) -> bool:
    """True unless something listens there. SO_REUSEADDR as servers (Granian) bind with it: the
    TIME_WAIT sockets a previous run leaves for a minute must not count as "in use"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def readyz_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)  # 503 while a dependency is still coming up
    except (OSError, ValueError):
        return None  # not listening yet


# --- the supervisor --------------------------------------------------------------------------


@dataclass
class Supervisor:
    args: argparse.Namespace
    console: Console
    stack: Stack | None = None
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping:
            self.console.say(f"{signal.Signals(signum).name}: already stopping, please wait")
            return
        self.stopping = True
        raise Shutdown(signal.Signals(signum).name)

    def check_alive(self) -> None:
        """Restart what died (after its backoff); Failure on a crash loop or a dead server."""
        args, now = self.args, time.monotonic()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restart_at = None
                    child.start(self.console)
                    record_children(args.workdir, self.children)
                continue
            rc = child.process.poll()
            if rc is None:
                continue
            child.process.kill()  # whatever it left in its group (helpers) goes with it
            child.deaths.append(now)
            while now - child.deaths[0] > args.crash_window:
                child.deaths.popleft()
            n = len(child.deaths)
            if n >= args.crash_limit:
                raise Failure(
                    f"{child.name} exited {n} times within {args.crash_window:.0f}s "
                    f"(last code {rc}): crash loop; stopping everything"
                )
            delay = min(args.restart_backoff * 2 ** (n - 1), args.restart_backoff_max)
            child.restart_at = now + delay
            self.console.say(
                f"{child.name} exited (code {rc}); restarting in {delay:.1f}s "
                f"(exit {n} of {args.crash_limit} allowed within {args.crash_window:.0f}s)"
            )
        for name, server in (self.stack.servers if self.stack else {}).items():
            if not server.running:
                from devtools.proc import indent, tail

                # the databases are not restarted: what they lost must be looked at first
                rc = server.proc.poll() if server.proc is not None else None
                raise Failure(
                    f"{name} exited unexpectedly (code {rc}, log: {server.log}); "
                    f"stopping everything\n{indent(tail(server.log))}"
                )

    def shutdown(self) -> None:
        self.stopping = True
        if not self.children and (self.stack is None or not self.stack.servers):
            return  # nothing was started (bad prerequisites, port in use, ...): say nothing
        (self.args.workdir / "server.env").unlink(missing_ok=True)  # its URLs die with us
        if self.children:
            self.console.say("stopping edge and services")
            stop_children(self.children, self.args.stop_timeout, self.console)
            (self.args.workdir / "server.children").unlink(missing_ok=True)
        if self.stack is not None and self.stack.servers:
            self.console.say("stopping " + ", ".join(self.stack.servers))
            self.stack.stop()
        self.console.say("stopped; nothing left running")

    def run(self) -> int:
        from devtools import devstack
        from nexuscart import config

        args, say = self.args, self.console.say
        started_at: float = args.started_at
        workdir: Path = args.workdir
        defaults = config.EdgeSettings()
        host = args.host or os.environ.get("EDGE_HOST") or defaults.host
        port = int(args.port or os.environ.get("EDGE_PORT") or defaults.port)
        workers = int(args.workers or os.environ.get("EDGE_WORKERS") or defaults.workers)

        parts = tuple(
            name for name, (var, _, _) in devstack.PARTS.items() if not os.environ.get(var)
        )
        problems = missing_prerequisites(parts)
        if problems:
            for p in problems:
                print(f"missing: {p} — run scripts/bootstrap", file=sys.stderr)
            return EXIT_PREREQ
        if importlib.util.find_spec("nexuscart._core") is None:
            say(
                "warning: nexuscart._core (the Rust extension) is not built; scripts/bootstrap "
                "builds it"
            )
        if not port_free(host, port):
            raise Failure(
                f"edge port {host}:{port} is in use: stop what holds it, or pass "
                "--port / set EDGE_PORT"
            )

        lock = lock_workdir(workdir)
        if lock is None:
            holder = (workdir / "server.lock").read_text().strip() or "?"
            raise Failure(
                f"another scripts/server (pid {holder}) is using {workdir}; stop it "
                "or pass --workdir"
            )
        try:
            return self._run(workdir, parts, host, port, workers, started_at)
        finally:
            lock.close()

    def _run(
        self,
        workdir: Path,
        parts: tuple[str, ...],
        host: str,
        port: int,
        workers: int,
        started_at: float,
    ) -> int:
        from devtools import devstack
        from nexuscart import config

        say, phases = self.console.say, []
        t = time.time()
        stop_recorded_children(workdir, self.console)
        if parts:
            pg_home = devstack.pg_home(workdir) if "postgres" in parts else workdir
            if pg_home != workdir:
                say(f"postgres data in {pg_home}: the postgres user cannot reach {workdir}")
            sweep_orphans(workdir, self.console, pg_home)
            if "postgres" in parts:
                clear_stale_postmaster_pid(pg_home, self.console)
            say(f"starting {', '.join(parts)} in {workdir} (logs: {workdir}/*.log)")
            self.stack = devstack.start_stack(
                workdir=workdir,
                parts=parts,
                log=say,
                background_nice=self.args.background_nice,
                # stripe-mock stands in for Stripe, which costs a real deployment no CPU
                idle_parts=("stripe",) if self.args.background_idle else (),
                redis_nice=self.args.redis_nice,
            )
        else:
            say("every part is given by the environment; starting no stack servers")
        phases.append(f"stack {time.time() - t:.1f}s")

        # Parent env first, then dev secrets where unset, then the stack URLs: the children
        # (and the seed, which may read os.environ) all see one consistent configuration.
        env = dict(os.environ)
        for key, value in config.dev_defaults().items():
            if not env.get(key):
                env[key] = value
        if self.stack is not None:
            env.update(self.stack.env)
        env.update(
            EDGE_HOST=host, EDGE_PORT=str(port), EDGE_WORKERS=str(workers), PYTHONUNBUFFERED="1"
        )
        os.environ.update(env)
        try:
            settings = config.load(env)
        except config.ConfigError as exc:
            raise Failure(str(exc)) from None
        write_env_file(workdir / "server.env", env)

        t = time.time()
        try:
            applied = asyncio.run(_migrate(settings.postgres.dsn))
        except Exception as exc:
            raise Failure(f"migrations failed: {type(exc).__name__}: {exc}") from exc
        say(f"migrations: {', '.join(applied) if applied else 'up to date'}")
        seed = None if self.args.no_seed else find_seed()
        if seed is not None:
            try:
                asyncio.run(_await(seed(settings)))
            except Exception as exc:
                raise Failure(f"demo data failed: {type(exc).__name__}: {exc}") from exc
            say("demo data seeded")
        phases.append(f"migrations{'+seed' if seed else ''} {time.time() - t:.1f}s")

        t = time.time()
        services_dir: Path = self.args.services_dir
        env["PYTHONPATH"] = os.pathsep.join([str(services_dir.parent), _python_path()])
        py = sys.executable
        self.children.append(
            spawn(
                "edge",
                devstack.granian_argv("edge.app:app", host, port, workers),
                env,
                self.console,
            )
        )
        names = discover_services(services_dir)
        metrics_ports = service_metrics_ports(names, self.args.metrics_base_port)
        for name in names:
            self.children.append(
                spawn(
                    name,
                    [py, "-m", f"{services_dir.name}.{name}"],
                    {
                        **env,
                        "METRICS_PORT": str(metrics_ports[name]),
                        # with the demo data, a SYNTHETIC recommendation model (benches: none)
                        **({"RECS_DEMO_MODEL": "1"} if seed is not None else {}),
                    },
                    self.console,
                    self.args.background_nice,
                    self.args.background_idle,
                )
            )
        if not names:
            say(f"no services yet (no {services_dir.name}/<name>/__main__.py)")
        if self.args.observe:
            self._start_prometheus(workdir, host, port, metrics_ports)
        record_children(workdir, self.children)

        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
        deadline = time.monotonic() + self.args.ready_timeout
        status = None
        while (status := readyz_status(url)) != 200:
            self.check_alive()
            if time.monotonic() > deadline:
                raise Failure(
                    f"{url}/readyz not 200 after {self.args.ready_timeout:.0f}s "
                    f"(last: {status}); see the edge log above"
                )
            time.sleep(0.1)
        phases.append(f"edge {time.time() - t:.1f}s")
        say(f"settings for other scripts: {workdir / 'server.env'} (scripts/reconcile reads it)")
        if self.args.observe:
            say(
                f"prometheus: http://127.0.0.1:{self.args.prometheus_port} (scrapes the edge "
                f"and {len(metrics_ports)} services; rules in deploy/prometheus/rules)"
            )
        say(
            f"ready: {url}  (/readyz 200 {time.time() - started_at:.1f}s after start: "
            f"{', '.join(phases)}); Ctrl-C stops everything"
        )

        while True:
            self.check_alive()
            time.sleep(0.2)

    def _start_prometheus(
        self, workdir: Path, host: str, port: int, metrics_ports: dict[str, int]
    ) -> None:
        """Debian's Prometheus as one more supervised child, scraping every process."""
        from devtools import prometheus

        exe = prometheus.binary()
        if exe is None:
            raise Failure("--observe needs prometheus: scripts/bootstrap installs it (Debian)")
        prom_port = self.args.prometheus_port
        if not port_free("127.0.0.1", prom_port):
            raise Failure(f"prometheus port {prom_port} is in use: pass --prometheus-port")
        edge = f"{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
        targets = {name: f"127.0.0.1:{p}" for name, p in metrics_ports.items()}
        conf = prometheus.write_config(workdir / "prometheus", edge, targets, prom_port)
        self.children.append(
            spawn(
                "prometheus",
                prometheus.argv(exe, conf, workdir / "prometheus" / "data", prom_port),
                dict(os.environ),
                self.console,
                self.args.background_nice,
            )
        )


def service_metrics_ports(names: Sequence[str], base: int) -> dict[str, int]:
    """Each service's /metrics port: ``base`` + its index where free, any free port else (a
    second server on this machine)."""
    from devtools.devstack import free_port

    return {
        name: base + i if port_free("127.0.0.1", base + i) else free_port()
        for i, name in enumerate(names)
    }


async def _await(result: Awaitable[object]) -> None:
    await result


# --- entry point -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/server", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument(
        "--no-bootstrap",
        action="store_true",
        help="skip scripts/bootstrap (scripts/server has just run it)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=ROOT / ".dev" / "stack",
        help="stack data and logs, kept between runs (default: .dev/stack)",
    )
    p.add_argument("--host", help="edge bind address (default: EDGE_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="edge port (default: EDGE_PORT or 8000)")
    p.add_argument("--workers", type=int, help="Granian workers (default: EDGE_WORKERS or 1)")
    p.add_argument("--no-seed", action="store_true", help="do not load the demo data")
    p.add_argument(
        "--observe",
        action="store_true",
        help="also run Prometheus (Debian's package) scraping the edge and every service, "
        "with the rules of deploy/prometheus/rules (docs/observability.md)",
    )
    p.add_argument("--prometheus-port", type=int, default=9090, metavar="PORT")
    p.add_argument(
        "--metrics-base-port",
        type=int,
        default=9101,
        metavar="PORT",
        help="first service's /metrics port (METRICS_PORT); the next ones follow (default 9101)",
    )
    p.add_argument(
        "--services-dir",
        type=Path,
        default=ROOT / "services",
        help="where <name>/__main__.py services are found (tests use a fake one)",
    )
    p.add_argument(
        "--background-nice",
        type=int,
        default=10,
        metavar="N",
        help="niceness added to the services, PostgreSQL, Kafka and stripe-mock (not the edge "
        "and Redis, which serve requests): on one machine, catching up on events must not "
        "take CPU from answering buyers (default 10; 0 to disable)",
    )
    p.add_argument(
        "--background-idle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the services and stripe-mock under SCHED_IDLE: they use only CPU time the "
        "edge, Redis, PostgreSQL and Kafka leave, and catch up on events after a burst "
        "(docs/adr/0018; default on)",
    )
    p.add_argument(
        "--redis-nice",
        type=int,
        default=-5,
        metavar="N",
        help="niceness added to Redis' command thread, where the system allows it: every "
        "request waits on that one thread, so on a busy machine it runs before the edge "
        "(docs/adr/0022; default -5; 0 to disable)",
    )
    p.add_argument("--ready-timeout", type=float, default=90.0, metavar="S")
    p.add_argument(
        "--stop-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="grace period per child before SIGKILL",
    )
    p.add_argument(
        "--restart-backoff",
        type=float,
        default=0.5,
        metavar="S",
        help="first delay before restarting a dead edge/service; doubles per recent exit",
    )
    p.add_argument("--restart-backoff-max", type=float, default=30.0, metavar="S")
    p.add_argument(
        "--crash-limit",
        type=int,
        default=5,
        metavar="N",
        help="stop everything when one child exits N times within --crash-window",
    )
    p.add_argument("--crash-window", type=float, default=60.0, metavar="S")
    p.add_argument("--started-at", type=float, default=T0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.workdir = args.workdir.absolute()
    args.services_dir = args.services_dir.absolute()
    return args


def bootstrap_then_reexec(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Run scripts/bootstrap; then continue inside the venv it made, if we are not in it."""
    rc = subprocess.run([str(ROOT / "scripts" / "bootstrap")], check=False).returncode
    if rc != 0:
        print(
            f"missing: scripts/bootstrap failed (exit {rc}); fix the line above and re-run",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_PREREQ)
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve():
        os.execv(
            VENV_PYTHON,
            [
                str(VENV_PYTHON),
                __file__,
                "--no-bootstrap",
                "--started-at",
                str(args.started_at),
                *argv,
            ],
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if not args.no_bootstrap:
        bootstrap_then_reexec(args, argv)
    _ensure_importable()
    console = Console(sys.stdout.buffer)
    sup = Supervisor(args, console)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, sup.on_signal)
    code = EXIT_OK
    try:
        code = sup.run()
    except Shutdown as exc:
        console.say(f"{exc}: shutting down")
    except Failure as exc:
        sup.stopping = True  # from here a Ctrl-C must not interrupt the cleanup below
        for line in f"error: {exc}".splitlines():
            console.say(line)
        code = EXIT_FAILED
    except Exception as exc:  # a stack part failed etc.: say it plainly, still clean up
        sup.stopping = True
        from devtools.proc import StartError

        # a StartError's first line names the part and why; its log's tail follows
        text = str(exc) if isinstance(exc, StartError) else f"{type(exc).__name__}: {exc}"
        for line in f"error: {text}".splitlines():
            console.say(line)
        code = EXIT_FAILED
    finally:
        sup.shutdown()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
