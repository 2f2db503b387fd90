"""Composition root of the edge process: settings, clients, the gate, the token verifier and
the use cases, built once per worker (``build``); the handlers only use what is here."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import asyncpg
import redis.asyncio as aioredis

from nexuscart import _core, config
from nexuscart.adapters import kafka, postgres, redis_conn, reservations
from nexuscart.adapters.carts import CartStore
from nexuscart.adapters.catalog_repo import CatalogRepo
from nexuscart.adapters.catalog_store import CatalogStore
from nexuscart.adapters.flash_sales import FlashSaleStore
from nexuscart.adapters.key_mirror import KeyMirror
from nexuscart.adapters.orders_repo import OrdersRepo
from nexuscart.adapters.payments_inbox import WebhookInbox
from nexuscart.adapters.payments_repo import PaymentsRepo
from nexuscart.adapters.payments_stripe import StripeProvider
from nexuscart.adapters.promotions import PromotionsRepo
from nexuscart.adapters.recs_registry import ModelRegistry
from nexuscart.adapters.recs_signals import SignalPublisher
from nexuscart.adapters.recs_store import ExperimentStore, RecsStore
from nexuscart.adapters.redis_pipe import RedisPipe
from nexuscart.adapters.reservations import ReservationStore
from nexuscart.adapters.revocations import RevocationFeed
from nexuscart.app.accounts import Accounts
from nexuscart.app.accounts import build as build_accounts
from nexuscart.app.cart import Carts
from nexuscart.app.catalog import Catalog, ChangeFeed, PageCache
from nexuscart.app.checkout import Checkout
from nexuscart.app.flash_sales import FlashSales
from nexuscart.app.orders import Orders
from nexuscart.app.payments import Payments
from nexuscart.app.promotions import Promotions
from nexuscart.app.recommendations import Experiments, Recommender
from nexuscart.app.search import Search
from nexuscart.tasks import stop
from nexuscart.web import Metrics

PROBE_EVERY_S: Final = 0.5
STALE_AFTER_S: Final = 1.0  # an older answer says nothing about now: the dependency is down


class Probes:
    """Dependencies probed in the background, one probe at a time per dependency and worker;
    /readyz answers from the last results without any I/O (a flood of probes costs nothing
    and cannot exhaust the pools the purchase path uses)."""

    def __init__(self, checks: Mapping[str, Callable[[], Awaitable[object]]], timeout_s: float):
        self.checks = dict(checks)
        self.timeout_s = timeout_s
        self.answers: dict[str, tuple[float, str]] = {}  # name -> (monotonic time, verdict)

    async def run(self) -> None:
        await asyncio.gather(*(self._probe(name, check) for name, check in self.checks.items()))

    async def _probe(self, name: str, check: Callable[[], Awaitable[object]]) -> None:
        while True:
            started = time.monotonic()
            try:
                await asyncio.wait_for(check(), self.timeout_s)
                verdict = "ok"
            except Exception as exc:  # any failure is "down"; the type names it
                verdict = f"down: {type(exc).__name__}"
            self.answers[name] = (time.monotonic(), verdict)
            await asyncio.sleep(max(0.0, PROBE_EVERY_S - (time.monotonic() - started)))

    def status(self, now: float | None = None) -> dict[str, str]:
        """Each dependency's verdict; one older than STALE_AFTER_S (a probe hanging, or none
        yet) is down."""
        now = time.monotonic() if now is None else now
        out: dict[str, str] = {}
        for name in self.checks:
            answer = self.answers.get(name)
            if answer is None:
                out[name] = "down: not probed yet"
            elif now - answer[0] > STALE_AFTER_S:
                out[name] = f"down: no answer for {now - answer[0]:.1f} s"
            else:
                out[name] = answer[1]
        return out


@dataclass
class Deps:
    settings: config.Settings
    redis: aioredis.Redis
    verifier: _core.TokenVerifier
    flash_sales: FlashSales
    accounts: Accounts
    catalog: Catalog
    pg: asyncpg.Pool | None = None
    metrics: Metrics = field(default_factory=Metrics)  # the App's (handlers count into it)
    # this worker's search index (built at start, then following catalog.v1)
    search: Search = field(default_factory=Search)
    # the active recommendation model and its live signals (set by build)
    recommender: Recommender = field(init=False)
    recs_signals: SignalPublisher = field(init=False)  # views and add-to-carts to Kafka
    payments: Payments | None = None  # set by build (the webhook, the buyer's payment, refunds)
    carts: Carts = field(init=False)  # set by build (carts, checkout, promotions)
    checkout: Checkout = field(init=False)
    promotions: Promotions = field(init=False)
    orders: Orders | None = None  # set by build (order views, fulfilment, cancellation)
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # run by close(), in order; an awaitable result is awaited (an async client's aclose)
    closers: list[Callable[[], object]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _pg_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _kafka: kafka.MetadataProbe | None = field(default=None, repr=False)
    probes: Probes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        timeout = self.settings.edge.dependency_timeout_s
        self._kafka = kafka.MetadataProbe(self.settings.kafka.bootstrap, timeout)
        checks = {
            "redis": self.check_redis,
            "postgres": self.check_postgres,
            "kafka": self._kafka.check,
        }
        self.probes = Probes(checks, timeout)

    async def start(self) -> None:
        # The pool is created lazily by pg_pool(): the edge must start (and answer /readyz
        # with 503) while PostgreSQL is down.
        jobs = [*self.background, self.probes.run]
        self.tasks = [asyncio.ensure_future(job()) for job in jobs]

    async def pg_pool(self) -> asyncpg.Pool:
        if self.pg is None:
            # concurrent first callers (a burst at start, the readiness probe) share one pool
            async with self._pg_lock:
                if self.pg is None:
                    self.pg = await postgres.create_pool(
                        self.settings.postgres, self.settings.edge.dependency_timeout_s
                    )
        return self.pg

    async def close(self) -> None:
        await stop(*self.tasks)
        for closer in self.closers:
            done = closer()
            if inspect.isawaitable(done):
                await done
        if self._kafka is not None:
            await self._kafka.close()
        await self.redis.aclose()
        if self.pg is not None:
            await self.pg.close()

    async def check_redis(self) -> None:
        await self.redis.ping()

    async def check_postgres(self) -> None:
        pool = await self.pg_pool()
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")


def build(settings: config.Settings | None = None) -> Deps:
    settings = settings or config.load()
    s = settings
    timeout = s.edge.dependency_timeout_s
    client = redis_conn.connect(s.redis, timeout)
    gate = _core.Gate(
        s.gate.user_rate, s.gate.user_burst, s.gate.ip_rate, s.gate.ip_burst, s.gate.max_in_flight
    )
    # the purchase path's lean pipelined connection; the rest of the store uses the pool
    store = FlashSaleStore(client, RedisPipe(s.redis.url, timeout))

    async def pg() -> asyncpg.Pool:  # made lazily, once, by Deps (built just below)
        return await deps.pg_pool()

    metrics = Metrics()
    flash_sales = FlashSales(
        store,
        gate,
        pg,
        default_hold_ttl_s=s.sale.hold_ttl_s,
        sold_out_refresh_s=s.gate.sold_out_refresh_ms / 1000,
        counters=metrics.counters,
    )
    accounts = build_accounts(s, client, pg)
    # the catalog's hot reads (stock MGETs) share a lean pipelined connection per worker,
    # which keeps a copy of what it read, exact by Redis' invalidation pushes (ADR 0019)
    stock_copies = KeyMirror(
        s.catalog.stock_copies_max,
        on_invalidated=lambda n: metrics.inc("catalog_stock_copies_dropped_total", by=n),
    )
    catalog_pipe = RedisPipe(
        s.redis.url, timeout, tracking=(stock_copies.invalidate, stock_copies.reset)
    )
    # the shared pages' reads (ADR 0020): a lean connection of their own, not tracked
    pages_pipe = RedisPipe(s.redis.url, timeout)
    # live stock reads answer what is available: less what everyday orders reserved or sold
    catalog_store = CatalogStore(
        client,
        catalog_pipe,
        held=(reservations.level_key, reservations.held_units),
        mirror=reservations.ReservationStore(client).mirror_levels,
        copies=stock_copies,
        plain=pages_pipe,
    )
    page_cache = PageCache(s.catalog.page_ttl_s, s.catalog.page_cache_max)
    catalog = Catalog(
        CatalogRepo(pg),
        catalog_store,
        page_cache,
        on_stock_low=lambda: metrics.inc("catalog_stock_low_total"),
        on_page_built=lambda source: metrics.inc("catalog_page_builds_total", source),
    )
    # the edge calls Stripe only for refunds: fail fast (one attempt per request, the client
    # retries with its Idempotency-Key; the sweeper finishes the rest)
    stripe = StripeProvider(s.stripe, timeout_s=timeout, attempts=1, retry_budget_s=timeout)
    payments_pipe = RedisPipe(s.redis.url, timeout)
    deps = Deps(
        settings=settings,
        redis=client,
        verifier=_core.TokenVerifier(
            s.auth.jwt_secret, s.auth.jwt_issuer, max_ttl_s=s.auth.jwt_max_ttl_s
        ),
        flash_sales=flash_sales,
        accounts=accounts,
        catalog=catalog,
        metrics=metrics,
        # webhooks are recorded in the payments inbox (the service applies them): their own
        # lean pipelined connection per worker
        payments=Payments(
            PaymentsRepo(pg),
            stripe,
            s.stripe.webhook_secret,
            inbox=WebhookInbox(client, payments_pipe),
        ),
    )
    deps.closers += [stripe.aclose, payments_pipe.close]
    deps.orders = Orders(OrdersRepo(pg), ReservationStore(client), deps.payments)
    deps.promotions = Promotions(PromotionsRepo(pg, client))
    # carts and checkouts: their own lean pipelined connection per worker
    checkout_pipe = RedisPipe(s.redis.url, timeout)
    deps.carts = Carts(CartStore(client, s.checkout.cart_ttl_s, pipe=checkout_pipe), catalog)
    deps.checkout = Checkout(
        deps.carts,
        reservations.ReservationStore(client, pipe=checkout_pipe),
        deps.promotions,
        CatalogRepo(pg),
        s.checkout.reservation_ttl_s,
    )
    deps.closers.append(checkout_pipe.close)
    deps.background.append(flash_sales.watch.run)
    # per-user token revocations, followed in the background: no Redis call per request
    # (each blocking read well inside the client's socket timeout)
    block_ms = max(10, int(min(1.0, timeout / 2) * 1000))  # 0 would block forever
    deps.background.append(RevocationFeed(client, deps.verifier, block_ms=block_ms).run)
    deps.background.append(_search_follower(deps, pg))
    registry = ModelRegistry(s.recs.model_dir, client)
    # recommendation reads: their own lean pipelined connection per worker
    recs_pipe = RedisPipe(s.redis.url, timeout)
    deps.closers.append(recs_pipe.close)
    deps.recommender = Recommender(
        RecsStore(client, s.recs.log_maxlen, pipe=recs_pipe),
        registry,
        s.recs.model_poll_s,
        Experiments(ExperimentStore(client), registry),
        s.recs.stock_max_age_s,
        deps.carts.products_in,
    )
    deps.background.append(deps.recommender.follow)  # the model pointer, polled
    deps.recs_signals = SignalPublisher(
        s.kafka,
        deps.verifier.principal,
        kafka.producer,
        on_dropped=lambda n: metrics.inc("recs_views_dropped_total", by=n),
    )
    deps.background.append(deps.recs_signals.run)
    # product pages stay cached only while this follows the change stream
    deps.background.append(ChangeFeed(catalog_store, page_cache, block_ms=block_ms).run)
    deps.closers.append(store.close)
    deps.closers.append(catalog_pipe.close)
    deps.closers.append(pages_pipe.close)
    deps.closers.append(accounts.close)
    return deps


def _search_follower(
    deps: Deps, pg: Callable[[], Awaitable[asyncpg.Pool]]
) -> Callable[[], Awaitable[None]]:
    # imported here: the follower lives with the services (it is a ConsumerLoop)
    from nexuscart.adapters.search_source import PgCatalogSource
    from services.search.follower import follow

    async def job() -> None:
        await follow(deps.settings, deps.search, PgCatalogSource(pg), asyncio.Event())

    return job
