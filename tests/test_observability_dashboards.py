"""Every Grafana panel's PromQL runs against a real Prometheus (Debian's binary) scraping a
real edge and the real services (orders, inventory, outbox relay, payments, each on its
METRICS_PORT), and names only metrics those processes export or the rules record: a
dashboard cannot show a metric that does not exist.

A metric counts as exported when Prometheus holds samples of it or the scraped exposition
describes it (HELP/TYPE, kept as metadata): a counter with labels has no sample before its
first increment, and a short test does not pay a dependency failure or a breaker opening
to make one."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools import devstack, prometheus
from devtools.proc import Process
from tests.conftest import EdgeServer

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
SERVICES = ("orders", "inventory", "outbox_relay", "payments")
# histogram and counter series are named after their family plus one of these
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


class Prom:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}/api/v1"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]


@pytest.fixture(scope="module")
def prom(
    stack: devstack.Stack, edge: EdgeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prom]:
    exe = prometheus.binary()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus missing in CI: scripts/bootstrap installs Debian's package")
        pytest.skip("prometheus not installed (scripts/bootstrap installs Debian's package)")
    work = tmp_path_factory.mktemp("prometheus")
    ports = {name: devstack.free_port() for name in SERVICES}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    services = [
        Process(
            name,
            [sys.executable, "-m", f"services.{name}"],
            cwd=ROOT,
            env={**env, "METRICS_PORT": str(port)},
            log=work / f"{name}.log",
        ).start()
        for name, port in ports.items()
    ]
    port = devstack.free_port()
    conf = prometheus.write_config(
        work,
        f"127.0.0.1:{edge.port}",
        {name: f"127.0.0.1:{p}" for name, p in ports.items()},
        port,
        scrape_s=0.5,
    )
    server = Process(
        "prometheus",
        prometheus.argv(exe, conf, work / "data", port),
        cwd=work,
        log=work / "prometheus.log",
    ).start()
    try:
        server.wait_ready(prometheus.ready(port), timeout=30)
        api = Prom(port)
        deadline = time.monotonic() + 60
        while True:  # every process answered a scrape (services take a few seconds to start)
            targets = api.get("targets")["activeTargets"]
            down = [t["scrapeUrl"] for t in targets if t["health"] != "up"]
            if not down and len(targets) == len(SERVICES) + 2:
                break
            assert time.monotonic() < deadline, f"targets not up: {down}; logs in {work}"
            time.sleep(0.5)
        yield api
    finally:
        server.stop()
        for p in services:
            p.stop()


def metric_names(expr: str) -> set[str]:
    """The metric names a query reads: our nexuscart_* ones, recorded series (level:name:op)
    and ``up``; label matchers ({...}) are dropped first so values never count."""
    bare = re.sub(r"\{[^}]*\}", "", expr)
    names = set(re.findall(r"\b(nexuscart_[a-z0-9_]+|[a-z_]+:[a-z0-9_:]+)\b", bare))
    if re.search(r"(?<![a-z_])up(?![a-z_(])", bare):
        names.add("up")
    return names


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for path in (ROOT / "deploy" / "prometheus" / "rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def test_metric_names_are_read_from_queries_without_label_values() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(nexuscart_x_bucket{route="a:b:c"}[1m])))'
        " + route:nexuscart_y:rate1m + up"
    )
    assert metric_names(expr) == {"nexuscart_x_bucket", "route:nexuscart_y:rate1m", "up"}


def test_every_dashboard_panel_query_runs_and_names_exported_metrics(prom: Prom) -> None:
    assert {p.stem for p in DASHBOARDS} >= {"edge", "flash-sale", "pipeline", "kafka"}
    # each kind of process was scraped: the edge, a consumer (once it has fetched: a group
    # join takes seconds), the relay, payments
    scraped = {
        "nexuscart_http_requests_total",
        "nexuscart_kafka_consumer_lag_records",
        "nexuscart_outbox_backlog_entries",
        "nexuscart_payments_breaker_open",
    }
    deadline = time.monotonic() + 60
    while not scraped <= (sampled := set(prom.get("label/__name__/values"))):
        assert time.monotonic() < deadline, f"never scraped: {scraped - sampled}"
        time.sleep(0.5)
    described = set(prom.get("metadata"))
    known = sampled | described | recorded_names()

    def exported(name: str) -> bool:
        family = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
        return name in known or family in known

    problems = []
    queries = 0
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                queries += 1
                try:
                    prom.get("query", query=expr)
                except urllib.error.HTTPError as exc:
                    problems.append(f"{path.name} '{panel['title']}': {exc.read().decode()}")
                    continue
                missing = sorted(n for n in metric_names(expr) if not exported(n))
                if missing:
                    problems.append(f"{path.name} '{panel['title']}': no such metric {missing}")
    assert queries >= 20
    assert problems == []
