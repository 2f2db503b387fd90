"""Prometheus on this machine (Debian's ``prometheus`` package): a scrape config naming the
actual ports of the edge and of each service, the rules in deploy/prometheus/rules, and
the server as a supervised process. ``scripts/server --observe`` and the dashboard test
(tests/test_observability_dashboards.py) both start it through here.

Only the standard library is imported: scripts/serve.py loads this before the venv exists.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"


def binary(name: str = "prometheus") -> str | None:
    """``prometheus`` or ``promtool`` from PATH (Debian puts both in /usr/bin)."""
    return shutil.which(name)


def config(
    edge: str, services: Mapping[str, str], *, scrape_s: float = 5.0, self_port: int = 0
) -> str:
    """The scrape config: ``edge`` and each service as ``host:port``, labelled with their
    ``service`` name (the rules and dashboards group by it). JSON is YAML."""
    jobs: list[dict[str, object]] = [
        {
            "job_name": "edge",
            "static_configs": [{"targets": [edge], "labels": {"service": "edge"}}],
        },
        {
            "job_name": "services",
            "static_configs": [
                {"targets": [addr], "labels": {"service": name}}
                for name, addr in sorted(services.items())
            ],
        },
    ]
    if self_port:
        jobs.append(
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{self_port}"]}]}
        )
    return json.dumps(
        {
            "global": {
                "scrape_interval": f"{round(scrape_s * 1000)}ms",
                "evaluation_interval": f"{round(scrape_s * 1000)}ms",
            },
            "rule_files": [str(RULES_DIR / "*.yml")],
            "scrape_configs": jobs,
        },
        indent=2,
    )


def argv(exe: str, config_path: Path, data_dir: Path, port: int) -> list[str]:
    return [
        exe,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=2d",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    ]


def write_config(
    directory: Path, edge: str, services: Mapping[str, str], port: int, scrape_s: float = 5.0
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "prometheus.yml"
    path.write_text(config(edge, services, scrape_s=scrape_s, self_port=port))
    return path


def ready(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)

    return probe
