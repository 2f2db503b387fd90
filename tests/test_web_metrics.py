"""The edge's Prometheus exposition parses (prometheus_client's own parser is the judge)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import msgspec

from nexuscart.web import Metrics
from tests.conftest import EdgeServer


def test_labelled_counters_render_one_type_line_per_metric_name() -> None:
    # Regression: the TYPE line carried the labels and repeated per label set, so one
    # dependency failure made the whole scrape unparsable.
    from prometheus_client.parser import text_string_to_metric_families

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
    assert "nexuscart_http_request_seconds" in families


def _healthz_count(text: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

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


def test_metrics_endpoint_counts_every_worker(edge: EdgeServer) -> None:
    n = 40
    for _ in range(n):
        assert httpx.get(f"{edge.url}/healthz", timeout=5).status_code == 200
    time.sleep(1.5)  # every worker has published since (every 1 s)
    for _ in range(6):  # scrapes land on either worker; each must see all requests
        assert _healthz_count(httpx.get(f"{edge.url}/metrics", timeout=5).text) >= n
