"""The edge application: the route table and the RSGI app object Granian serves."""

from __future__ import annotations

import msgspec

from edge import (
    access,
    accounts,
    cart,
    catalog,
    flash_sales,
    orders,
    payments,
    promotions,
    recommendations,
    search,
)
from edge.deps import Deps, build
from nexuscart import __version__, observability
from nexuscart.web import (
    App,
    ClientAddress,
    Request,
    Response,
    Route,
    json_response,
    openapi,
    raw_json,
)


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]


def make_app(deps: Deps) -> App:
    async def healthz(_: Request) -> Response:
        return json_response(Health(status="ok"))

    async def readyz(_: Request) -> Response:
        # the last background probe of each dependency (Deps.probes): no I/O per call
        checks = deps.probes.status()
        if all(v == "ok" for v in checks.values()):
            return json_response(Readiness(status="ok", checks=checks))
        return json_response(
            Readiness(status="unavailable", checks=checks),
            status=503,
            headers=[("retry-after", "1")],
        )

    async def metrics(_: Request) -> Response:
        return Response(
            200,
            app.metrics.render_all(),
            [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        )

    async def openapi_json(_: Request) -> Response:
        return raw_json(spec)

    routes: list[Route] = [
        Route(
            "GET",
            "/healthz",
            healthz,
            "Liveness: the process answers",
            responses={200: Health},
            tags=("ops",),
        ),
        Route(
            "GET",
            "/readyz",
            readyz,
            "Readiness: Redis, PostgreSQL and Kafka answered a probe within the last second",
            responses={200: Readiness, 503: Readiness},
            tags=("ops",),
        ),
        Route(
            "GET",
            "/metrics",
            metrics,
            "Prometheus metrics, summed over the server's workers",
            responses={200: str},
            tags=("ops",),
        ),
        Route(
            "GET",
            "/openapi.json",
            openapi_json,
            "This OpenAPI document",
            responses={200: None},
            tags=("ops",),
        ),
        *flash_sales.routes(deps),
        *accounts.routes(deps),
        *catalog.routes(deps),
        *search.routes(deps),
        *payments.routes(deps),
        *cart.routes(deps),
        *promotions.routes(deps),
        *orders.routes(deps),
        *recommendations.routes(deps),
    ]
    routes = access.apply(routes)  # refuses a route the access table does not know
    observe = deps.settings.observe
    if observe.log_format == "json" or observe.access_log_sample > 0:
        observability.setup_logging("edge", observe.log_format)
    observability.setup_tracing("edge", observe.trace_sample, observe.trace_export)
    app = App(
        routes,
        max_body_bytes=deps.settings.edge.max_body_bytes,
        body_timeout_s=deps.settings.edge.body_timeout_s,
        client_address=ClientAddress(deps.settings.edge.trusted_networks()),
        guards=access.guards(deps.verifier),
        share_metrics=deps.settings.edge.metrics_dir,
        metrics=deps.metrics,
        access_log_sample=observe.access_log_sample,
        on_startup=deps.start,
        on_shutdown=deps.close,
    )
    spec = msgspec.json.encode(openapi(routes, title="NexusCart API", version=__version__))
    return app


app = make_app(build())
