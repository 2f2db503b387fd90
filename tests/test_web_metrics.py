"""The edge's Prometheus exposition parses (prometheus_client's own parser is the judge)."""

from __future__ import annotations

from nexuscart.web import Metrics


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
