"""Catalog routes: thin HTTP handlers over ``nexuscart.app.catalog`` (docs/catalog.md).

The public reads are hot: the product page answers from the worker's page cache with the
body built once per product version and its variants' live stock spliced in, and the stock
check reads the same way: both one Redis MGET, shared by every read of the loop tick.
Writes need a seller (or admin) token (edge/access.py); a seller who names another seller's
product gets 404, as if it did not exist.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

from edge.access import roles_of, user_of
from edge.deps import Deps
from edge.http import handles_refusals, idem_key
from nexuscart.app.catalog import (
    AdjustmentView,
    Caller,
    CategoryTree,
    Inventory,
    ProductCreate,
    ProductPatch,
    ProductsPage,
    ProductView,
    StockAdjustment,
    Unavailable,
    VariantCreate,
    VariantPatch,
)
from nexuscart.auth import ROLE_BITS, AuthError
from nexuscart.domain import catalog as rules
from nexuscart.web import (
    ID_MAX,
    DependencyUnavailable,
    HTTPError,
    Request,
    Response,
    Route,
    decode_body,
    json_response,
    path_int,
    problem_response,
    query_int,
    raw_json,
)

_SKU: Final = re.compile(rules.SKU_PATTERN)
_ADMIN: Final = ROLE_BITS["admin"]
_NOT_FOUND: Final = HTTPError(404, "not-found", "Not found", "no such product")


def _caller(req: Request) -> Caller:
    return Caller(user_of(req), bool(roles_of(req) & _ADMIN))


def _if_match(req: Request) -> int:
    raw = req.header("if-match")
    if raw is None:
        raise HTTPError(
            428,
            "precondition-required",
            "If-Match required",
            "send the ETag of the product you read (GET /products/{id})",
        )
    version = rules.if_match_version(raw)
    if version is None:
        raise HTTPError(
            412, "precondition-failed", "If-Match names no version", 'expected an ETag like "7"'
        )
    return version


def _sku(req: Request) -> str:
    sku = unquote(req.params["sku"])
    if not _SKU.match(sku):
        raise HTTPError(404, "not-found", "Not found", "no such SKU")
    return sku


def _written(view: ProductView, etag: str, replayed: bool, created: bool = False) -> Response:
    headers = [("etag", etag), ("cache-control", "no-store")]
    if replayed:
        headers.append(("idempotent-replayed", "true"))
    return json_response(view, status=201 if created and not replayed else 200, headers=headers)


_INVENTORY_HEADERS: Final = [("content-type", "application/json"), ("cache-control", "no-cache")]
_CATEGORY_HEADERS: Final = [("cache-control", "public, max-age=60")]
_LIST_HEADERS: Final = [("cache-control", "public, max-age=1")]


# a query's sku value -> the SKU it names, for the values found valid before (the stock
# check's batches draw from the same popular SKUs); cleared whole when full
_known_skus: dict[str, str] = {}
KNOWN_SKUS_MAX: Final = 200_000


def _skus(query: str) -> list[str]:
    """The ``sku`` parameters of a query string, in order (repeated ``sku=``)."""
    skus: list[str] = []
    known = _known_skus
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name != "sku":
            continue
        if len(skus) == rules.INVENTORY_BATCH_MAX:
            raise HTTPError(
                400,
                "bad-query",
                "Invalid query parameter",
                f"at most {rules.INVENTORY_BATCH_MAX} sku parameters",
            )
        sku = known.get(value)
        if sku is None:
            sku = unquote(value) if "%" in value else value
            if not _SKU.match(sku):
                raise HTTPError(400, "bad-query", "Invalid query parameter", f"sku {sku[:64]!r}")
            if len(known) >= KNOWN_SKUS_MAX:
                known.clear()
            known[value] = sku
        skus.append(sku)
    if not skus:
        raise HTTPError(400, "bad-query", "Invalid query parameter", "sku required")
    return skus


def routes(deps: Deps) -> list[Route]:
    cat = deps.catalog
    principal = deps.verifier.principal
    pages = cat.cache
    record_view = deps.recs_signals.view  # a list append: views are sampled

    async def product_page(req: Request) -> Response:
        # hot: a dict lookup and the prebuilt body and headers on a hit
        raw = req.params["product_id"]
        pid = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else -1
        page = pages.get(pid) if pid >= 0 else None
        if page is None or page.status != "active":
            if pid < 0:
                return problem_response(_NOT_FOUND, req.path)
            try:
                page = await cat.page(pid)
            except Unavailable as exc:
                raise DependencyUnavailable(exc.dependency) from exc
            if page is None:
                return problem_response(_NOT_FOUND, req.path)
            if page.status != "active":
                # drafts and archived products: their seller and admins only; an invalid
                # token is anonymous here (a public route never answers 401)
                try:
                    user, roles = principal(req.header("authorization"))
                except AuthError:
                    return problem_response(_NOT_FOUND, req.path)
                if not rules.visible_to(page.status, user, bool(roles & _ADMIN), page.seller_id):
                    return problem_response(_NOT_FOUND, req.path)
                fresh = await cat.fresh_page(pid)
                if fresh is None:
                    return problem_response(_NOT_FOUND, req.path)
                page = fresh
        record_view(pid, req.headers.get("authorization"))
        try:
            shown = await cat.show(page)  # the live stock: one MGET shared per loop tick
        except Unavailable as exc:
            raise DependencyUnavailable(exc.dependency) from exc
        if req.headers.get("if-none-match") == shown.etag:
            return Response(304, b"", shown.headers_304)
        return Response(200, shown.body, shown.headers)

    async def inventory(req: Request) -> Response:
        skus = _skus(req.query)
        try:
            body = await cat.inventory(skus)
        except Unavailable as exc:
            raise DependencyUnavailable(exc.dependency) from exc
        return Response(200, body, _INVENTORY_HEADERS)

    @handles_refusals
    async def categories(_: Request) -> Response:
        return raw_json(await cat.categories_body(), headers=_CATEGORY_HEADERS)

    @handles_refusals
    async def list_products(req: Request) -> Response:
        limit = query_int(req, "limit", 20, 1, rules.LIST_LIMIT_MAX)
        cursor = query_int(req, "cursor", None, 0, ID_MAX)
        category = query_int(req, "category_id", None, 0, ID_MAX)
        return raw_json(await cat.listing(cursor, category, limit), headers=_LIST_HEADERS)

    @handles_refusals
    async def create_product(req: Request) -> Response:
        key = idem_key(req)
        body = decode_body(req, ProductCreate)
        view, etag, replayed = await cat.create(_caller(req), body, key)
        return _written(view, etag, replayed, created=True)

    @handles_refusals
    async def update_product(req: Request) -> Response:
        key = idem_key(req)
        pid = path_int(req, "product_id")
        version = _if_match(req)
        body = decode_body(req, ProductPatch)
        return _written(*await cat.update(_caller(req), pid, version, key, body))

    @handles_refusals
    async def archive_product(req: Request) -> Response:
        key = idem_key(req)
        pid = path_int(req, "product_id")
        version = _if_match(req)
        return _written(*await cat.archive(_caller(req), pid, version, key))

    @handles_refusals
    async def add_variant(req: Request) -> Response:
        key = idem_key(req)
        pid = path_int(req, "product_id")
        version = _if_match(req)
        body = decode_body(req, VariantCreate)
        return _written(*await cat.add_variant(_caller(req), pid, version, key, body))

    @handles_refusals
    async def update_variant(req: Request) -> Response:
        key = idem_key(req)
        pid = path_int(req, "product_id")
        sku = _sku(req)
        version = _if_match(req)
        body = decode_body(req, VariantPatch)
        return _written(*await cat.update_variant(_caller(req), pid, sku, version, key, body))

    @handles_refusals
    async def adjust_stock(req: Request) -> Response:
        key = idem_key(req)
        pid = path_int(req, "product_id")
        sku = _sku(req)
        body = decode_body(req, StockAdjustment)
        view, replayed = await cat.adjust_stock(_caller(req), pid, sku, key, body)
        headers = [("idempotent-replayed", "true")] if replayed else []
        return json_response(view, headers=headers)

    tags = ("catalog",)
    return [
        Route(
            "GET",
            "/products/{product_id}",
            product_page,
            "A product with its variants and live stock status (ETag, 304; active products "
            "for everyone, drafts and archived ones for their seller and admins)",
            responses={200: ProductView, 304: None},
            params=("product_id",),
            tags=tags,
        ),
        Route(
            "GET",
            "/products",
            list_products,
            "Active products by id, a page after a cursor, optionally in a category subtree",
            responses={200: ProductsPage},
            query=(
                ("limit", "1-100 (20)", {"type": "integer", "minimum": 1, "maximum": 100}),
                ("cursor", "next_cursor of the previous page"),
                ("category_id", "only this category and its descendants", {"type": "integer"}),
            ),
            tags=tags,
        ),
        Route(
            "GET",
            "/categories",
            categories,
            "The category tree",
            responses={200: CategoryTree},
            tags=tags,
        ),
        Route(
            "GET",
            "/inventory",
            inventory,
            "Live stock of up to 50 SKUs (repeat sku=)",
            responses={200: Inventory},
            query=(("sku", "a SKU; repeat up to 50 times"),),
            tags=tags,
        ),
        Route(
            "POST",
            "/products",
            create_product,
            "Create a product with its variants (a seller's own; admins may name a seller)",
            request=ProductCreate,
            responses={201: ProductView, 200: ProductView},
            problems=(409,),
            idempotent_key=True,
            tags=tags,
        ),
        Route(
            "PATCH",
            "/products/{product_id}",
            update_product,
            "Change a product's fields or status (If-Match: its ETag)",
            request=ProductPatch,
            responses={200: ProductView},
            params=("product_id",),
            problems=(409, 412, 428),
            idempotent_key=True,
            tags=tags,
        ),
        Route(
            "POST",
            "/products/{product_id}/archive",
            archive_product,
            "Archive a product for good (If-Match: its ETag)",
            responses={200: ProductView},
            params=("product_id",),
            problems=(409, 412, 428),
            idempotent_key=True,
            tags=tags,
        ),
        Route(
            "POST",
            "/products/{product_id}/variants",
            add_variant,
            "Add a variant (a new SKU) to a product (If-Match: the product's ETag)",
            request=VariantCreate,
            responses={200: ProductView},
            params=("product_id",),
            problems=(409, 412, 428),
            idempotent_key=True,
            tags=tags,
        ),
        Route(
            "PATCH",
            "/products/{product_id}/variants/{sku}",
            update_variant,
            "Change a variant's price, currency, attributes or low-stock threshold "
            "(If-Match: the product's ETag)",
            request=VariantPatch,
            responses={200: ProductView},
            params=("product_id", "sku"),
            problems=(409, 412, 428),
            idempotent_key=True,
            tags=tags,
        ),
        Route(
            "POST",
            "/products/{product_id}/variants/{sku}/stock",
            adjust_stock,
            "Adjust a SKU's stock by a delta, with a reason (audited; StockLow once per "
            "crossing of its threshold)",
            request=StockAdjustment,
            responses={200: AdjustmentView},
            params=("product_id", "sku"),
            problems=(409,),
            idempotent_key=True,
            tags=tags,
        ),
    ]
