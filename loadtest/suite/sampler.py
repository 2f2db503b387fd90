"""CPU and memory of every process of the run, per part of the platform, sampled while the
phases run (psutil, every ``interval`` seconds in a thread).

Everything the suite measures is a descendant of the suite's own process (the server and
its stack, the bench apps and consumers, wrk, vegeta, Locust), so one walk of that tree
finds them all; each process is named by its command line (loadtest.storm.part_of, with the
suite's own processes added in front).
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

import psutil

from loadtest.storm import part_of

# the suite's own processes, looked up before the platform's parts (first match wins)
SUITE_PARTS: Final = (
    ("loadtest.bare_app", "bare Granian (ceiling)"),
    ("loadtest.suite.sync_app", "sync PostgreSQL app (PT-02)"),
    ("loadtest.suite.consumer", "orders consumers (PT-03/04)"),
    ("--worker", "Locust workers"),  # only Locust's workers take that option here
    ("locust", "Locust master"),
    ("wrk", "wrk"),
    ("vegeta", "vegeta"),
)


def name_of(cmdline: str) -> str:
    first = cmdline.split(" ", 1)[0]
    for key, name in SUITE_PARTS:
        # wrk and vegeta are recognised by their executable only (a path may contain "wrk")
        if key in ("wrk", "vegeta"):
            if os.path.basename(first) == key:
                return name
        elif key in cmdline:
            return name
    return part_of(cmdline)


@dataclass
class Sample:
    t: float  # time.time()
    cpu: dict[str, float]  # cores busy since the previous sample, per part
    rss_mb: dict[str, float]


@dataclass
class Sampler:
    interval: float = 0.5
    root: int = field(default_factory=os.getpid)
    samples: list[Sample] = field(default_factory=list)
    _procs: dict[int, tuple[psutil.Process, str]] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        prev = time.time()
        self._take(prev, 0.0)  # the first pass only records each process's CPU so far
        while not self._stop.wait(self.interval):
            now = time.time()
            self._take(now, now - prev)
            prev = now

    def _take(self, now: float, elapsed: float) -> None:
        try:
            tree = psutil.Process(self.root).children(recursive=True)
        except psutil.Error:
            return
        cpu: dict[str, float] = {}
        rss: dict[str, float] = {}
        seen = set()
        for p in tree:
            pid = p.pid
            seen.add(pid)
            try:
                if pid not in self._procs:
                    self._procs[pid] = (p, name_of(" ".join(p.cmdline())))
                proc, part = self._procs[pid]
                with proc.oneshot():
                    t = proc.cpu_times()
                    used = t.user + t.system
                    mem = proc.memory_info().rss
            except psutil.Error:
                continue  # exited meanwhile
            if elapsed > 0:
                delta = used - self._last.get(pid, used)
                cpu[part] = cpu.get(part, 0.0) + delta / elapsed
            self._last[pid] = used
            rss[part] = rss.get(part, 0.0) + mem / 2**20
        for gone in set(self._procs) - seen:
            self._procs.pop(gone, None)
            self._last.pop(gone, None)
        if elapsed > 0:
            self.samples.append(Sample(now, cpu, rss))

    def window(self, t0: float, t1: float) -> dict[str, dict[str, float]]:
        """Mean cores busy and peak RSS per part between ``t0`` and ``t1`` (time.time())."""
        times = [s.t for s in self.samples]
        chosen = self.samples[bisect.bisect_left(times, t0) : bisect.bisect_right(times, t1)]
        out: dict[str, dict[str, float]] = {}
        for s in chosen:
            for part, c in s.cpu.items():
                row = out.setdefault(part, {"cpu_cores": 0.0, "rss_mb": 0.0})
                row["cpu_cores"] += c / len(chosen)
            for part, m in s.rss_mb.items():
                row = out.setdefault(part, {"cpu_cores": 0.0, "rss_mb": 0.0})
                row["rss_mb"] = max(row["rss_mb"], m)
        return out


class Phase:
    """``with Phase(results, sampler):`` records the phase's start, end and resource use."""

    def __init__(self, into: dict[str, Any], sampler: Sampler):
        self.into = into
        self.sampler = sampler

    def __enter__(self) -> Phase:
        self.t0 = time.time()
        return self

    def __exit__(self, *exc: object) -> None:
        t1 = time.time()
        time.sleep(min(self.sampler.interval, 1.0))  # the sample that covers the end
        self.into["t0"], self.into["t1"] = self.t0, t1
        self.into["resources"] = self.sampler.window(self.t0, t1 + self.sampler.interval)
