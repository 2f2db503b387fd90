"""docker-compose.yml and the Dockerfile stay consistent with the code.

No Docker engine or compose plugin runs here, so this checks statically what `docker compose
config` and a build would catch first: dangling depends_on, a required setting missing from
an app container, a service folder without a container, Dockerfile stages that do not line up.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from nexuscart.config import ENV_VARS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

# The downstream services of DESIGN.md §1 plus the outbox relay; each is `python -m services.<x>`.
EXPECTED_SERVICES = (
    "orders",
    "inventory",
    "outbox_relay",
    "payments",
    "recommendations",
    "notifications",
)
INFRA = (
    "redis",
    "citus-coordinator",
    "citus-worker-1",
    "citus-worker-2",
    "kafka",
    "stripe-mock",
    "prometheus",
    "grafana",
)
REQUIRED_VARS = sorted(var for var, _, _, required, _ in ENV_VARS if required)
# ${VAR} (empty when VAR is unset) vs ${VAR:-default} / ${VAR-default} (never empty)
INTERPOLATION = re.compile(r"\$\{(?P<var>\w+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # resolves anchors and <<
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    svcs: dict[str, dict[str, Any]] = compose["services"]
    return svcs


def _command(svc: dict[str, Any]) -> list[str]:
    cmd = svc.get("command", [])
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def _environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):  # the KEY=value list form
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _depends_on(svc: dict[str, Any]) -> dict[str, str]:
    deps = svc.get("depends_on", {})
    if isinstance(deps, list):  # short form: just "started"
        return dict.fromkeys(deps, "service_started")
    return {name: (cond or {}).get("condition", "service_started") for name, cond in deps.items()}


def _app_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Containers that run our image (built from the Dockerfile)."""
    ours = {name for name, svc in services.items() if "build" in svc}
    images = {services[name].get("image") for name in ours}
    return {
        name: svc
        for name, svc in services.items()
        if name in ours or (svc.get("image") in images and svc.get("image"))
    }


def _never_empty(value: str) -> bool:
    """A compose value that cannot end up empty at `docker compose up` time."""
    if not value:
        return False
    for m in INTERPOLATION.finditer(value):
        if m.group("op") is None or not m.group("default"):
            return False  # ${VAR} with no default is empty whenever VAR is unset
    return True


def _dockerfile_stages() -> tuple[list[str], set[str], list[str]]:
    """(stage names in order, stage names used by --from=, images of FROM lines)."""
    stages, used, bases = [], set(), []
    for line in DOCKERFILE.read_text().splitlines():
        if m := re.match(r"\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line, re.I):
            bases.append(m.group(1))
            stages.append((m.group(2) or "").lower())
        for ref in re.findall(r"--from=(\S+)", line):
            used.add(ref.lower())
    return stages, used, bases


def test_every_depends_on_target_exists_with_a_meaningful_condition(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, svc in services.items():
        for dep, condition in _depends_on(svc).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            target = services[dep]
            if condition == "service_healthy":
                assert "healthcheck" in target, f"{name} waits for {dep} healthy: no healthcheck"
            elif condition == "service_completed_successfully":
                assert target.get("restart", "no") == "no", f"{dep} is a one-shot: restart no"
            else:
                assert condition == "service_started", f"{name}: odd condition {condition}"


def test_the_whole_stack_is_there(services: dict[str, dict[str, Any]]) -> None:
    for name in INFRA:
        assert name in services, f"docker-compose.yml has no {name}"
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert services["stripe-mock"]["image"].startswith("stripe/stripe-mock:")
    for name in ("citus-coordinator", "citus-worker-1", "citus-worker-2"):
        assert services[name]["image"].startswith("citusdata/citus:")
    for name in (
        "redis",
        "citus-coordinator",
        "citus-worker-1",
        "citus-worker-2",
        "kafka",
        "stripe-mock",
        "edge",
    ):
        assert "healthcheck" in services[name], f"{name} needs a healthcheck"


def test_redis_is_durable_per_write(services: dict[str, dict[str, Any]]) -> None:
    cmd = " ".join(_command(services["redis"]))
    assert "--appendonly yes" in cmd
    assert "--appendfsync always" in cmd


def test_kafka_is_a_single_kraft_node(services: dict[str, dict[str, Any]]) -> None:
    env = _environment(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in k for k in env)
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_citus_workers_are_registered_before_migrations(
    services: dict[str, dict[str, Any]],
) -> None:
    init = next(
        name
        for name, svc in services.items()
        if "citus-init" in name or "register-workers" in str(svc.get("entrypoint", ""))
    )
    deps = _depends_on(services[init])
    assert {"citus-coordinator", "citus-worker-1", "citus-worker-2"} <= set(deps)
    script = ROOT / "deploy" / "citus" / "register-workers.sh"
    assert "citus_add_node" in script.read_text()
    assert _depends_on(services["migrate"]).get(init) == "service_completed_successfully"


def test_every_required_setting_is_set_for_every_app_container(
    services: dict[str, dict[str, Any]],
) -> None:
    apps = _app_services(services)
    assert "edge" in apps
    assert len(apps) >= 1 + len(EXPECTED_SERVICES)
    for name, svc in apps.items():
        env = _environment(svc)
        missing = [v for v in REQUIRED_VARS if not _never_empty(env.get(v, ""))]
        assert not missing, f"{name}: required settings not set (or empty when unset): {missing}"
    edge_env = _environment(services["edge"])
    assert edge_env.get("EDGE_HOST") == "0.0.0.0", "the edge must listen beyond its container"


def test_every_service_folder_has_a_container_and_the_six_are_listed(
    services: dict[str, dict[str, Any]],
) -> None:
    modules = {}
    for name, svc in services.items():
        cmd = _command(svc)
        if cmd[:2] == ["python", "-m"] and len(cmd) > 2 and cmd[2].startswith("services."):
            modules[cmd[2].removeprefix("services.")] = name
    for expected in EXPECTED_SERVICES:
        assert expected in modules, f"no container runs python -m services.{expected}"
    # whatever exists in the repo right now (the services are being written) must be deployed
    for main in sorted((ROOT / "services").glob("*/__main__.py")):
        assert main.parent.name in modules, f"services/{main.parent.name} has no container"


def test_edge_and_services_wait_for_their_dependencies(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, svc in _app_services(services).items():
        if name == "migrate":
            continue
        deps = _depends_on(svc)
        for dep in ("redis", "kafka"):
            assert deps.get(dep) == "service_healthy", f"{name} must wait for {dep} healthy"
        assert deps.get("migrate") == "service_completed_successfully", name


def test_dockerfile_stages_line_up(services: dict[str, dict[str, Any]]) -> None:
    assert DOCKERFILE.is_file()
    stages, used, bases = _dockerfile_stages()
    named = [s for s in stages if s]
    assert len(stages) >= 2, "expected a multi-stage build"
    assert len(named) == len(set(named)), "duplicate stage names"
    assert used <= set(named), f"--from= refers to unknown stages: {used - set(named)}"
    # every stage but the last feeds a later one; the last is what compose builds
    assert set(named[:-1]) <= used, f"unused stages: {set(named[:-1]) - used}"
    for name, svc in _app_services(services).items():
        build = svc.get("build")
        if isinstance(build, dict):
            assert build.get("target", stages[-1]) == stages[-1], (
                f"{name}: builds a non-final stage"
            )
            assert (
                ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
            ).resolve() == DOCKERFILE
    text = DOCKERFILE.read_text()
    assert "maturin build --release" in text
    assert re.search(r"-c\s+\S*requirements\.lock", text), "runtime deps pinned by the lock"
    for folder in ("edge", "services"):
        assert re.search(rf"COPY --from=\S+ \S*/{folder}/ {folder}/", text), f"{folder}/ copied"
    # the base images come from ARGs defined before the first FROM
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    resolved = [args.get(b.strip("${}"), b) for b in bases]
    assert any(b.startswith("rust:") for b in resolved)
    assert any(b.startswith("python:3.11") for b in resolved)


def test_files_mounted_from_the_repo_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_prometheus_scrapes_the_edge_and_grafana_uses_prometheus(
    services: dict[str, dict[str, Any]],
) -> None:
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    edge_port = _environment(services["edge"])["EDGE_PORT"]
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    targets = [t for sc in jobs["edge"]["static_configs"] for t in sc["targets"]]
    assert f"edge:{edge_port}" in targets
    assert jobs["edge"].get("metrics_path", "/metrics") == "/metrics"
    datasources = ROOT / "deploy" / "grafana" / "provisioning" / "datasources"
    sources = [
        ds for f in datasources.glob("*.yml") for ds in yaml.safe_load(f.read_text())["datasources"]
    ]
    assert any(ds["type"] == "prometheus" and "prometheus:9090" in ds["url"] for ds in sources)


def test_dockerignore_keeps_local_builds_out_of_the_image() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".venv", "target", ".dev", "**/*.so"):
        assert pattern in ignored
