"""Recommendation use cases: the live signals the service applies from Kafka
(docs/recommendations.md).

Exact signals: orders (StockReserved, OrderPlaced), refunds (PaymentRefunded) and
add-to-carts; sampled: product views (the edge batches them per worker and may lose a
batch with its worker).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence, Set
from datetime import datetime
from typing import Annotated, Any, Final, Literal, NamedTuple

import msgspec

from nexuscart import events, tasks
from nexuscart.adapters.recs_store import Cursors, ExperimentStore, Item, Live, RecsStore, Signal
from nexuscart.app.errors import Refused, Unavailable, redis_errors
from nexuscart.domain import recs as rules

AnyEvent = events.Event | events.CatalogEvent | events.InteractionEvent


class RecsEnvelope(msgspec.Struct, frozen=True):
    """An envelope of orders.v1, catalog.v1 or interactions.v1: the topics the service
    reads (their event tags are distinct)."""

    id: uuid.UUID
    type: str
    version: int
    occurred_at: datetime
    key: str
    data: AnyEvent


_decoder: Final = msgspec.json.Decoder(RecsEnvelope)
TOPICS: Final = (events.ORDERS_TOPIC, events.CATALOG_TOPIC, events.INTERACTIONS_TOPIC)


def decode(raw: bytes) -> RecsEnvelope:
    return _decoder.decode(raw)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def each_signal(batch: Iterable[RecsEnvelope]) -> Iterable[RecsEnvelope]:
    """The batch with every ``ProductsViewed`` and ``AddedToCarts`` record as its items, each
    in an envelope of its own stable id (``events.item_id``), so a redelivered record counts
    each item once."""
    for e in batch:
        d = e.data
        items: Sequence[events.ProductViewed | events.AddedToCart]
        if isinstance(d, events.ProductsViewed):
            items = [events.ProductViewed(v.user_id, v.product_id, v.at_ms) for v in d.views]
        elif isinstance(d, events.AddedToCarts):
            items = d.adds
        else:
            yield e
            continue
        for i, item in enumerate(items):
            yield msgspec.structs.replace(
                e, id=events.item_id(e.id, i), type=type(item).__name__, data=item
            )


class RecsSignals:
    def __init__(
        self, store: RecsStore, consumable_categories: Set[int] = frozenset(),
        experiments: ExperimentStore | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.consumable = consumable_categories
        self.experiments = experiments
        self.unknown_skus = 0  # flash-sale orders of SKUs catalog.v1 never named

    async def _outcomes(self, pending: Sequence[tuple[RecsEnvelope, list[int]]]) -> None:
        """Views (clicks when shown), add-to-carts and orders of exposed users."""
        assert self.experiments is not None
        raw = await self.experiments.current()
        if raw is None:
            return
        exp = _exp_decoder.decode(raw)
        for e, pids in pending:
            d = e.data
            if isinstance(d, events.ProductViewed) and d.user_id is not None:
                args = (d.user_id, "view", pids, 0.0, d.at_ms)
            elif isinstance(d, events.AddedToCart):
                args = (d.user_id, "cart", pids, 0.0, d.at_ms)
            elif isinstance(d, events.OrderPlaced):
                args = (d.user_id, "order", pids, float(d.total_minor), _ms(e.occurred_at))
            elif isinstance(d, events.StockReserved):
                revenue = float(d.unit_price_cents * d.quantity)
                args = (d.user_id, "order", pids, revenue, _ms(e.occurred_at))
            else:
                continue
            await self.experiments.outcome(exp.key, *args, exp.window_s)

    async def handle(self, records: Sequence[RecsEnvelope]) -> None:
        batch = list(each_signal(records))
        items = [
            Item(
                e.data.product.product_id,
                e.data.product.category_id,
                e.data.product.status,
                [v.sku for v in e.data.product.variants],
                e.data.product.category_id in self.consumable,
            )
            for e in batch
            if isinstance(
                e.data, events.ProductCreated | events.ProductUpdated | events.ProductArchived
            )
        ]
        if items:
            await self.store.put_items(items)
        skus = [e.data.sku for e in batch if isinstance(e.data, events.StockReserved)]
        sku_pid = dict(zip(skus, await self.store.products_of_skus(skus), strict=True))
        pending: list[tuple[RecsEnvelope, list[int]]] = []
        refunds: list[RecsEnvelope] = []
        for e in batch:
            d = e.data
            if isinstance(d, events.OrderPlaced):
                pending.append((e, [ln.product_id for ln in d.lines]))
            elif isinstance(d, events.StockReserved):
                pid = sku_pid.get(d.sku)
                if pid is None:
                    self.unknown_skus += 1
                else:
                    pending.append((e, [pid]))
            elif isinstance(d, events.ProductViewed | events.AddedToCart):
                pending.append((e, [d.product_id]))
            elif isinstance(d, events.PaymentRefunded):
                refunds.append(e)
        cats = await self.store.categories([p for _, ps in pending for p in ps])
        signals: list[Signal] = []
        at = 0
        for e, pids in pending:
            c = cats[at : at + len(pids)]
            at += len(pids)
            d = e.data
            if isinstance(d, events.ProductViewed):
                s = Signal(str(e.id), "view", d.at_ms, d.user_id, pids, c)
            elif isinstance(d, events.AddedToCart):
                s = Signal(str(e.id), "cart", d.at_ms, d.user_id, pids, c)
            elif isinstance(d, events.OrderPlaced | events.StockReserved):
                s = Signal(str(e.id), "order", _ms(e.occurred_at), d.user_id, pids, c,
                           d.order_id)  # fmt: skip
            else:
                continue
            signals.append(s)
        await self.store.apply(signals)
        if self.experiments is not None:
            await self._outcomes(pending)
        for e in refunds:
            assert isinstance(e.data, events.PaymentRefunded)
            await self.store.refund(str(e.id), e.data.order_id)


# --- serving ---------------------------------------------------------------------------------


class Contribution(msgspec.Struct, frozen=True):
    feature: str
    value: float  # the feature's share of the item's ranker score (TreeSHAP)


class Recommendation(msgspec.Struct, frozen=True):
    product_id: int
    score: float
    reason: str
    contributions: list[Contribution] | None = None


class Recommendations(msgspec.Struct, frozen=True):
    items: list[Recommendation]
    model_version: str | None
    context: str


class ModelInfo(msgspec.Struct, frozen=True):
    version: str
    active: bool
    metrics: dict[str, float]
    data: dict[str, float | str]  # what it was trained on (SYNTHETIC: labelled so)


class ModelList(msgspec.Struct, frozen=True):
    active: str | None
    models: list[ModelInfo]


class Promote(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")]


class ModelChange(msgspec.Struct, frozen=True):
    active: str | None
    previous: str | None


_REASONS: Final = {
    "cobuy": "bought together with {seed}",
    "covis": "viewed together with {seed}",
    "trend": "popular in this category now",
}
POOL_POPULAR: Final = 20  # the cold-start list: the model's bestsellers
# a request's live reads: the neighbours of the 3 most recent items, 10 each; k + k/2
# products kept at most, k/2 of them live neighbours
SEED_RECENT: Final = 3
SEED_NEIGHBOURS: Final = 10
SEED_CART: Final = 5  # a cart's main products that seed its recommendations
EXPLAIN_TOP: Final = 3


class Served(NamedTuple):
    """The shopper's recent items and the kept candidates with their live scores (viewed
    together, bought together, trending), in the order they were kept."""

    recent: list[int]
    items: list[tuple[int, float, float, float]]


# --- what may be recommended: each worker's snapshot ----------------------------------------

# a product checked costs ~10-20 us of Redis (one script blocks Redis for the whole read):
# reads stay near a few ms even when many products change at once
SWEEP_LOAD: Final = 200  # products per read while loading
SWEEP_MIN: Final = 20
SWEEP_S: Final = 600.0  # every product re-read this often (restocks by released reservations)
MAX_CHANGES: Final = 500  # changes per source per read


class Availability:
    """The products this worker may recommend: active and available (an SKU with stock
    left after the checkout's reservations and sales), and which of them are consumables.
    A snapshot kept current by one Redis read every ``max_age_s / 8``: the products the
    catalog, the recommendation service's records and the checkout's sell-outs announced
    since the last read, plus a slice of every product (each swept every ``sweep_s``).

    Staleness bound: an answer uses the snapshot only while the last read that caught up
    with every source started at most ``max_age_s`` ago; otherwise ``check`` raises
    Unavailable (503). So a change announced more than ``max_age_s`` before an answer is in
    it. Every product in the snapshot was checked after the sources' cursors were taken, so
    this holds from the first read; until the first whole sweep (``loaded``) the snapshot
    only lacks products (fewer items answered, none wrong). Restocks that come back through
    a released reservation are not announced: the sweep brings them back (an item may be
    left out for up to ``sweep_s``, never wrongly shown)."""

    def __init__(self, store: RecsStore, max_age_s: float = 1.0, sweep_s: float = SWEEP_S) -> None:
        self.store = store
        self.max_age_s = max_age_s
        # several reads per bound: a worker busy with requests may wake late for one
        self.poll_s = max_age_s / 8
        self.sweep_s = sweep_s
        self.allowed: set[int] = set()
        self.consumable: set[int] = set()
        self.fresh_at = float("-inf")  # monotonic start of the last read that caught up
        self.loaded = False  # a whole round of the sweep since the start
        self._cursors = Cursors()
        self._sweep = "0"
        self._round = 0  # products in the current round of the sweep
        self._total = 0  # products in the last whole round

    def check(self) -> None:
        if time.monotonic() - self.fresh_at > self.max_age_s:
            raise Unavailable("redis")

    async def poll(self) -> bool:
        """One read; whether it caught up with every source (no change left unread)."""
        count = (
            max(SWEEP_MIN, int(self._total * self.poll_s / self.sweep_s))
            if self.loaded
            else SWEEP_LOAD
        )
        got = await self.store.availability(self._cursors, self._sweep, count, MAX_CHANGES)
        self._cursors = got.cursors
        if got.gap:
            # changes were lost: what the snapshot holds may be stale; start again empty
            self.allowed, self.consumable = set(), set()
            self.loaded, self._sweep, self._round = False, "0", 0
            return False
        allowed, consumable = self.allowed, self.consumable
        for pid, flag in got.flags:
            if flag:
                allowed.add(pid)
            else:
                allowed.discard(pid)
            if flag == 2:
                consumable.add(pid)
            else:
                consumable.discard(pid)
        self._round += len(got.flags)
        self._sweep = got.sweep
        if got.sweep == "0":
            self.loaded, self._total, self._round = True, self._round, 0
        return not got.more

    async def run(self) -> None:
        log = logging.getLogger("nexuscart.recommendations")
        while True:
            started = time.monotonic()
            try:
                caught_up = await self.poll()
            except Exception as exc:  # the snapshot ages; answers refuse past max_age_s
                log.warning("recommendation availability read failed: %r", exc)
                await asyncio.sleep(self.poll_s)
                continue
            if caught_up:
                self.fresh_at = started
            if caught_up and self.loaded:
                await asyncio.sleep(self.poll_s)
            else:
                await asyncio.sleep(0)  # more to read: at once, but let requests in


def select(
    live: Live, avail: Availability, context: Sequence[int], pool: Sequence[int], want: int,
    want_live: int,
) -> list[tuple[int, float, float, float]]:  # fmt: skip
    """Candidates in this order: the bought-together and viewed-together neighbours of the
    context products and of the recent items (``want_live`` at most), ``pool`` (best
    first), then trending in the seeds' categories, until ``want`` are kept. Kept only when
    the snapshot allows them, not a context product (the page's, the cart's) and not bought
    unless consumable. Live scores are reciprocal ranks: a neighbour at rank r of a seed of
    weight w (a context product 2, the n-th recent item 1/n) adds w / r."""
    allowed, consumable, bought = avail.allowed, avail.consumable, live.bought
    score: dict[int, list[float]] = {}  # id -> [covis, cobuy, trend], first seen first
    weights = [2.0] * len(context) + [1.0 / r for r in range(1, len(live.recent) + 1)]
    for w, covis, cobuy in zip(weights, live.covis, live.cobuy, strict=True):
        for kind, ids in ((0, covis), (1, cobuy)):
            for rank, pid in enumerate(ids, 1):
                s = score.get(pid)
                if s is None:
                    s = score[pid] = [0.0, 0.0, 0.0]
                s[kind] += w / rank
    out: list[tuple[int, float, float, float]] = []
    seen = set(context)

    def walk(ids: Iterable[int], limit: int) -> None:
        for pid in ids:
            if len(out) >= limit:
                return
            if pid in seen:
                continue
            seen.add(pid)
            if pid in allowed and (pid not in bought or pid in consumable):
                s = score.get(pid)
                out.append((pid, s[0], s[1], s[2]) if s else (pid, 0.0, 0.0, 0.0))

    walk(score, min(want_live, want))
    walk(pool, want)
    for ids in live.trend:
        for pid in ids:
            score.setdefault(pid, [0.0, 0.0, 1.0])
        walk(ids, want)
    return out


class Recommender:
    """Answers from the active model (held per process, reloaded when the pointer in Redis
    changes) blended with the live signals of one Redis call (``RecsStore.serve``)."""

    def __init__(
        self, store: RecsStore, registry: Any, poll_s: float = 1.0,
        experiments: Experiments | None = None, stock_max_age_s: float = 1.0,
        cart_products: Callable[[int, int], Awaitable[list[int]]] | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        # the shopper's cart's main products (app.cart.Carts.products_in, the cart's owner)
        self.cart_products = cart_products
        self.registry = registry
        self.poll_s = poll_s
        self.experiments = experiments
        self.availability = Availability(store, stock_max_age_s)
        self.model: Any = None  # services.recommendations.serving.Loaded, or None
        self.experiment: Experiment | None = None
        self.arm_models: dict[str, Any] = {}  # the versions the experiment's arms name
        self._exposures: set[asyncio.Task[None]] = set()

    async def follow(self) -> None:
        """Keep the availability snapshot current; poll the active-version pointer and load
        a new version off the event loop."""
        snapshot = asyncio.ensure_future(self.availability.run())
        try:
            await self._follow_model()
        finally:
            await tasks.stop(snapshot)

    async def _follow_model(self) -> None:
        from services.recommendations import serving

        log = logging.getLogger("nexuscart.recommendations")
        while True:
            try:
                version = await self.registry.active()
                current = self.model.version if self.model is not None else None
                if version != current:
                    self.model = (
                        None
                        if version is None
                        else await asyncio.to_thread(serving.load, self.registry, version)
                    )
                    log.info("recommendation model %s active", version)
                if self.experiments is not None:
                    exp = await self.experiments.current()
                    wanted = (
                        {a.model_version for a in exp.arms if a.model_version} if exp else set()
                    )
                    for v in wanted - set(self.arm_models):
                        self.arm_models[v] = await asyncio.to_thread(serving.load, self.registry, v)
                    for v in set(self.arm_models) - wanted:
                        del self.arm_models[v]
                    self.experiment = exp
            except Exception as exc:  # keep serving the model it has
                log.warning("recommendation model check failed: %r", exc)
            await asyncio.sleep(self.poll_s)

    async def candidates(
        self, user_id: int, context: Sequence[int], pool: Sequence[int], want: int,
        want_live: int,
        n_recent: int = 5, n_neighbours: int = 20,
    ) -> Served:  # fmt: skip
        """The live neighbours and ``pool`` filtered by the worker's availability snapshot
        and the shopper's bought items (``select``): one Redis call."""
        avail = self.availability
        avail.check()
        allowed = avail.allowed
        pool = [p for p in pool if p in allowed]
        with redis_errors():
            live = await self.store.serve(
                user_id, context, pool if user_id else (), n_recent, n_neighbours,
                0 if len(pool) >= want else want,
            )  # fmt: skip
        return Served(live.recent, select(live, avail, context, pool, want, want_live))

    async def for_user(
        self, user_id: int, k: int, context_product: int, explain: bool, context: str
    ) -> Recommendations:
        """``context``: home, cart (seeded by the cart's main products, which are never
        recommended back) or product:{id} (``context_product``)."""
        seeds = [context_product] if context_product else []
        if context == "cart" and self.cart_products is not None:
            seeds = await self.cart_products(user_id, SEED_CART)
        model = self.model
        exp, arm = self.experiment, None
        if exp is not None:
            arm = exp.arms[rules.assign(exp.key, user_id, [a.weight for a in exp.arms])]
            if arm.model_version is not None:
                model = self.arm_models.get(arm.model_version, model)
        # the "popular" arm ranks as for a shopper the model does not know
        ranked_for = 0 if arm is not None and arm.blend == "popular" else user_id
        pids, scores, personal = (
            model.ranked(ranked_for, seeds[0] if seeds else 0)
            if model is not None
            else ([], [], False)
        )
        served = await self.candidates(
            user_id, seeds, pids, k + k // 2, max(1, k // 2), SEED_RECENT, SEED_NEIGHBOURS,
        )  # fmt: skip
        answer = await self._answer(model, ranked_for, served,
                                    dict(zip(pids, scores, strict=True)), personal, k, explain,
                                    context, _seed_name(context, seeds, served.recent))  # fmt: skip
        if exp is not None and arm is not None and self.experiments is not None:
            # logged off the answer's path; a lost exposure only undercounts
            task = asyncio.ensure_future(self.experiments.store.expose(
                exp.key, user_id, arm.name, [i.product_id for i in answer.items],
                int(time.time() * 1000), exp.window_s,
            ))  # fmt: skip
            self._exposures.add(task)
            task.add_done_callback(self._exposures.discard)
        return answer

    async def similar(self, product_id: int, k: int) -> Recommendations:
        # the model's bestsellers of the product's category: the fallback when the live
        # signals have too little (a new store, a quiet product)
        pool = self.model.category_pool(product_id) if self.model is not None else []
        served = await self.candidates(0, [product_id], pool, k * 2, k * 2)
        items = sorted(served.items, key=lambda x: (-(2 * x[2] + x[1]), -x[3], x[0]))[:k]
        seed = f"product {product_id}"
        out = [
            Recommendation(pid, 2 * cobuy + covis + trend, _reason(cobuy, covis, seed))
            for pid, covis, cobuy, trend in items
        ]
        version = self.model.version if self.model is not None else None
        return Recommendations(out, version, f"product:{product_id}")

    async def _answer(
        self, model: Any, user_id: int, served: Served, scores: dict[int, float],
        personal: bool, k: int, explain: bool, context: str, seed: str,
    ) -> Recommendations:  # fmt: skip
        """The model's list (its scores) blended with the live signals: an item's live
        strength (2 x bought together + viewed together + trending), scaled to the spread of
        the list's scores, is added to its score (items only the live signals brought start
        from the list's lowest score), so the strongest live neighbour can lead. ``seed``
        names what the live neighbours are neighbours of, for the reasons."""
        if model is None or not served.items:
            items = sorted(served.items, key=lambda x: (-(2 * x[2] + x[1] + x[3]), x[0]))[:k]
            return Recommendations(
                [Recommendation(p, 2 * b + c + t, _reason(b, c, seed)) for p, c, b, t in items],
                None if model is None else model.version,
                context,
            )
        lo = min(scores.values(), default=0.0)
        spread = max(max(scores.values(), default=0.0) - lo, 1.0)
        live = [2 * b + c + t for _, c, b, t in served.items]
        top_live = max(live) or 1.0
        ranked = sorted(
            ((scores.get(x[0], lo) + spread * v / top_live, x) for v, x in zip(live, served.items,
                                                                                strict=True)),
            key=lambda sx: -sx[0],
        )[:k]  # fmt: skip
        # TreeSHAP takes milliseconds: in a thread, so the other answers go on meanwhile
        contribs = (
            await asyncio.to_thread(
                model.explain, user_id, served.recent, [x[0] for _, x in ranked]
            )
            if explain
            else {}
        )
        out = []
        for score, (pid, covis, cobuy, trend) in ranked:
            c = contribs.get(pid)
            reason = _reason(cobuy, covis, seed) if covis or cobuy else (
                _REASONS["trend"] if trend else model.reason(c, personal and pid in scores)
            )  # fmt: skip
            out.append(Recommendation(pid, round(score, 6), reason, c))
        return Recommendations(out, model.version, context)


def _seed_name(context: str, seeds: Sequence[int], recent: Sequence[int]) -> str:
    if context == "cart" and seeds:
        return "items in your cart"
    first = seeds[0] if seeds else (recent[0] if recent else 0)
    return f"product {first}" if first else "your recent items"


def _reason(cobuy: float, covis: float, seed: str) -> str:
    if cobuy > 0:
        return _REASONS["cobuy"].format(seed=seed)
    if covis > 0:
        return _REASONS["covis"].format(seed=seed)
    return _REASONS["trend"]


# --- A/B tests -------------------------------------------------------------------------------


class Arm(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{1,32}$")]
    weight: Annotated[int, msgspec.Meta(ge=0, le=rules.BUCKETS)]  # hundredths of a percent
    model_version: str | None = None  # None: whichever version is active
    blend: Literal["ranked", "popular"] = "ranked"  # popular: no personal ranking


class Experiment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{1,40}$")]
    arms: Annotated[list[Arm], msgspec.Meta(min_length=2, max_length=5)]
    # outcomes count when they come this long after the user's first exposure
    window_s: Annotated[int, msgspec.Meta(ge=60, le=30 * 86_400)] = 86_400
    started_ms: int = 0


class ArmResult(msgspec.Struct, frozen=True):
    name: str
    weight: int
    users: int
    impressions: int
    clicks: int
    ctr: float
    ctr_ci: tuple[float, float]
    carts: int
    orders: int
    conversion: float  # users with an order in the window / exposed users
    conversion_ci: tuple[float, float]
    revenue_per_user: float  # minor units
    revenue_per_user_ci: tuple[float, float]


class ExperimentResults(msgspec.Struct, frozen=True):
    key: str
    arms: list[ArmResult]
    srm_chi2: float
    srm_p: float
    srm_mismatch: bool  # p < 0.001: the split is broken; do not trust the arms' figures


SRM_ALPHA: Final = 0.001
_exp_decoder: Final = msgspec.json.Decoder(Experiment)


class Experiments:
    def __init__(self, store: ExperimentStore, registry: Any) -> None:
        self.store = store
        self.registry = registry

    async def define(self, exp: Experiment) -> Experiment:
        if sum(a.weight for a in exp.arms) != rules.BUCKETS:
            raise Refused(
                422, "bad-arms", "Invalid arms", f"weights must add up to {rules.BUCKETS}"
            )
        if len({a.name for a in exp.arms}) != len(exp.arms):
            raise Refused(422, "bad-arms", "Invalid arms", "arm names must differ")
        with redis_errors():
            known = await self.registry.versions()
            for a in exp.arms:
                if a.model_version is not None and a.model_version not in known:
                    raise Refused(422, "bad-arms", "Invalid arms",
                                  f"no model version {a.model_version}")  # fmt: skip
            exp = msgspec.structs.replace(exp, started_ms=int(time.time() * 1000))
            await self.store.define(msgspec.json.encode(exp))
        return exp

    async def current(self) -> Experiment | None:
        with redis_errors():
            raw = await self.store.current()
        return None if raw is None else _exp_decoder.decode(raw)

    async def results(self) -> ExperimentResults:
        from scipy.stats import chi2

        exp = await self.current()
        if exp is None:
            raise Refused(404, "not-found", "Not found", "no experiment is running")
        with redis_errors():
            users, stats, revenue = await self.store.results(exp.key)
        arms = []
        counts = []
        for a in exp.arms:
            members = [u for u, arm in users.items() if arm == a.name]
            n = len(members)
            counts.append(n)
            imp = int(stats.get(f"{a.name}:impressions", 0))
            clicks = int(stats.get(f"{a.name}:clicks", 0))
            revs = [revenue.get(u, 0.0) for u in members]
            buyers = sum(1 for r in revs if r > 0)
            total = sum(revs)
            arms.append(ArmResult(
                a.name, a.weight, n, imp, clicks, clicks / imp if imp else 0.0,
                rules.wilson(min(clicks, imp), imp), int(stats.get(f"{a.name}:carts", 0)),
                int(stats.get(f"{a.name}:orders", 0)), buyers / n if n else 0.0,
                rules.wilson(buyers, n), total / n if n else 0.0,
                rules.mean_interval(total, sum(r * r for r in revs), n),
            ))  # fmt: skip
        weights = [a.weight for a in exp.arms]
        stat = rules.srm_statistic(counts, weights)
        dof = sum(1 for w in weights if w > 0) - 1
        p = float(chi2.sf(stat, dof)) if sum(counts) and dof > 0 else 1.0
        return ExperimentResults(exp.key, arms, stat, p, p < SRM_ALPHA)
