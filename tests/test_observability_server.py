"""scripts/server --observe: serve.py also runs Debian's Prometheus, which scrapes the edge
and the services on the ports serve.py gave them (the real outbox relay here, serving its
/metrics on its METRICS_PORT), evaluates the rules, and stops with everything else."""

from __future__ import annotations

import json
import signal
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devtools import devstack, prometheus
from tests.test_server_script import (
    RELAY,
    Serve,
    _fake_services,
    serve_args,  # noqa: F401  (fixture)
    serve_env,  # noqa: F401  (fixture)
    survivors,
)


def _api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)["data"]


def test_observe_runs_prometheus_scraping_the_edge_and_the_services_with_the_rules(
    serve_env: dict[str, str],  # noqa: F811
    serve_args: list[str],  # noqa: F811
    tmp_path: Path,
) -> None:
    if prometheus.binary() is None:
        pytest.skip("prometheus not installed (scripts/bootstrap installs Debian's package)")
    services = _fake_services(tmp_path, outbox_relay=RELAY)
    prom_port = devstack.free_port()
    args = [
        *serve_args,
        "--services-dir", str(services),
        "--observe",
        "--prometheus-port", str(prom_port),
        "--metrics-base-port", str(devstack.free_port()),
    ]  # fmt: skip
    serve = Serve(args, serve_env)
    try:
        serve.wait_for("ready: http://127.0.0.1:", f"prometheus: http://127.0.0.1:{prom_port}")
        started = serve.started()
        assert set(started) == {"edge", "outbox_relay", "prometheus"}
        deadline = time.monotonic() + 60
        while True:
            targets = _api(prom_port, "targets")["activeTargets"]
            up = {
                t["labels"].get("service", t["labels"]["job"])
                for t in targets
                if t["health"] == "up"
            }
            if {"edge", "outbox_relay", "prometheus"} <= up:
                break
            assert time.monotonic() < deadline, f"targets: {targets}"
            time.sleep(0.5)
        # live figures: the supervisor's /readyz polls on the edge, the relay's own gauges
        edge = _api(prom_port, "query", query='nexuscart_http_requests_total{route="/readyz"}')
        assert edge["result"]
        relay = _api(prom_port, "query", query="nexuscart_outbox_backlog_entries")
        assert relay["result"][0]["metric"]["service"] == "outbox_relay"
        groups = {g["name"] for g in _api(prom_port, "rules")["groups"]}
        assert {"nexuscart-recording", "nexuscart-alerts"} <= groups
        serve.proc.send_signal(signal.SIGTERM)
        rc = serve.finish()
    finally:
        serve.kill()
    assert rc == 0, serve.output
    assert survivors({}, set(started.values())) == []
