"""Settings from the environment: one struct per concern, loaded once, failing fast.

Every variable the code reads is declared here, in ``ENV_VARS`` (tests keep the README's
configuration table in step with it, and check that docker-compose requires every one of
``SECRET_VARS``).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Annotated, Final

import msgspec


class ConfigError(RuntimeError):
    """Required settings are missing or malformed; the message names every one."""


class RedisSettings(msgspec.Struct, frozen=True):
    url: str
    max_connections: int = 64


class PostgresSettings(msgspec.Struct, frozen=True):
    dsn: str
    pool_min: int = 2
    pool_max: int = 10


class KafkaSettings(msgspec.Struct, frozen=True):
    bootstrap: str
    client_id: str = "nexuscart"


class StripeSettings(msgspec.Struct, frozen=True):
    api_key: str
    webhook_secret: str
    api_base: str | None = None  # stripe-mock in dev/test; None means Stripe itself


class AuthSettings(msgspec.Struct, frozen=True):
    jwt_secret: str
    jwt_issuer: str = "nexuscart"
    # tokens whose exp lies further ahead, or whose exp - iat is longer, are refused; at most
    # 7 days, how long revocations are kept (adapters/revocations.py)
    jwt_max_ttl_s: Annotated[float, msgspec.Meta(gt=0, le=7 * 86_400)] = 86_400.0


class EdgeSettings(msgspec.Struct, frozen=True):
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    dependency_timeout_s: float = 2.0
    max_body_bytes: int = 64 * 1024
    body_timeout_s: float = 5.0  # a body not received in time: 408, the connection closed
    trusted_proxies: str = ""  # comma-separated CIDRs whose X-Forwarded-For is believed
    metrics_dir: str = ""  # where workers share metrics; "" = one per server in the temp dir

    def trusted_networks(self) -> list[str]:
        return [n.strip() for n in self.trusted_proxies.split(",") if n.strip()]


class GateSettings(msgspec.Struct, frozen=True):
    user_rate: float = 5.0
    user_burst: int = 10
    ip_rate: float = 200.0
    ip_burst: int = 400
    max_in_flight: int = 512
    sold_out_refresh_ms: int = 500


class SaleSettings(msgspec.Struct, frozen=True):
    hold_ttl_s: int = 600


class RelaySettings(msgspec.Struct, frozen=True):
    # long enough for a live relay to send a batch, short enough that a dead relay's
    # entries reach Kafka within seconds
    claim_idle_ms: int = 5_000


class AccountsSettings(msgspec.Struct, frozen=True):
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 86_400  # idle lifetime of a session (refresh family)
    # a rotated refresh token presented again this soon gets the same successor (a client
    # that lost the response retries), not a family revocation
    refresh_grace_s: int = 10
    hash_threads: int = 1  # Argon2id threads per edge worker (each hash takes ~19 MiB)
    hash_queue: int = 32  # hashes waiting per worker beyond the threads; then 503
    login_free_failures: int = 5  # per account (normalised email) before the lock starts
    login_ip_free_failures: int = 100  # per client IP
    login_lock_base_s: float = 2.0  # first lock; doubles with each further failure
    login_lock_max_s: float = 900.0
    login_failure_window_s: int = 3600  # failures are forgotten after this much quiet
    login_ip_rate: float = 20.0  # login/register attempts/s per IP (in-process first line)
    login_ip_burst: int = 60


class CatalogSettings(msgspec.Struct, frozen=True):
    # a product page's longest life in a worker's cache: the last resort should a change's
    # announcement be lost with Redis' data (announced changes drop it within milliseconds;
    # the outbox relay re-announces every change); pages expire in its last quarter
    page_ttl_s: float = 300.0
    # product pages (and unknown ids) cached per edge worker: ~1.7 KB each with its headers
    page_cache_max: int = 50_000
    # Redis stock values (a SKU's level and its everyday reservations: two keys) copied per
    # edge worker, kept exact by Redis' invalidation pushes (ADR 0019); ~100 bytes each
    stock_copies_max: int = 500_000


ENVIRONMENTS: Final = ("dev", "test", "prod")


class ObserveSettings(msgspec.Struct, frozen=True):
    metrics_port: int = 0  # a service's /metrics on <metrics_host>:<port>; 0 = none
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in a container, for the Prometheus beside it
    log_format: str = "text"  # "json": one JSON object per line (docs/observability.md)
    access_log_sample: float = 0.0  # share of edge requests logged (one line each)
    trace_sample: float = 0.01  # share of purchases traced (head sampling at the edge)
    trace_export: str = "log"  # "log": span lines in the process's log; "none": no tracing


class CheckoutSettings(msgspec.Struct, frozen=True):
    reservation_ttl_s: Annotated[int, msgspec.Meta(ge=1, le=7 * 86_400)] = 900
    cart_ttl_s: Annotated[int, msgspec.Meta(ge=60, le=90 * 86_400)] = 30 * 86_400


class PaymentsSettings(msgspec.Struct, frozen=True):
    # webhook inbox entries the payments service applies per second at most (0: as fast as it
    # can): a burst is acknowledged at the edge's pace and applied at this one (ADR 0023)
    webhook_apply_rate: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] = 3000.0


class RecsSettings(msgspec.Struct, frozen=True):
    model_dir: str = ".dev/recs/models"  # the registry's version directories
    # how often a serving process reads the active-version pointer (promote/rollback delay)
    model_poll_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0
    # interactions kept in Redis for training (the offline store's recent window)
    log_maxlen: Annotated[int, msgspec.Meta(ge=1000)] = 2_000_000
    # the service trains from the live store this often (0: never); a week at most, since a
    # model older than that is staler than any schedule is meant to allow
    train_interval_s: Annotated[int, msgspec.Meta(ge=0, le=7 * 86_400)] = 6 * 3600
    # the oldest a serving worker's snapshot of which products may be recommended (active,
    # in stock) may be; past it the routes answer 503
    stock_max_age_s: Annotated[float, msgspec.Meta(gt=0, le=10)] = 5.0
    # scripts/server sets it when it loads the demo data: the service then trains and
    # promotes a SYNTHETIC demo model if no version is active
    demo_model: bool = False


class AppSettings(msgspec.Struct, frozen=True):
    # prod unless told otherwise: a forgotten variable must fail closed, not open
    environment: str = "prod"


class Settings(msgspec.Struct, frozen=True):
    redis: RedisSettings
    postgres: PostgresSettings
    kafka: KafkaSettings
    stripe: StripeSettings
    auth: AuthSettings
    edge: EdgeSettings
    gate: GateSettings
    sale: SaleSettings
    app: AppSettings = msgspec.field(default_factory=AppSettings)
    relay: RelaySettings = msgspec.field(default_factory=RelaySettings)
    accounts: AccountsSettings = msgspec.field(default_factory=AccountsSettings)
    catalog: CatalogSettings = msgspec.field(default_factory=CatalogSettings)
    recs: RecsSettings = msgspec.field(default_factory=RecsSettings)
    observe: ObserveSettings = msgspec.field(default_factory=ObserveSettings)
    checkout: CheckoutSettings = msgspec.field(default_factory=CheckoutSettings)
    payments: PaymentsSettings = msgspec.field(default_factory=PaymentsSettings)


# (env var, section, field, required, description)
ENV_VARS: Final[tuple[tuple[str, str, str, bool, str], ...]] = (
    ("REDIS_URL", "redis", "url", True, "Redis URL (stock, holds, carts, outbox stream)"),
    ("REDIS_MAX_CONNECTIONS", "redis", "max_connections", False, "Redis pool size per process"),
    ("PG_DSN", "postgres", "dsn", True, "PostgreSQL (or Citus coordinator) DSN"),
    ("PG_POOL_MIN", "postgres", "pool_min", False, "asyncpg pool minimum"),
    ("PG_POOL_MAX", "postgres", "pool_max", False, "asyncpg pool maximum"),
    ("KAFKA_BOOTSTRAP", "kafka", "bootstrap", True, "Kafka bootstrap servers (host:port,...)"),
    ("KAFKA_CLIENT_ID", "kafka", "client_id", False, "Kafka client id prefix"),
    (
        "STRIPE_API_KEY",
        "stripe",
        "api_key",
        True,
        "Stripe secret key (sk_test_... for stripe-mock)",
    ),
    ("STRIPE_WEBHOOK_SECRET", "stripe", "webhook_secret", True, "Stripe webhook signing secret"),
    ("STRIPE_API_BASE", "stripe", "api_base", False, "Stripe API base URL (stripe-mock)"),
    (
        "PAYMENTS_WEBHOOK_APPLY_RATE",
        "payments",
        "webhook_apply_rate",
        False,
        "webhooks/s the payments service applies at most (0: unpaced); bursts wait in the inbox",
    ),
    ("JWT_SECRET", "auth", "jwt_secret", True, "HS256 secret for buyer JWTs"),
    ("JWT_ISSUER", "auth", "jwt_issuer", False, "expected JWT issuer"),
    (
        "JWT_MAX_TTL_S",
        "auth",
        "jwt_max_ttl_s",
        False,
        "longest accepted token lifetime (s), at most 604800",
    ),
    ("EDGE_HOST", "edge", "host", False, "edge bind address"),
    ("EDGE_PORT", "edge", "port", False, "edge port"),
    ("EDGE_WORKERS", "edge", "workers", False, "Granian worker processes"),
    (
        "DEPENDENCY_TIMEOUT_S",
        "edge",
        "dependency_timeout_s",
        False,
        "timeout for one dependency call before 503",
    ),
    ("MAX_BODY_BYTES", "edge", "max_body_bytes", False, "largest accepted request body"),
    ("BODY_TIMEOUT_S", "edge", "body_timeout_s", False, "seconds to receive a request body (408)"),
    (
        "TRUSTED_PROXIES",
        "edge",
        "trusted_proxies",
        False,
        "CIDRs of load balancers whose X-Forwarded-For names the client (per-IP limits)",
    ),
    (
        "METRICS_DIR",
        "edge",
        "metrics_dir",
        False,
        "directory where edge workers share counters for /metrics (default: per server in /tmp)",
    ),
    ("GATE_USER_RATE", "gate", "user_rate", False, "purchase attempts/s per user"),
    ("GATE_USER_BURST", "gate", "user_burst", False, "burst per user"),
    ("GATE_IP_RATE", "gate", "ip_rate", False, "purchase attempts/s per client IP"),
    ("GATE_IP_BURST", "gate", "ip_burst", False, "burst per client IP"),
    ("GATE_MAX_IN_FLIGHT", "gate", "max_in_flight", False, "Redis calls in flight per sale/worker"),
    (
        "SOLD_OUT_REFRESH_MS",
        "gate",
        "sold_out_refresh_ms",
        False,
        "how often workers re-read sold-out state (bound on re-open delay)",
    ),
    ("HOLD_TTL_S", "sale", "hold_ttl_s", False, "seconds an unpaid hold lives"),
    (
        "CHECKOUT_RESERVATION_TTL_S",
        "checkout",
        "reservation_ttl_s",
        False,
        "seconds an unpaid everyday order keeps its stock reserved",
    ),
    ("CART_TTL_S", "checkout", "cart_ttl_s", False, "seconds of inactivity before a cart expires"),
    (
        "RELAY_CLAIM_IDLE_MS",
        "relay",
        "claim_idle_ms",
        False,
        "ms an outbox entry may stay unacknowledged with one relay before another takes it over",
    ),
    ("ACCESS_TOKEN_TTL_S", "accounts", "access_token_ttl_s", False, "access token lifetime (s)"),
    (
        "REFRESH_TOKEN_TTL_S",
        "accounts",
        "refresh_token_ttl_s",
        False,
        "a session (refresh-token family) ends after this many seconds unused",
    ),
    (
        "REFRESH_GRACE_S",
        "accounts",
        "refresh_grace_s",
        False,
        "a retried refresh with the just-rotated token gets the same successor this long (s)",
    ),
    (
        "PASSWORD_HASH_THREADS",
        "accounts",
        "hash_threads",
        False,
        "Argon2id hashing threads per edge worker (niced, off the event loop)",
    ),
    (
        "PASSWORD_HASH_QUEUE",
        "accounts",
        "hash_queue",
        False,
        "password hashes allowed to wait per worker; beyond it login/register answer 503",
    ),
    (
        "LOGIN_FREE_FAILURES",
        "accounts",
        "login_free_failures",
        False,
        "login attempts per account before the lock (counted before the password check)",
    ),
    (
        "LOGIN_IP_FREE_FAILURES",
        "accounts",
        "login_ip_free_failures",
        False,
        "failed login attempts per client IP before the lock",
    ),
    (
        "LOGIN_LOCK_BASE_S",
        "accounts",
        "login_lock_base_s",
        False,
        "first login lock (s); doubles with each further failure",
    ),
    ("LOGIN_LOCK_MAX_S", "accounts", "login_lock_max_s", False, "longest login lock (s)"),
    (
        "LOGIN_FAILURE_WINDOW_S",
        "accounts",
        "login_failure_window_s",
        False,
        "failure counts are forgotten after this many seconds without an attempt",
    ),
    (
        "LOGIN_IP_RATE",
        "accounts",
        "login_ip_rate",
        False,
        "login/register requests/s per client IP (in-process GCRA)",
    ),
    ("LOGIN_IP_BURST", "accounts", "login_ip_burst", False, "burst of LOGIN_IP_RATE"),
    (
        "CATALOG_PAGE_TTL_S",
        "catalog",
        "page_ttl_s",
        False,
        "longest life (s) of a cached product page (a change's announcement lost)",
    ),
    (
        "CATALOG_PAGE_CACHE_MAX",
        "catalog",
        "page_cache_max",
        False,
        "product pages cached per edge worker",
    ),
    (
        "CATALOG_STOCK_COPIES_MAX",
        "catalog",
        "stock_copies_max",
        False,
        "Redis stock values copied per edge worker (kept exact by invalidation pushes)",
    ),
    (
        "METRICS_PORT",
        "observe",
        "metrics_port",
        False,
        "a service's Prometheus /metrics port on 127.0.0.1 (0: none; not the edge's)",
    ),
    (
        "METRICS_HOST",
        "observe",
        "metrics_host",
        False,
        "address a service's /metrics binds (0.0.0.0 in containers)",
    ),
    ("LOG_FORMAT", "observe", "log_format", False, "text or json (one JSON object per line)"),
    (
        "ACCESS_LOG_SAMPLE",
        "observe",
        "access_log_sample",
        False,
        "share of edge requests logged, one line each (0 to 1)",
    ),
    ("RECS_MODEL_DIR", "recs", "model_dir", False, "recommendation model registry directory"),
    (
        "RECS_MODEL_POLL_S",
        "recs",
        "model_poll_s",
        False,
        "how often serving processes check the active recommendation model (s)",
    ),
    (
        "RECS_LOG_MAXLEN",
        "recs",
        "log_maxlen",
        False,
        "interactions kept in Redis for training the recommendations",
    ),
    (
        "RECS_TRAIN_INTERVAL_S",
        "recs",
        "train_interval_s",
        False,
        "the recommendations service trains from the live store this often (s; 0: never)",
    ),
    (
        "RECS_STOCK_MAX_AGE_S",
        "recs",
        "stock_max_age_s",
        False,
        "oldest age (s) of a recommendation worker's in-stock snapshot before it answers 503",
    ),
    (
        "RECS_DEMO_MODEL",
        "recs",
        "demo_model",
        False,
        "1: train and promote a SYNTHETIC demo model when none is active (scripts/server)",
    ),
    (
        "TRACE_SAMPLE",
        "observe",
        "trace_sample",
        False,
        "share of purchases traced end to end (0 to 1)",
    ),
    ("TRACE_EXPORT", "observe", "trace_export", False, "log (span lines in each log) or none"),
    (
        "NEXUSCART_ENV",
        "app",
        "environment",
        False,
        "dev, test or prod; outside dev, known dev secrets and secrets under 32 bytes are refused",
    ),
)

# Credentials checked outside dev: each must be at least MIN_SECRET_BYTES and none of the
# development defaults (which are public: they are in this file and in the README).
SECRET_VARS: Final = ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET", "JWT_SECRET")
MIN_SECRET_BYTES: Final = 32


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ``env`` (default: os.environ); raise ConfigError naming every gap."""
    env = os.environ if env is None else env
    sections: dict[str, dict[str, str]] = {}
    missing = []
    for var, section, name, required, _ in ENV_VARS:
        value = env.get(var)
        if value is None or value == "":
            if required:
                missing.append(var)
            continue
        sections.setdefault(section, {})[name] = value
    if missing:
        raise ConfigError("missing required environment variables: " + ", ".join(missing))
    for section in ("edge", "gate", "sale", "app"):
        sections.setdefault(section, {})
    try:
        # strict=False lets "8000" become 8000; unknown/malformed values raise ValidationError
        settings = msgspec.convert(sections, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc
    for net in settings.edge.trusted_networks():
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as exc:
            raise ConfigError(f"invalid setting: TRUSTED_PROXIES: {exc}") from exc
    check_secrets(settings.app.environment, env)
    return settings


def observe(env: Mapping[str, str] | None = None) -> ObserveSettings:
    """The observability settings alone: a process sets up its logs and metrics with them
    before (and whether or not) the rest of its settings load."""
    env = os.environ if env is None else env
    values = {
        name: env[var] for var, sec, name, *_ in ENV_VARS if sec == "observe" and env.get(var)
    }
    try:
        return msgspec.convert(values, ObserveSettings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc


def check_secrets(environment: str, env: Mapping[str, str]) -> None:
    """Outside dev, refuse development defaults and short secrets; name the variables, never
    the values (the message ends up in logs)."""
    if environment not in ENVIRONMENTS:
        raise ConfigError(
            f"invalid setting: NEXUSCART_ENV must be one of {', '.join(ENVIRONMENTS)}, "
            f"not {environment!r}"
        )
    if environment == "dev":
        return
    known = set(_DEV_SECRETS.values())
    problems = []
    for var in SECRET_VARS:
        value = env.get(var, "")
        if value in known:
            problems.append(f"{var} is a known development default")
        elif len(value.encode()) < MIN_SECRET_BYTES:
            problems.append(f"{var} is shorter than {MIN_SECRET_BYTES} bytes")
    if problems:
        raise ConfigError(
            f"refusing to start with NEXUSCART_ENV={environment}: "
            + "; ".join(problems)
            + " (set NEXUSCART_ENV=dev only on a development machine)"
        )


_DEV_SECRETS: Final = {
    "STRIPE_API_KEY": "sk_test_123",
    "STRIPE_WEBHOOK_SECRET": "whsec_dev_secret",
    "JWT_SECRET": "dev-jwt-secret-change-me",
}


# The admin devtools.seed creates for scripts/server (README: log in with these). Public like
# the secrets above: the create-admin command refuses this password outside dev.
DEV_ADMIN_EMAIL: Final = "admin@nexuscart.dev"
DEV_ADMIN_PASSWORD: Final = "dev-admin-password-change-me"


def dev_defaults() -> dict[str, str]:
    """What the local stack and the tests run with: NEXUSCART_ENV=dev and public development
    secrets, which load() refuses in any other environment."""
    return {"NEXUSCART_ENV": "dev", **_DEV_SECRETS}
