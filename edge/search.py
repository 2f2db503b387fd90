"""``GET /search``: a thin handler over ``nexuscart.app.search`` (docs/search.md).

The hot path: the worker's answer cache is keyed by the raw query string and dropped
whenever the index changes, so a repeated search is one dict lookup; a miss parses and
validates the parameters (400 problem+json for anything the rules refuse), searches the
worker's own index and caches the encoded answer.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

from edge.deps import Deps
from nexuscart.app.search import NotReady, SearchPage
from nexuscart.domain import search as rules
from nexuscart.web import DependencyUnavailable, HTTPError, Request, Response, Route

QUERY_STRING_MAX: Final = 2048  # bytes of the raw query string
# the same answer for everyone: shared caches may keep it as long as the index bound
_HEADERS: Final = [("content-type", "application/json"), ("cache-control", "public, max-age=1")]


def _bad(detail: str) -> HTTPError:
    return HTTPError(400, "bad-query", "Invalid query parameter", detail)


def routes(deps: Deps) -> list[Route]:
    svc = deps.search
    metrics = deps.metrics
    # what /metrics says of this worker's index (answer-cache hits are the route's requests
    # less these misses)
    metrics.gauges["search_index_documents"] = lambda: svc.index.size
    metrics.gauges["search_index_ready"] = lambda: int(svc.ready)

    async def search(req: Request) -> Response:
        raw = req.query
        body = svc.cached(raw)
        if body is None:
            if len(raw) > QUERY_STRING_MAX:
                raise _bad(f"the query string is longer than {QUERY_STRING_MAX} bytes")
            try:
                pairs = parse_qsl(
                    raw,
                    keep_blank_values=True,
                    strict_parsing=False,
                    max_num_fields=rules.QUERY_PARAMS_MAX,
                )
                query = rules.parse(pairs)
                body = svc.search_json(query)
            except rules.Invalid as exc:
                raise _bad(str(exc)) from None
            except ValueError:  # parse_qsl: more fields than max_num_fields
                raise _bad(f"at most {rules.QUERY_PARAMS_MAX} query parameters") from None
            except NotReady:
                raise DependencyUnavailable("search index") from None
            svc.remember(raw, body)
            metrics.inc("search_cache_misses_total")
        return Response(200, body, _HEADERS)

    q: tuple[tuple[str, str] | tuple[str, str, dict[str, object]], ...] = (
        ("q", f"words (<= {rules.Q_MAX_CHARS} characters, <= {rules.Q_MAX_TERMS} words)"),
        ("category", "a category id: the category and its subtree", {"type": "integer"}),
        ("price_min", "lowest price (minor units) of the cheapest variant", {"type": "integer"}),
        ("price_max", "highest price (minor units) of the cheapest variant", {"type": "integer"}),
        ("brand", "a brand (repeat for any of several)"),
        ("in_stock", "true: in stock only; false: out of stock only", {"type": "boolean"}),
        (
            "sort",
            "relevance (default), price_asc, price_desc, newest",
            {"type": "string", "enum": list(rules.SORTS)},
        ),
        ("cursor", "next_cursor of the previous page (same query)"),
        (
            "limit",
            f"results per page, 1..{rules.LIMIT_MAX} (default {rules.LIMIT_DEFAULT})",
            {"type": "integer", "minimum": 1, "maximum": rules.LIMIT_MAX},
        ),
    )
    return [
        Route(
            "GET",
            "/search",
            search,
            "Search active products: words with typo tolerance, filters (also attr.<name>=value,"
            " e.g. attr.color=red, repeatable), facets, highlights",
            responses={200: SearchPage},
            tags=("catalog",),
            query=q,
            problems=(503,),
        )
    ]
