"""Recommendation routes: thin handlers over ``nexuscart.app.recommendations``
(docs/recommendations.md).

``GET /recommendations/me`` and ``GET /products/{id}/similar`` answer from a per-worker
cache of encoded answers (a short TTL: the live signals change within seconds); a miss is
one Redis call (``RecsStore.serve``) and the in-process model. The admin routes promote a
trained version or roll back; every serving process notices the pointer within
RECS_MODEL_POLL_S.
"""

from __future__ import annotations

import time
from typing import Final

from edge.access import user_of
from edge.deps import Deps
from edge.http import handles_refusals
from nexuscart.adapters.recs_registry import UnknownVersion
from nexuscart.app.recommendations import (
    Experiment,
    ExperimentResults,
    ModelChange,
    ModelInfo,
    ModelList,
    Promote,
    Recommendations,
)
from nexuscart.web import (
    HTTPError,
    Request,
    Response,
    Route,
    decode_body,
    json_response,
    path_int,
    query_int,
)

K_MAX: Final = 50
CACHE_TTL_S: Final = 1.0
CACHE_MAX: Final = 100_000
_USER_HEADERS: Final = [("cache-control", "private, max-age=1")]
_PUBLIC_HEADERS: Final = [("cache-control", "public, max-age=1")]


def _context(req: Request) -> tuple[str, int]:
    raw = req.query_params().get("context", "home") if req.query else "home"
    if raw in ("home", "cart"):
        return raw, 0
    if raw.startswith("product:"):
        digits = raw[8:]
        if digits.isascii() and digits.isdigit() and 0 < len(digits) < 19:
            return raw, int(digits)
    raise HTTPError(
        400, "bad-query", "Invalid query parameter", "context: home, cart or product:{id}"
    )


class _Cache:
    """Encoded answers per worker for CACHE_TTL_S; cleared whole when full."""

    def __init__(self) -> None:
        self.d: dict[object, tuple[float, Response]] = {}

    def get(self, key: object) -> Response | None:
        hit = self.d.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: object, resp: Response) -> Response:
        if len(self.d) >= CACHE_MAX:
            self.d.clear()
        self.d[key] = (time.monotonic() + CACHE_TTL_S, resp)
        return resp


def routes(deps: Deps) -> list[Route]:
    recs = deps.recommender
    registry = recs.registry
    cache = _Cache()

    # a query string parsed once per worker: every shopper sends the same few
    queries: dict[str, tuple[int, bool, str, int]] = {}

    @handles_refusals
    async def for_me(req: Request) -> Response:
        user = user_of(req)
        key = (user, req.query)
        hit = cache.get(key)
        if hit is not None:
            return hit
        q = queries.get(req.query)
        if q is None:
            q = (
                query_int(req, "k", 10, 1, K_MAX),
                query_int(req, "explain", 0, 0, 1) == 1,
                *_context(req),
            )
            if len(queries) >= CACHE_MAX:
                queries.clear()
            queries[req.query] = q
        k, explain, context, product = q
        answer = await recs.for_user(user, k, product, explain, context)
        return cache.put(key, json_response(answer, headers=_USER_HEADERS))

    @handles_refusals
    async def similar(req: Request) -> Response:
        pid = path_int(req, "product_id")
        key = ("similar", pid, req.query)
        hit = cache.get(key)
        if hit is not None:
            return hit
        k = query_int(req, "k", 10, 1, K_MAX)
        answer = await recs.similar(pid, k)
        return cache.put(key, json_response(answer, headers=_PUBLIC_HEADERS))

    @handles_refusals
    async def models(_: Request) -> Response:
        active = await registry.active()
        versions = await registry.versions()
        return json_response(
            ModelList(
                active,
                [
                    ModelInfo(v, v == active, meta.get("metrics", {}), meta.get("data", {}))
                    for v, meta in sorted(versions.items(), reverse=True)
                ],
            )
        )

    @handles_refusals
    async def promote(req: Request) -> Response:
        version = decode_body(req, Promote).version
        try:
            previous = await registry.promote(version)
        except UnknownVersion:
            raise HTTPError(404, "not-found", "Not found", "no such model version") from None
        return json_response(ModelChange(version, previous))

    @handles_refusals
    async def rollback(_: Request) -> Response:
        before = await registry.active()
        now = await registry.rollback()
        if now is None:
            raise HTTPError(409, "conflict", "Nothing to roll back to", "no earlier version")
        return json_response(ModelChange(now, before))

    experiments = recs.experiments
    assert experiments is not None  # build() always wires them

    @handles_refusals
    async def define_experiment(req: Request) -> Response:
        return json_response(await experiments.define(decode_body(req, Experiment)))

    @handles_refusals
    async def experiment_results(_: Request) -> Response:
        return json_response(await experiments.results())

    tags = ("recommendations",)
    k_param = ("k", f"1-{K_MAX} (10)", {"type": "integer", "minimum": 1, "maximum": K_MAX})
    return [
        Route(
            "GET",
            "/recommendations/me",
            for_me,
            "Recommendations for the signed-in shopper: the active model's ranking blended "
            "with live signals; never archived, out-of-stock or already bought (durable) items",
            responses={200: Recommendations},
            query=(
                k_param,
                ("context", "home (default), cart or product:{id}"),
                (
                    "explain",
                    "1: each item's top TreeSHAP feature contributions",
                    {"type": "integer", "minimum": 0, "maximum": 1},
                ),
            ),
            problems=(503,),
            tags=tags,
        ),
        Route(
            "GET",
            "/products/{product_id}/similar",
            similar,
            "Bought together and viewed together with a product (live); popular in its "
            "category when it has too few",
            responses={200: Recommendations},
            params=("product_id",),
            query=(k_param,),
            problems=(503,),
            tags=tags,
        ),
        Route(
            "GET",
            "/admin/recommendations/models",
            models,
            "Trained recommendation model versions with their held-out metrics",
            responses={200: ModelList},
            problems=(503,),
            tags=tags,
        ),
        Route(
            "POST",
            "/admin/recommendations/models/promote",
            promote,
            "Make a trained version the active model (serving processes switch within "
            "RECS_MODEL_POLL_S, no restart)",
            request=Promote,
            responses={200: ModelChange},
            problems=(404, 503),
            tags=tags,
        ),
        Route(
            "POST",
            "/admin/recommendations/experiments",
            define_experiment,
            "Start an A/B test (replacing the running one): arms are model versions or the "
            "popular blend, weights in hundredths of a percent adding up to 10,000",
            request=Experiment,
            responses={200: Experiment},
            problems=(422, 503),
            tags=tags,
        ),
        Route(
            "GET",
            "/admin/recommendations/experiments/results",
            experiment_results,
            "Per arm: users, CTR, conversion and revenue per user with 95% intervals; the "
            "sample-ratio-mismatch check",
            responses={200: ExperimentResults},
            problems=(404, 503),
            tags=tags,
        ),
        Route(
            "POST",
            "/admin/recommendations/models/rollback",
            rollback,
            "Go back to the model version active before the current one",
            responses={200: ModelChange},
            problems=(409, 503),
            tags=tags,
        ),
    ]
