"""The local stack supervisor's own rules (no servers started here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devtools import devstack


def test_kafka_storage_format_accepts_a_cluster_id_starting_with_a_dash(tmp_path: Path) -> None:
    # Regression: "-t -Abc..." was parsed as an option and the stack failed to start at random.
    java = shutil.which("java")
    if java is None:
        pytest.skip("java not installed")
    props = tmp_path / "server.properties"
    props.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                "controller.quorum.voters=1@127.0.0.1:1",
                "controller.listener.names=CONTROLLER",
                "listeners=PLAINTEXT://127.0.0.1:2,CONTROLLER://127.0.0.1:1",
                f"log.dirs={tmp_path / 'logs'}",
                "",
            ]
        )
    )
    devstack.format_kafka_storage(
        [java, "-cp", devstack.kafka_classpath()], props, "-AbCdEfGhIjKlMnOpQrStU"
    )
    assert (tmp_path / "logs" / "meta.properties").exists()


def test_missing_prerequisites_are_named_one_per_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devstack, "_which", lambda *a, **k: None)
    monkeypatch.setattr(devstack, "_pg_bindir", lambda: None)
    monkeypatch.setattr(devstack, "KAFKA_CLASSPATH_FILE", Path("/nonexistent/kafka.classpath"))
    problems = devstack.check_prerequisites()
    assert [p.split(" ")[0] for p in problems] == [
        "redis-server",
        "PostgreSQL",
        "java",
        "Kafka",
        "stripe-mock",
    ]
