"""The catalog's hot handlers in process, on the real stack: GET /products/{id} from a warm
page cache, GET /inventory of 10 SKUs (an MGET to the real Redis), next to a handler that
returns a prebuilt response (the driver loop's own cost). CPU µs of this process per call
(process time: Redis' work and the wait for it are not counted), one event loop: what each
request costs a worker on top of Granian's own work."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import pytest
import uvloop

from devtools import catalog_gen
from nexuscart import config
from nexuscart.web import Request, Response
from tests.bench.conftest import Figure, Figures

pytestmark = pytest.mark.benchmark_only

PRODUCTS: Final = 2_000
CALLS: Final = 20_000


def _request(path: str, params: dict[str, str], query: str = "") -> Request:
    headers: Any = {}  # Granian passes its own mapping; a dict does here
    return Request("GET", path, query, headers, b"", "127.0.0.1", params)


async def _concurrent(
    handler: Callable[[Request], Awaitable[Response]], reqs: list[Request], tasks: int = 64
) -> float:
    """CPU seconds per call with ``tasks`` calls in flight (their MGETs coalesce)."""
    it = iter(reqs)

    async def worker() -> None:
        for r in it:
            await handler(r)

    t0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return (time.process_time() - t0) / len(reqs)


async def _per_call(
    handler: Callable[[Request], Awaitable[Response]], reqs: list[Request]
) -> float:
    for r in reqs[:500]:  # warm
        await handler(r)
    t0 = time.process_time()
    for r in reqs:
        resp = await handler(r)
        assert resp.status in (200, 404), resp.body
    return (time.process_time() - t0) / len(reqs)


def test_bench_catalog_hot_handlers(
    settings: config.Settings, migrated: None, figures: Figures
) -> None:
    from edge.app import make_app
    from edge.deps import build

    asyncio.run(catalog_gen.load(settings.postgres.dsn, settings.redis.url, PRODUCTS))
    z = catalog_gen.ZipfProducts(PRODUCTS)

    async def main() -> dict[str, float]:
        deps = build(settings)
        app = make_app(deps)
        await deps.start()
        try:
            routes = {(r.method, r.path): r.handler for r in app.router.routes}
            page = routes[("GET", "/products/{product_id}")]
            inventory = routes[("GET", "/inventory")]
            prebuilt = Response(200, b"{}", [("content-type", "application/json")])

            async def bare(_: Request) -> Response:
                return prebuilt

            ids = z.sample(CALLS, seed=3)
            pages = [_request(f"/products/{i}", {"product_id": str(i)}) for i in ids]
            for r in pages:  # fill the cache: the bench measures hits
                await page(r)
            checks = [
                _request(
                    "/inventory",
                    {},
                    "&".join(f"sku={catalog_gen.sku_of(z.draw(rng), 0)}" for _ in range(10)),
                )
                for rng in [__import__("random").Random(4)]
                for _ in range(CALLS // 4)
            ]
            return {
                "bare": await _per_call(bare, pages),
                "page": await _per_call(page, pages),
                "inventory": await _per_call(inventory, checks),
                "inventory_64": await _concurrent(inventory, checks),
            }
        finally:
            await deps.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        got: dict[str, Any] = runner.run(main())
    figures.add(
        "catalog.bare",
        Figure(
            "handler returning a prebuilt response",
            got["bare"] * 1e6,
            "µs/call",
            higher_is_better=False,
        ),
    )
    figures.add(
        "catalog.page",
        Figure(
            "GET /products/{id}, cache hit (Zipf)",
            got["page"] * 1e6,
            "µs/call",
            higher_is_better=False,
            baseline="catalog.bare",
        ),
    )
    figures.add(
        "catalog.inventory_64",
        Figure(
            "GET /inventory, 10 SKUs, 64 in flight",
            got["inventory_64"] * 1e6,
            "µs/call",
            higher_is_better=False,
            baseline="catalog.bare",
            note="MGETs of one loop tick coalesce into one",
        ),
    )
    figures.add(
        "catalog.inventory",
        Figure(
            "GET /inventory, 10 SKUs (Redis MGET)",
            got["inventory"] * 1e6,
            "µs/call",
            higher_is_better=False,
            baseline="catalog.bare",
            note="one call at a time",
        ),
    )
