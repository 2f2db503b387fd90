"""How long and how hard each phase runs: ``--smoke`` (the pipeline end to end in about a
minute), ``--quick`` (every test, bounded to a dozen minutes on two cores) and the full
profile. Every phase is bounded by these numbers; nothing waits without a deadline."""

from __future__ import annotations

import dataclasses
from typing import Final


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    seconds: int  # one closed-loop measurement (wrk) of PT-01..PT-03
    levels: tuple[int, ...]  # PT-01 connections
    products: int  # catalog size for GET /products/{id}
    buyers: int  # distinct signed-in users (tokens) per purchase phase
    edge_workers: tuple[int, ...]  # PT-03 edge workers
    instances: tuple[int, ...]  # PT-03 orders consumers in one group
    partitions: tuple[int, ...]  # PT-04
    events: int  # events per PT-03 instance run / PT-04 partition run
    event_rate: int  # PT-04 offered events/s (open loop)
    drain_s: int  # the most any phase waits for a pipeline to drain
    burst: tuple[tuple[int, int], ...]  # PT-05 (users, seconds) stages
    spawn_rate: int  # users started per second in PT-05 / the shopper mix
    users: int  # shopper mix users (--users)
    mix_seconds: int  # shopper mix duration
    locust_workers: int
    samples_per_s: float  # PT-02 sampled purchases per second (end-to-end latency)
    budget_s: float | None  # no phase starts past budget - 60 s (the run's hard bound)


QUICK: Final = Profile(
    name="quick",
    seconds=8,
    levels=(10, 50, 100, 500),
    products=2_000,
    buyers=200_000,
    edge_workers=(1, 2, 4),
    instances=(1, 2, 4),
    partitions=(1, 3, 6, 12),
    events=6_000,
    event_rate=1_000,
    drain_s=60,
    burst=((50, 15), (1_000, 20), (50, 30)),
    spawn_rate=250,
    users=200,
    mix_seconds=20,
    locust_workers=2,
    samples_per_s=20,
    budget_s=11 * 60,
)

FULL: Final = dataclasses.replace(
    QUICK,
    name="full",
    seconds=20,
    products=20_000,
    buyers=1_000_000,
    edge_workers=(1, 2, 4, 8),
    events=20_000,
    event_rate=1_500,
    drain_s=180,
    burst=((50, 30), (1_000, 60), (50, 60)),
    users=400,
    mix_seconds=60,
    budget_s=None,
)

SMOKE: Final = dataclasses.replace(
    QUICK,
    name="smoke",
    seconds=1,
    levels=(10, 50),
    products=200,
    buyers=20_000,
    edge_workers=(1, 2),
    instances=(1, 2),
    partitions=(1, 3),
    events=300,
    event_rate=300,
    drain_s=5,
    burst=((10, 2), (50, 2), (10, 2)),
    spawn_rate=50,
    users=20,
    mix_seconds=2,
    locust_workers=1,
    samples_per_s=10,
)

PROFILES: Final = {p.name: p for p in (SMOKE, QUICK, FULL)}
