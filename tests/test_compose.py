"""docker-compose.yml, checked by the loader of `docker compose config` and against the
repository: every container runs code that exists, every secret is required, no development
default reaches a container.

The loader is tools/composecheck (scripts/bootstrap builds it): compose-go at the version
Docker Compose v2.40.3 links, called as its `config` command calls it, so it interpolates,
validates against the Compose Spec schema and normalises exactly as `docker compose config`
does, and prints the same JSON. No Docker engine is needed (docs/adr/0008)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devtools import devstack
from nexuscart import config

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
# Every ${VAR:?message} of the file: compose refuses to run while one is unset or empty.
REQUIRED = sorted(set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text())))
# Profiles of containers run on demand (`docker compose run`), never by `up` alone.
ONE_SHOT_PROFILES = ("admin",)

# `docker compose config` without the rest of Compose: tools/composecheck.
CHECKER = "nexuscart-composecheck"


def _composecheck() -> str:
    gobin = Path(os.environ.get("GOBIN") or Path.home() / "go" / "bin")
    for exe in (shutil.which(CHECKER), str(gobin / CHECKER)):
        if exe and os.access(exe, os.X_OK):
            return exe
    pytest.fail(f"{CHECKER} not found: run scripts/bootstrap (it builds tools/composecheck)")


def compose_config(
    tmp_path: Path,
    values: dict[str, str],
    compose_file: Path = COMPOSE,
    profiles: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """`docker compose config` with exactly ``values`` as the .env file. The process gets no
    other variables (the test session's dev secrets must not leak in) and an explicit
    --env-file (a developer's own .env must not either)."""
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return subprocess.run(
        [
            _composecheck(),
            "--project-directory", str(ROOT),
            "-f", str(compose_file),
            "--env-file", str(env_file),
            "--format", "json",
            *(arg for p in profiles for arg in ("--profile", p)),
        ],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def strong_secrets() -> dict[str, str]:
    values = {var: secrets.token_urlsafe(32) for var in REQUIRED}
    values["STRIPE_API_KEY"] = "sk_test_" + secrets.token_urlsafe(32)  # stripe-mock's form
    return values


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("compose")
    values = strong_secrets()
    # with the on-demand containers (profile "admin": create-admin) checked like the rest
    proc = compose_config(tmp, values, profiles=ONE_SHOT_PROFILES)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    out["x-values"] = values
    return out


def _app_services(resolved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Containers that run our image: built from the Dockerfile or sharing its tag."""
    services: dict[str, dict[str, Any]] = resolved["services"]
    images = {svc.get("image") for svc in services.values() if "build" in svc}
    return {n: s for n, s in services.items() if "build" in s or s.get("image") in images}


def test_the_secrets_are_exactly_the_settings_config_requires_plus_grafana() -> None:
    assert set(REQUIRED) == {*config.SECRET_VARS, "GRAFANA_ADMIN_PASSWORD"}


@pytest.mark.parametrize("var", REQUIRED)
def test_compose_refuses_to_run_without_each_secret(tmp_path: Path, var: str) -> None:
    unset = {k: v for k, v in strong_secrets().items() if k != var}
    for values in (unset, {**unset, var: ""}):
        proc = compose_config(tmp_path, values)
        assert proc.returncode != 0
        assert f"required variable {var} is missing a value" in proc.stderr, proc.stderr
        assert ".env.example" in proc.stderr


def test_every_container_runs_code_that_exists(resolved: dict[str, Any]) -> None:
    modules = {}
    for name, svc in _app_services(resolved).items():
        cmd = svc.get("command") or []
        if cmd[:2] == ["python", "-m"]:
            module = cmd[2]
            assert (ROOT / module.replace(".", "/") / "__main__.py").is_file(), (name, module)
            modules[module] = name
        elif cmd[:1] == ["python"]:
            assert (ROOT / cmd[1]).is_file(), (name, cmd)
        else:
            assert not cmd, f"{name}: unexpected command {cmd}"
            # no command: the image's CMD, Granian serving edge.app:app
            assert "edge.app:app" in (ROOT / "Dockerfile").read_text()
            assert (ROOT / "edge" / "app.py").is_file()
    # and every service in the repo is deployed
    for main in sorted((ROOT / "services").glob("*/__main__.py")):
        assert f"services.{main.parent.name}" in modules, f"services/{main.parent.name}"


def test_redis_keeps_the_same_durability_settings_as_the_local_stack(
    resolved: dict[str, Any], tmp_path: Path
) -> None:
    # every acknowledged write fsynced, the AOF rewritten at the same growth (ADR 0003)
    compose = resolved["services"]["redis"]["command"]
    local = devstack.redis_server(tmp_path).argv
    for flag in ("--appendonly", "--appendfsync", "--auto-aof-rewrite-percentage", "--save"):
        assert compose[compose.index(flag) + 1] == local[local.index(flag) + 1], flag


def test_no_development_default_reaches_a_container(resolved: dict[str, Any]) -> None:
    dev = {v for k, v in config.dev_defaults().items() if k in config.SECRET_VARS}
    values = resolved["x-values"]
    for name, svc in resolved["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            assert value not in dev, f"{name}: {key} is a development default"
            assert value != "admin", f"{name}: {key}"
    for name, svc in _app_services(resolved).items():
        env = svc["environment"]
        for var in config.SECRET_VARS:
            assert env[var] == values[var], f"{name}: {var} does not come from .env"
        # no NEXUSCART_ENV in .env: prod, where the app refuses weak secrets itself
        assert env["NEXUSCART_ENV"] == "prod", name
    grafana = resolved["services"]["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == values["GRAFANA_ADMIN_PASSWORD"]


def test_env_example_documents_every_variable_and_fills_in_no_secret() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    settings = dict(line.split("=", 1) for line in lines if re.match(r"^\w+=", line))
    for var in REQUIRED:
        assert settings.get(var) == "", f".env.example: {var}= must be there and empty"
    assert settings.get("NEXUSCART_ENV") == "prod"
    assert "/.env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_files_mounted_from_the_repo_exist(resolved: dict[str, Any]) -> None:
    for name, svc in resolved["services"].items():
        for volume in svc.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name} mounts missing {volume}"


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ({"bogus": 1}, "additional properties 'bogus' not allowed"),
        ({"restart": 5}, "services.edge.restart must be a string"),
        ({"depends_on": ["no-such-service"]}, 'depends on undefined service "no-such-service"'),
    ],
)
def test_the_checker_rejects_what_docker_compose_config_rejects(
    tmp_path: Path, mistake: dict[str, Any], message: str
) -> None:
    """The checker is more than interpolation: a key the Compose Spec schema does not know,
    a value of the wrong type and a dangling reference each fail, with Compose's message."""
    broken = tmp_path / "docker-compose.yml"
    # the real file with one mistake in the edge service (a JSON value is valid YAML)
    text = COMPOSE.read_text()
    anchor = "\n  edge:\n"
    assert anchor in text
    extra = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in mistake.items())
    broken.write_text(text.replace(anchor, anchor + extra, 1))
    proc = compose_config(tmp_path, strong_secrets(), broken)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_the_first_admin_is_created_on_demand_only(tmp_path: Path) -> None:
    """create-admin (the bootstrap path of admins; no shared admin password) runs only when
    asked for: `docker compose up` alone does not start it."""
    proc = compose_config(tmp_path, strong_secrets())
    assert proc.returncode == 0, proc.stderr
    assert "create-admin" not in json.loads(proc.stdout)["services"]
    proc = compose_config(tmp_path, strong_secrets(), profiles=ONE_SHOT_PROFILES)
    svc = json.loads(proc.stdout)["services"]["create-admin"]
    assert svc["command"][:4] == ["python", "-m", "services.accounts.admin", "create-admin"]
