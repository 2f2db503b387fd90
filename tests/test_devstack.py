"""The local stack supervisor's own rules (no servers started here)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from devtools import devstack
from devtools.proc import Process, group_alive, stop_all


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


def test_a_server_that_fails_to_start_is_named_in_one_line_with_its_log_tail(
    tmp_path: Path,
) -> None:
    server = devstack.Server(
        "broken", 1, tmp_path, ["sh", "-c", "echo first; echo 'bad config line 3'; exit 3"],
        lambda: False,
    )  # fmt: skip
    with pytest.raises(devstack.StackError) as err:
        server.start()
    first, *rest = str(err.value).splitlines()
    assert first == f"broken did not start: exited with code 3 (log: {tmp_path / 'broken.log'})"
    assert rest == ["    | first", "    | bad config line 3"]


def test_stop_reaches_helpers_in_the_group_and_escalates_to_sigkill(tmp_path: Path) -> None:
    # The leader starts a helper that ignores SIGTERM: only a group SIGKILL ends it.
    helper = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('helper up', flush=True); time.sleep(300)"
    )
    script = (
        f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {helper!r}]); "
        "time.sleep(300)"
    )
    lines: list[bytes] = []
    p = Process("stubborn", [sys.executable, "-c", script], on_line=lines.append).start()
    p.wait_ready(lambda: lines == [b"helper up\n"], 30)
    assert stop_all([p], 1) == [p], "SIGKILL was needed"
    assert not group_alive(p.pgid)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_as_root_postgres_starts_from_a_clone_in_a_mode_700_home(tmp_path: Path) -> None:
    # Regression: initdb as the postgres user could not reach <clone>/.dev/stack under a
    # mode-700 home directory, and scripts/server died with a bare CalledProcessError.
    home = tmp_path / "home"
    workdir = home / "clone" / ".dev" / "stack"
    workdir.mkdir(parents=True)
    home.chmod(0o700)
    data_home = devstack.pg_home(workdir)
    assert data_home != workdir
    server = devstack.postgres_server(workdir)
    try:
        server.start()
        assert server.probe()
    finally:
        server.stop()
        shutil.rmtree(data_home, ignore_errors=True)


def test_a_stack_dir_the_postgres_user_can_reach_keeps_the_data_inside() -> None:
    # Only search permission is needed: root creates pgdata inside and hands it over. (A
    # check that also asked for write access moved every test stack's data out of /tmp.)
    workdir = Path(tempfile.mkdtemp(prefix="nexuscart-stack-"))
    try:
        workdir.chmod(0o755)
        assert devstack.pg_home(workdir) == workdir
        assert devstack.pg_home(workdir / "not" / "yet") == workdir / "not" / "yet"
    finally:
        workdir.rmdir()


def test_ports_chosen_together_are_distinct() -> None:
    # Kafka's broker and controller ports were once the same (two free_port() calls in a
    # row): each port is now held bound until all are chosen
    ports = devstack.free_ports(64)
    assert len(set(ports)) == 64
