"""Settings: outside dev, development secrets and short secrets are refused at startup."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexuscart import config

URLS = {"REDIS_URL": "redis://x", "PG_DSN": "postgresql://x", "KAFKA_BOOTSTRAP": "x:1"}


def strong() -> dict[str, str]:
    return {var: secrets.token_urlsafe(32) for var in config.SECRET_VARS}


def test_the_environment_defaults_to_prod() -> None:
    assert config.load({**URLS, **strong()}).app.environment == "prod"


def test_dev_secrets_are_refused_without_an_environment_naming_each_variable() -> None:
    env = {**URLS, **config.dev_defaults()}
    del env["NEXUSCART_ENV"]
    with pytest.raises(config.ConfigError) as err:
        config.load(env)
    message = str(err.value)
    for var in config.SECRET_VARS:
        assert f"{var} is a known development default" in message
        assert env[var] not in message, "the message must never carry a secret"


@pytest.mark.parametrize("environment", ["test", "prod"])
def test_each_dev_secret_is_refused_outside_dev(environment: str) -> None:
    for var in config.SECRET_VARS:
        env = {**URLS, **strong(), "NEXUSCART_ENV": environment}
        env[var] = config.dev_defaults()[var]
        with pytest.raises(config.ConfigError, match=f"{var} is a known development default"):
            config.load(env)


def test_dev_accepts_the_dev_secrets() -> None:
    settings = config.load({**URLS, **config.dev_defaults()})
    assert settings.app.environment == "dev"
    assert settings.auth.jwt_secret == config.dev_defaults()["JWT_SECRET"]


@given(
    var=st.sampled_from(config.SECRET_VARS),
    value=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40),
    environment=st.sampled_from(["test", "prod"]),
)
def test_outside_dev_a_secret_is_accepted_iff_it_has_32_bytes(
    var: str, value: str, environment: str
) -> None:
    env = {**URLS, **strong(), "NEXUSCART_ENV": environment, var: value}
    if len(value.encode()) >= config.MIN_SECRET_BYTES:
        config.load(env)
    else:
        with pytest.raises(config.ConfigError, match=f"{var} is shorter than 32 bytes"):
            config.load(env)


def test_an_unknown_environment_is_refused() -> None:
    with pytest.raises(config.ConfigError, match="NEXUSCART_ENV must be one of dev, test, prod"):
        config.load({**URLS, **strong(), "NEXUSCART_ENV": "production"})


def test_there_is_no_shared_admin_token() -> None:
    """Admins sign in with an account that has the admin role; no static bearer secret."""
    assert "ADMIN_TOKEN" not in {var for var, *_ in config.ENV_VARS}
    assert "ADMIN_TOKEN" not in config.SECRET_VARS
    assert "ADMIN_TOKEN" not in config.dev_defaults()


@pytest.mark.parametrize(("value", "ok"), [("900", True), ("604800", True), ("604801", False)])
def test_jwt_max_ttl_is_at_most_the_time_revocations_are_kept(value: str, ok: bool) -> None:
    env = {**URLS, **config.dev_defaults(), "JWT_MAX_TTL_S": value}
    if ok:
        assert config.load(env).auth.jwt_max_ttl_s == float(value)
    else:
        with pytest.raises(config.ConfigError, match="jwt_max_ttl_s"):
            config.load(env)


def test_recs_training_runs_every_six_hours_by_default() -> None:
    assert config.load({**URLS, **config.dev_defaults()}).recs.train_interval_s == 21_600


@pytest.mark.parametrize(
    ("value", "ok"),
    [("0", True), ("60", True), ("604800", True), ("-1", False), ("604801", False), ("6h", False)],
)
def test_recs_train_interval_is_off_at_zero_and_at_most_a_week(value: str, ok: bool) -> None:
    env = {**URLS, **config.dev_defaults(), "RECS_TRAIN_INTERVAL_S": value}
    if ok:
        assert config.load(env).recs.train_interval_s == int(value)
    else:
        with pytest.raises(config.ConfigError, match="train_interval_s"):
            config.load(env)
