"""The Prometheus rules are valid (promtool check rules), do what their unit tests say
(promtool test rules on deploy/prometheus/tests), and the scrape config scripts/server
--observe writes passes promtool check config. promtool comes with Debian's prometheus
package, which scripts/bootstrap installs; only outside CI may its absence skip."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from devtools import prometheus

ROOT = Path(__file__).resolve().parent.parent
PROM = ROOT / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    exe = prometheus.binary("promtool")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing in CI: scripts/bootstrap installs Debian's prometheus")
        pytest.skip("promtool not installed (scripts/bootstrap installs Debian's prometheus)")
    return exe


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=PROM)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_alerting_and_recording_rules_pass_promtool_check(promtool: str) -> None:
    files = sorted(str(p) for p in (PROM / "rules").glob("*.yml"))
    assert files
    run(promtool, "check", "rules", *files)


def test_every_alert_has_a_unit_test_and_the_unit_tests_pass(promtool: str) -> None:
    import yaml

    alerts = {
        rule["alert"]
        for path in (PROM / "rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tests = sorted((PROM / "tests").glob("*.yml"))
    tested = {
        case["alertname"]
        for path in tests
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]  # a test that it fires, not only that it stays quiet
    }
    assert alerts - tested == set()
    run(promtool, "test", "rules", *map(str, tests))


def test_the_generated_scrape_config_passes_promtool_check(promtool: str, tmp_path: Path) -> None:
    conf = prometheus.write_config(
        tmp_path, "127.0.0.1:8000", {"orders": "127.0.0.1:9101", "payments": "127.0.0.1:9102"}, 9090
    )
    run(promtool, "check", "config", str(conf))


def test_the_compose_prometheus_config_passes_promtool_check(promtool: str) -> None:
    run(promtool, "check", "config", "--syntax-only", str(PROM / "prometheus.yml"))
