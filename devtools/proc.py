"""The one process supervisor of the development tooling: start a command in its own process
group, wait until it is ready, stop the whole group (SIGTERM, then SIGKILL at a deadline).

devstack (Redis, PostgreSQL, Kafka, stripe-mock, Granian), scripts/serve.py (edge and
services), the tests and the load runners all use it; docs/adr/0007 says why it is this
module and not a library.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nexuscart.children import die_with_parent


class StartError(RuntimeError):
    """A process did not become ready. The first line says which and why; the log's tail
    follows on indented lines."""


def group_alive(pgid: int) -> bool:
    """Does any member of the group still run? Zombies do not count: a helper whose leader
    died is reparented to init, which reaps it when it gets round to it."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a member runs as another user (postgres); it still exists
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue  # gone meanwhile
        state, _ppid, group = raw[raw.rindex(b")") + 2 :].split()[:3]
        if int(group) == pgid and state not in (b"Z", b"X"):
            return True
    return False


def tail(path: Path | None, lines: int = 15) -> str:
    if path is None:
        return "(no log)"
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return "\n".join(text) if text else "(log empty)"


def indent(text: str) -> str:
    return "\n".join(f"    | {line}" for line in text.splitlines())


class Process:
    """One supervised command. Its output goes to ``log`` (appended), or line by line to
    ``on_line``, or nowhere. It leads its own process group, so stopping it reaches every
    helper it started (Granian workers, PostgreSQL backends, a service's children)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        on_line: Callable[[bytes], None] | None = None,
        user: str | None = None,
        die_with_parent: bool = False,
        nice: int = 0,
        idle: bool = False,
    ) -> None:
        self.name, self.argv, self.cwd, self.env = name, list(argv), cwd, env
        self.log, self.on_line, self.user = log, on_line, user
        self.die_with_parent = die_with_parent
        self.nice = nice  # added to the child's niceness before exec, inherited by its helpers
        # SCHED_IDLE (inherited too): runs on CPU time nothing else wants, preempted at once
        self.idle = idle
        self.proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None

    def start(self) -> Process:
        out: Any = subprocess.DEVNULL
        logf = None
        if self.on_line is not None:
            out = subprocess.PIPE
        elif self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            logf = out = self.log.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=None if self.env is None else dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # its own process group, so stop() reaches all of it; not its own session:
                # with the kernel's autogroup scheduling (on by default in desktop and many
                # server kernels) a new session is a new scheduling group that gets an equal
                # CPU share whatever its niceness, so ``nice`` would do nothing
                process_group=0,
                user=self.user,
                group=None if self.user is None else _primary_group(self.user),
                extra_groups=None if self.user is None else [],  # drop root's groups too
                preexec_fn=self._preexec if self._needs_preexec else None,
            )
        finally:
            if logf is not None:
                logf.close()
        if self.on_line is not None:
            self._pump = threading.Thread(target=self._copy, name=f"pump-{self.name}")
            self._pump.daemon = True
            self._pump.start()
        return self

    @property
    def _needs_preexec(self) -> bool:
        # a preexec_fn costs Popen its fast path (vfork): only when there is something to do
        return self.die_with_parent or bool(self.nice) or self.idle

    def _preexec(self) -> None:
        if self.nice:
            os.nice(self.nice)
        if self.idle:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        if self.die_with_parent:  # the supervisor SIGKILLed: the child gets SIGTERM
            die_with_parent(signal.SIGTERM)

    def _copy(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        assert self.on_line is not None
        stream, on_line = self.proc.stdout, self.on_line
        for raw in iter(stream.readline, b""):
            on_line(raw)
        stream.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    pgid = pid  # the leader of its own group

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        """Poll ``probe`` until it returns True; StartError if the process exits first or the
        deadline passes. A probe that raises counts as "not yet"."""
        deadline = time.monotonic() + timeout
        while True:
            rc = self.poll()
            if rc is not None:
                self.fail(f"exited with code {rc}")
            with contextlib.suppress(Exception):
                if probe():
                    return
            if time.monotonic() > deadline:
                self.stop(5)
                self.fail(f"not ready after {timeout:.0f}s")
            time.sleep(0.1)

    def fail(self, why: str) -> None:
        where = f" (log: {self.log})" if self.log else ""
        raise StartError(f"{self.name} did not start: {why}{where}\n{indent(tail(self.log))}")

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM the group, SIGKILL it at the deadline; True if SIGKILL was needed."""
        return bool(stop_all([self], timeout))

    def kill(self) -> None:
        """Hard stop of the whole group (SIGKILL), as a crash would."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + 5  # SIGKILL is not instant for the other members
        while group_alive(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._join()

    def _join(self) -> None:
        if self._pump is not None:
            self._pump.join(timeout=2)  # let the last lines through


def _primary_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def stop_all(procs: Iterable[Process], timeout: float) -> list[Process]:
    """SIGTERM every group at once (they shut down in parallel), wait until each group is
    empty, SIGKILL what is left at the deadline; returns the ones that needed SIGKILL.
    Waiting for the group, not just the leader, is what guarantees that no worker or helper
    survives."""
    started = [p for p in procs if p.proc is not None]
    for p in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    pending = list(started)
    while pending and time.monotonic() < deadline:
        for p in list(pending):
            # reap the leader, or its zombie keeps the group "alive"
            if p.poll() is not None and not group_alive(p.pgid):
                pending.remove(p)
        if pending:
            time.sleep(0.05)
    for p in pending:
        p.kill()
    for p in started:
        p._join()
    return pending
