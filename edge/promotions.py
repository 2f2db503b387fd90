"""Promotion routes (admins): create, list, deactivate; thin handlers over
``nexuscart.app.promotions`` (docs/cart-checkout.md)."""

from __future__ import annotations

from edge.access import user_of
from edge.deps import Deps
from edge.http import handles_refusals, idem_key
from nexuscart.app.promotions import PromotionCreate, PromotionsPage, PromotionView
from nexuscart.domain import promotions as rules
from nexuscart.web import HTTPError, Request, Response, Route, decode_body, json_response, query_int


def routes(deps: Deps) -> list[Route]:
    promos = deps.promotions

    @handles_refusals
    async def create(req: Request) -> Response:
        key = idem_key(req)
        body = decode_body(req, PromotionCreate)
        view, replayed = await promos.create(user_of(req), body, key)
        headers = [("idempotent-replayed", "true")] if replayed else []
        return json_response(view, status=200 if replayed else 201, headers=headers)

    @handles_refusals
    async def list_all(req: Request) -> Response:
        limit = query_int(req, "limit", 50, 1, 200)
        cursor = req.query_params().get("cursor", "") if req.query else ""
        if len(cursor) > 64:
            raise HTTPError(400, "bad-query", "Invalid query parameter", "cursor: a code")
        return json_response(await promos.list(cursor, limit))

    @handles_refusals
    async def deactivate(req: Request) -> Response:
        idem_key(req)  # deactivating twice is deactivating once
        code = req.params["code"]
        if not rules.valid_code(rules.normal_code(code)):
            raise HTTPError(404, "not-found", "No such promotion", "not a promotion code")
        return json_response(await promos.deactivate(code))

    return [
        Route(
            "POST",
            "/admin/promotions",
            create,
            "Create a promotion code (percent or fixed, minimum spend, window, limits, targets)",
            request=PromotionCreate,
            responses={201: PromotionView, 200: PromotionView},
            idempotent_key=True,
            problems=(409, 422),
            tags=("promotions",),
        ),
        Route(
            "GET",
            "/admin/promotions",
            list_all,
            "Promotions in code order, with the uses counted so far",
            responses={200: PromotionsPage},
            query=(("limit", "page size, 1-200"), ("cursor", "next_cursor of the previous page")),
            tags=("promotions",),
        ),
        Route(
            "POST",
            "/admin/promotions/{code}/deactivate",
            deactivate,
            "Deactivate a promotion for good (checkouts refuse it from now on)",
            responses={200: PromotionView},
            params=("code",),
            idempotent_key=True,
            tags=("promotions",),
        ),
    ]
