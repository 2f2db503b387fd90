"""PT-05's load shape for Locust: env BURST_STAGES "users:seconds,..." (e.g. 50:15,1000:20,50:30),
each stage reached at the run's spawn rate (env BURST_SPAWN_RATE, users per second).

Locust's "current" percentiles are over a sliding window (10 s by default); 2 s here, so the
per-second history the suite plots shows the burst and the recovery where they happen."""

from __future__ import annotations

import os

import locust.stats
from locust import LoadTestShape

locust.stats.CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW = 2


class Burst(LoadTestShape):
    stages = [
        (int(u), float(s))
        for u, s in (st.split(":") for st in os.environ.get("BURST_STAGES", "50:10").split(","))
    ]
    spawn_rate = float(os.environ.get("BURST_SPAWN_RATE", "250"))

    def tick(self) -> tuple[int, float] | None:
        t: float = self.get_run_time()  # type: ignore[no-untyped-call]
        for users, seconds in self.stages:
            if t < seconds:
                return users, self.spawn_rate
            t -= seconds
        return None
