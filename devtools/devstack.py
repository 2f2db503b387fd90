"""The local stack: real Redis, PostgreSQL, Kafka (KRaft) and stripe-mock on loopback.

Shared by ``scripts/server``, the pytest fixtures and the load runners. Every server runs
under ``devtools.proc`` (its own process group) on a free 127.0.0.1 port, is probed for real
readiness, and is torn down on exit. A part whose URL is already in the environment
(REDIS_URL, PG_DSN, KAFKA_BOOTSTRAP, STRIPE_API_BASE) is not started: the external one is
used instead.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from devtools.proc import Process, StartError, indent, stop_all

KAFKA_VERSION = "3.9.1"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "nexuscart"
KAFKA_CLASSPATH_FILE = CACHE_DIR / f"kafka-{KAFKA_VERSION}.classpath"
# Redis rewrites its AOF once it has grown to 5x its base (Redis: 2x); ADR 0003
AOF_REWRITE_PERCENTAGE = 400


class StackError(StartError):
    """A part of the local stack is missing or did not become ready; the first line of the
    message says which and why."""


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: every socket stays bound until all are chosen (two
    ``free_port()`` calls in a row can get the same port back from the kernel)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports


def _which(name: str, *extra_dirs: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in extra_dirs:
        candidate = Path(d) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _pg_bindir() -> str | None:
    pg_config_dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for d in pg_config_dirs:
        if (d / "initdb").exists() and (d / "postgres").exists():
            return str(d)
    initdb = shutil.which("initdb")
    return str(Path(initdb).resolve().parent) if initdb else None


def _missing(what: str, hint: str = "run scripts/bootstrap") -> StackError:
    return StackError(f"{what} not found: {hint}")


def _tcp_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


@dataclass
class Server:
    """One stack server: how to start it and how to probe it; ``devtools.proc`` runs it."""

    name: str
    port: int
    workdir: Path
    argv: list[str]
    probe: Callable[[], bool]
    timeout: float = 60.0
    env: dict[str, str] | None = None
    run_as: str | None = None
    cwd: Path | None = None  # default: workdir
    nice: int = 0
    idle: bool = False  # SCHED_IDLE (devtools.proc.Process)
    process: Process | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = Process(
            self.name,
            self.argv,
            cwd=self.cwd or self.workdir,
            env={**os.environ, **(self.env or {})},
            log=self.log,
            user=self.run_as,
            nice=self.nice,
            idle=self.idle,
        ).start()
        try:
            self.process.wait_ready(self.probe, self.timeout)
        except StartError as exc:
            raise StackError(str(exc)) from None

    def stop(self, timeout: float = 15.0) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.stop(timeout)

    def kill(self) -> None:
        """Hard stop (SIGKILL), as a crash would."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The running process (tests signal it: SIGSTOP, SIGKILL)."""
        return None if self.process is None else self.process.proc


def _pg_user() -> str | None:
    """PostgreSQL refuses to run as root; as root we run it as the 'postgres' system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise StackError("running as root but no 'postgres' user: run scripts/bootstrap") from exc
    return "postgres"


def _reachable_by(user: str, path: Path) -> bool:
    """Can ``user`` reach ``path`` (it and every parent searchable)? Root creates the data
    dir inside and hands it over, so search permission is all PostgreSQL needs. Asked of the
    kernel as that user, which beats re-implementing permission bits and ACLs."""
    probe = path
    while not probe.exists():  # it will be created inside the nearest existing parent
        probe = probe.parent
    return (
        subprocess.run(
            ["test", "-x", str(probe)],
            user=user,
            group=pwd.getpwnam(user).pw_gid,
            extra_groups=[],
            check=False,
        ).returncode
        == 0
    )


def scratch_dir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A throwaway directory for a stack: traversable by the postgres user, so that
    PostgreSQL keeps its data inside it (pg_home) and removing it removes everything."""
    tmp = tempfile.TemporaryDirectory(prefix=prefix)
    os.chmod(tmp.name, 0o755)
    return tmp


def pg_home(workdir: Path) -> Path:
    """Where PostgreSQL keeps its data and socket for this stack dir. Normally inside it; as
    root, when the postgres user cannot reach it (a clone in a mode-700 home directory), in
    the postgres user's home instead, one folder per stack dir so two clones never share."""
    user = _pg_user()
    if user is None or _reachable_by(user, workdir):
        return workdir
    digest = hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:12]
    home = Path(pwd.getpwnam(user).pw_dir)
    if not _reachable_by(user, home):
        home = Path(tempfile.gettempdir())
    return home / "nexuscart" / f"{workdir.parent.name or 'stack'}-{digest}"


def _owned_dir(path: Path, user: str | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if user:
        pw = pwd.getpwnam(user)
        for p in [path, *path.rglob("*")]:
            os.chown(p, pw.pw_uid, pw.pw_gid)


# --- the four parts ---------------------------------------------------------------------------


def redis_server(workdir: Path, port: int | None = None) -> Server:
    exe = _which("redis-server")
    if exe is None:
        raise _missing("redis-server")
    port = port or free_port()
    import redis  # local import: the supervisor must load even when deps are missing

    def probe() -> bool:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()

    data = workdir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    # appendonly + fsync every write: an acknowledged hold survives a Redis crash (ADR 0003).
    argv = [
        exe,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--auto-aof-rewrite-percentage",
        str(AOF_REWRITE_PERCENTAGE),
        "--save",
        "",
        "--protected-mode",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]
    return Server("redis", port, workdir, argv, probe, timeout=20)


def postgres_server(workdir: Path, port: int | None = None) -> Server:
    bindir = _pg_bindir()
    if bindir is None:
        raise _missing("PostgreSQL server (initdb/postgres)")
    port = port or free_port()
    user = _pg_user()
    home = pg_home(workdir)
    if user and home != workdir:
        # a parent of workdir is closed to the postgres user: initdb would fail there
        _owned_dir(home.parent, None)
        os.chmod(home.parent, 0o755)
    data = home / "pgdata"
    sockdir = home / "pgsock"
    _owned_dir(sockdir, user)
    if not (data / "PG_VERSION").exists():
        _owned_dir(data, user)
        init = subprocess.run(
            [
                f"{bindir}/initdb",
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            user=user,
            group=None if user is None else pwd.getpwnam(user).pw_gid,
            extra_groups=None if user is None else [],
            check=False,
        )
        if init.returncode != 0:
            raise StackError(
                f"postgres did not start: initdb {data} exited with code {init.returncode}"
                f"{f' (as user {user})' if user else ''}\n"
                + indent("\n".join((init.stdout + init.stderr).splitlines()[-15:]))
            )
    argv = [
        f"{bindir}/postgres",
        "-D",
        str(data),
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
        "-k",
        str(sockdir),
        "-c",
        "fsync=on",
        "-c",
        "max_connections=200",
        "-c",
        "shared_buffers=256MB",
        "-c",
        "synchronous_commit=on",
    ]

    def probe() -> bool:
        import asyncpg

        async def q() -> bool:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=port, user="postgres", database="postgres", timeout=1
            )
            try:
                return bool(await conn.fetchval("SELECT 1") == 1)
            finally:
                await conn.close()

        return asyncio.run(q())

    return Server("postgres", port, workdir, argv, probe, timeout=60, run_as=user, cwd=data)


def kafka_classpath() -> str:
    if not KAFKA_CLASSPATH_FILE.exists():
        raise _missing(f"Apache Kafka {KAFKA_VERSION} jars ({KAFKA_CLASSPATH_FILE})")
    return KAFKA_CLASSPATH_FILE.read_text().strip()


def kafka_server(workdir: Path, port: int | None = None) -> Server:
    java = _which("java")
    if java is None:
        raise _missing("java (a JDK 17 runtime)")
    cp = kafka_classpath()
    # chosen together, the controller's port differs from the broker's (two free_port()
    # calls once gave both the same port), and from a broker port given by the caller
    free = free_ports(3)
    port = port or free[0]
    ctrl_port = next(p for p in free[1:] if p != port)
    kdir = workdir / "kafka"
    kdir.mkdir(parents=True, exist_ok=True)
    props = kdir / "server.properties"
    props.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{ctrl_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctrl_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={kdir / 'logs'}",
                "num.partitions=6",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=6",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                # single node: flush each write, so acks=all means "on disk"
                "log.flush.interval.messages=1",
                "",
            ]
        )
    )
    log4j = kdir / "log4j.properties"
    log4j.write_text(
        "log4j.rootLogger=WARN, stdout\n"
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        "log4j.logger.kafka.server.KafkaServer=INFO\n"
    )
    jvm = [
        java,
        "-Xms256m",
        "-Xmx768m",
        "-XX:+UseG1GC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{log4j}",
        "-cp",
        cp,
    ]
    if not (kdir / "logs" / "meta.properties").exists():
        format_kafka_storage(jvm, props, kafka_cluster_id())

    def probe() -> bool:
        # TCP first: the metadata client logs every refused connection while the JVM boots
        from nexuscart.adapters.kafka import metadata_ok

        return _tcp_open(port) and asyncio.run(metadata_ok(f"127.0.0.1:{port}"))

    return Server("kafka", port, workdir, [*jvm, "kafka.Kafka", str(props)], probe, timeout=90)


def kafka_cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64 (it may start with '-')."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def format_kafka_storage(jvm: list[str], props: Path, cluster_id: str) -> None:
    # "--cluster-id=ID", not "-t ID": an id starting with '-' would read as an option.
    fmt = subprocess.run(
        [
            *jvm,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "--config",
            str(props),
        ],
        capture_output=True,
        text=True,
    )
    if fmt.returncode != 0:
        out = (fmt.stdout + fmt.stderr).splitlines()[-15:]
        raise StackError(
            f"kafka did not start: storage format exited with code {fmt.returncode}\n"
            + indent("\n".join(out))
        )


def stripe_mock_exe() -> str | None:
    gobin = os.environ.get("GOBIN") or str(
        Path(os.environ.get("GOPATH", Path.home() / "go")) / "bin"
    )
    return _which("stripe-mock", gobin)


def stripe_mock_server(workdir: Path, port: int | None = None) -> Server:
    exe = stripe_mock_exe()
    if exe is None:
        raise _missing("stripe-mock")
    port = port or free_port()

    def probe() -> bool:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/customers",
            headers={"Authorization": "Bearer sk_test_123"},
        )
        with urllib.request.urlopen(req, timeout=1) as resp:
            return int(resp.status) == 200

    return Server("stripe-mock", port, workdir, [exe, "-http-port", str(port)], probe, timeout=30)


# Granian's --backpressure caps the connections a worker accepts (default backlog/workers,
# 512 here). Past it, the connections the kernel has already queued on that worker's socket
# wait unaccepted, and their requests hang: seen as buyers unanswered for 10 s in an
# open-loop run. Admission is the gate's job (in-flight caps answer 503 at once), so the
# connection cap is set far above what a worker holds.
GRANIAN_BACKLOG = 4096
GRANIAN_BACKPRESSURE = 16384


def granian_argv(target: str, host: str, port: int, workers: int) -> list[str]:
    """The one command line the edge runs under (scripts/serve.py, tests, load runs)."""
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "rsgi",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--no-ws",
        "--backlog",
        str(GRANIAN_BACKLOG),
        "--backpressure",
        str(GRANIAN_BACKPRESSURE),
        target,
    ]


class GranianServer:
    """An RSGI app under Granian as a separate process on a free port (what production runs)."""

    def __init__(
        self,
        target: str,
        env: dict[str, str],
        workers: int = 1,
        cwd: Path | None = None,
        ready_path: str = "/healthz",
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.gettempdir()) / f"nexuscart-granian-{self.port}.log"
        self.log.unlink(missing_ok=True)
        cwd = cwd or Path.cwd()
        argv = granian_argv(target, "127.0.0.1", self.port, workers)
        pythonpath = os.pathsep.join([str(cwd), os.environ.get("PYTHONPATH", "")])
        self.process = Process(
            "granian",
            argv,
            cwd=cwd,
            env={**os.environ, **env, "PYTHONPATH": pythonpath},
            log=self.log,
        ).start()
        url = f"{self.url}{ready_path}"

        def probe() -> bool:
            with urllib.request.urlopen(url, timeout=0.5) as resp:
                return int(resp.status) == 200

        self.process.wait_ready(probe, 30)

    def stop(self) -> None:
        killed = self.process.stop(10)
        if not killed and self.process.poll() in (0, -signal.SIGTERM):
            self.log.unlink(missing_ok=True)  # a clean stop: nothing to look at later


# --- the stack --------------------------------------------------------------------------------


@dataclass
class Stack:
    """The running local stack and the URLs the code connects to."""

    workdir: Path
    servers: dict[str, Server] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def stop(self) -> None:
        # all at once: nothing depends on order at shutdown, and Kafka's JVM is the slow one
        stop_all([s.process for s in self.servers.values() if s.process is not None], 15)
        for server in self.servers.values():
            server.process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


PARTS: dict[str, tuple[str, Callable[[Path], Server], Callable[[int], str]]] = {
    "redis": ("REDIS_URL", redis_server, lambda p: f"redis://127.0.0.1:{p}/0"),
    "postgres": (
        "PG_DSN",
        postgres_server,
        lambda p: f"postgresql://postgres@127.0.0.1:{p}/postgres",
    ),
    "kafka": ("KAFKA_BOOTSTRAP", kafka_server, lambda p: f"127.0.0.1:{p}"),
    "stripe": ("STRIPE_API_BASE", stripe_mock_server, lambda p: f"http://127.0.0.1:{p}"),
}


def start_stack(
    workdir: Path | None = None,
    parts: tuple[str, ...] = tuple(PARTS),
    log: Callable[[str], None] | None = None,
    background_nice: int = 0,
    idle_parts: Collection[str] = (),
    redis_nice: int = 0,
) -> Stack:
    """Start every part not already given by env; return URLs for all of them.
    ``background_nice`` lowers the CPU priority of every part but Redis, which serves the
    purchase path itself (see scripts/serve.py --background-nice); ``idle_parts`` run under
    SCHED_IDLE (see --background-idle); ``redis_nice`` (negative) raises Redis' above this
    process' where the system allows it (see --redis-nice).

    Parts start concurrently in threads (Kafka's JVM dominates; the rest overlap with it).
    On any failure everything started so far is stopped and StackError is raised.
    """
    tmp = None
    if workdir is None:
        tmp = scratch_dir("nexuscart-stack-")
        workdir = Path(tmp.name)
    stack = Stack(workdir=workdir, _tmp=tmp)
    to_start: dict[str, Server] = {}
    try:
        for name in parts:
            env_var, factory, url = PARTS[name]
            if os.environ.get(env_var):
                stack.env[env_var] = os.environ[env_var]
                continue
            server = factory(workdir)
            if name != "redis":
                server.nice = background_nice
            server.idle = name in idle_parts
            to_start[name] = server
            stack.env[env_var] = url(server.port)
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            futures = {pool.submit(s.start): n for n, s in to_start.items()}
            for fut in concurrent.futures.as_completed(futures):
                name = futures[fut]
                stack.servers[name] = to_start[name]
                fut.result()
                if log:
                    log(f"{name} ready on 127.0.0.1:{to_start[name].port}")
        redis = to_start.get("redis")
        if redis_nice and redis is not None and redis.process and redis.process.proc:
            _renice(redis.process.proc.pid, redis_nice, log)
    except BaseException:
        stop_all([s.process for s in to_start.values() if s.process is not None], 15)
        if tmp is not None:
            tmp.cleanup()
        raise
    atexit.register(stack.stop)
    return stack


def _renice(pid: int, by: int, log: Callable[[str], None] | None) -> None:
    """Redis' main thread (the one that runs every command) ``by`` niceness from ours. A
    higher priority needs CAP_SYS_NICE or RLIMIT_NICE: without either, it stays as it is."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0) + by)
    except PermissionError:
        if log:
            log(f"redis keeps the edge's CPU priority (niceness {by} needs CAP_SYS_NICE)")


def check_prerequisites() -> list[str]:
    """One clear line per missing prerequisite (empty when all present)."""
    problems = []
    if _which("redis-server") is None:
        problems.append("redis-server not found (Debian package redis-server)")
    if _pg_bindir() is None:
        problems.append("PostgreSQL server not found (Debian package postgresql)")
    if _which("java") is None:
        problems.append("java not found (Debian package openjdk-17-jre-headless)")
    if not KAFKA_CLASSPATH_FILE.exists():
        problems.append(f"Kafka {KAFKA_VERSION} jars not resolved ({KAFKA_CLASSPATH_FILE})")
    if stripe_mock_exe() is None:
        problems.append("stripe-mock not found (go install github.com/stripe/stripe-mock)")
    return problems


def main() -> int:
    """``python -m devtools.devstack``: start the stack, print its env, wait for Ctrl-C."""
    problems = check_prerequisites()
    if problems:
        for p in problems:
            print(f"missing: {p} — run scripts/bootstrap", file=sys.stderr)
        return 2
    stack = start_stack(log=lambda m: print(m, file=sys.stderr))
    for k, v in stack.env.items():
        print(f"export {k}={v}")
    sys.stdout.flush()
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
