"""The edge's Prometheus exposition parses (prometheus_client's own parser is the judge), and a
scrape of any worker counts the requests of every worker (ADR 0006)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from nexuscart.web import Metrics, server_id
from tests.conftest import EdgeServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: str, *, skip: str = "nexuscart_worker_snapshots") -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): float(s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name != skip
    }


def test_labelled_counters_render_one_type_line_per_metric_name() -> None:
    # Regression: the TYPE line carried the labels and repeated per label set, so one
    # dependency failure made the whole scrape unparsable.
    m = Metrics()
    m.observe("/healthz", 200, 0.002)
    m.inc("dependency_failures_total", 'dependency="redis"')
    m.inc("dependency_failures_total", 'dependency="postgres"')
    m.inc("dependency_failures_total", 'dependency="redis"')
    families = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    failures = families["nexuscart_dependency_failures"]
    assert {
        s.labels["dependency"]: s.value for s in failures.samples if s.name.endswith("_total")
    } == {"redis": 2.0, "postgres": 1.0}
    assert families["nexuscart_http_requests"].type == "counter"
    assert families["nexuscart_http_request_duration_seconds"].type == "histogram"


def _healthz_count(text: str) -> float:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "nexuscart_http_requests_total" and s.labels["route"] == "/healthz":
                return float(s.value)
    return 0.0


def test_workers_sharing_a_directory_scrape_as_their_sum(tmp_path: Path) -> None:
    a, b = Metrics(), Metrics()
    for m in (a, b):
        m.share(tmp_path)
    a.observe("/healthz", 200, 0.001)
    a.inc("dependency_failures_total", 'dependency="redis"')
    b.observe("/healthz", 200, 0.2)
    # b publishes as another process would (its own pid-named file)
    (tmp_path / "999999.metrics").write_bytes(msgspec.msgpack.encode(b.snapshot()))
    (tmp_path / "999998.metrics").write_bytes(b"half-written")  # skipped, not fatal
    text = a.render_all().decode()
    assert _healthz_count(text) == 2
    assert "nexuscart_worker_snapshots 2.0" in text
    assert 'nexuscart_dependency_failures_total{dependency="redis"} 1' in text
    a.publish()
    a.unpublish()
    assert not (tmp_path / f"{os.getpid()}.metrics").exists()


def test_a_previous_servers_leftover_counters_are_not_summed(tmp_path: Path) -> None:
    # Regression: a worker killed along with its server (SIGKILL, the OOM killer, a
    # container's PID 1 dying) leaves its file behind, and the next server sharing the
    # directory (the same METRICS_DIR, or the same parent pid: PID 1 in a container) added
    # the dead server's counts to its own.
    old = Metrics()
    old.share(tmp_path, server="1:1000")
    for _ in range(5):
        old.observe("/healthz", 200, 0.001)
    (tmp_path / "999999.metrics").write_bytes(msgspec.msgpack.encode(old.snapshot()))
    new, sibling = Metrics(), Metrics()
    for m in (new, sibling):
        m.share(tmp_path, server="1:2000")
    new.observe("/healthz", 200, 0.001)
    sibling.observe("/healthz", 200, 0.001)
    (tmp_path / "999998.metrics").write_bytes(msgspec.msgpack.encode(sibling.snapshot()))
    text = new.render_all().decode()
    assert _healthz_count(text) == 2
    assert "nexuscart_worker_snapshots 2.0" in text


def test_workers_of_one_server_agree_on_its_id_which_includes_its_start_time() -> None:
    code = "import os; from nexuscart.web import server_id; print(server_id(os.getppid()))"
    children = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert children == {server_id(os.getpid())}
    # the start time tells a later process that reuses the pid (PID 1 in a container) apart
    assert server_id(os.getpid()).startswith(f"{os.getpid()}:")


ROUTES = ("/healthz", "/flash-sales/{sale_id}", "/flash-sales/{sale_id}/purchase", "unmatched")
# (worker, route, status, latency in 1/1024 s: exact in binary, so sums are order-free)
observations = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(ROUTES),
        st.sampled_from((200, 202, 404, 409, 429, 503)),
        st.integers(0, 4 * 1024),
    ),
    max_size=80,
)


@given(observations, st.lists(st.tuples(st.integers(0, 2), st.sampled_from(("redis", "kafka")))))
def test_a_scrape_of_any_worker_equals_one_process_that_saw_every_request(
    obs: list[tuple[int, str, int, int]], failures: list[tuple[int, str]]
) -> None:
    workers = [Metrics() for _ in range(3)]
    alone = Metrics()
    for w, route, status, ticks in obs:
        workers[w].observe(route, status, ticks / 1024)
        alone.observe(route, status, ticks / 1024)
    for w, dependency in failures:
        workers[w].inc("dependency_failures_total", f'dependency="{dependency}"')
        alone.inc("dependency_failures_total", f'dependency="{dependency}"')
    with tempfile.TemporaryDirectory() as tmp:
        shared = Path(tmp)
        workers[0].share(shared)
        for other, fake_pid in zip(workers[1:], (999_991, 999_992), strict=True):
            path = shared / f"{fake_pid}.metrics"
            path.write_bytes(msgspec.msgpack.encode(other.snapshot()))
        summed = workers[0].render_all().decode()
    assert _samples(summed) == _samples(alone.render().decode())


def test_metrics_endpoint_counts_every_worker(edge: EdgeServer) -> None:
    n = 40
    for _ in range(n):
        assert httpx.get(f"{edge.url}/healthz", timeout=5).status_code == 200
    # A scrape reaches one of the 2 workers; each publishes its counters every second. Once
    # both have published after the requests above, every scrape, on either worker, counts
    # all of them: wait for 12 in a row (the kernel spreads connections over both workers)
    # rather than for a fixed time, which a loaded machine can overrun.
    seen: list[float] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen.append(_healthz_count(httpx.get(f"{edge.url}/metrics", timeout=5).text))
        if len(seen) >= 12 and min(seen[-12:]) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"scrapes never all counted {n} requests: {seen[-24:]}")
