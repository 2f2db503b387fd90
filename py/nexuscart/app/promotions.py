"""Promotion use cases (docs/cart-checkout.md): admins create, list and deactivate codes;
the checkout looks a code up (a per-worker cache of a few seconds: the checkout script
checks the active flag, the window and the limits atomically anyway)."""

from __future__ import annotations

import time
from typing import Annotated, Final

import msgspec

from nexuscart.adapters.promotions import PromotionsRepo
from nexuscart.app.errors import Refused, pg_errors, redis_errors
from nexuscart.domain import promotions as rules
from nexuscart.domain.promotions import Promotion

CACHE_S: Final = 5.0
CACHE_MAX: Final = 10_000

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Minor = Annotated[int, msgspec.Meta(ge=0, le=rules.MAX_MINOR)]
Ms = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
Uses = Annotated[int, msgspec.Meta(ge=0, le=rules.MAX_USES)]


class PromotionCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: Code
    kind: Annotated[str, msgspec.Meta(pattern="^(percent|fixed)$")]
    value: Annotated[int, msgspec.Meta(ge=1, le=rules.MAX_MINOR)]
    starts_at_ms: Ms
    ends_at_ms: Ms
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] | None = None
    min_spend_minor: Minor = 0
    usage_limit: Uses = 0
    per_user_limit: Uses = 0
    category_ids: Annotated[
        list[Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]],
        msgspec.Meta(max_length=rules.MAX_TARGETS),
    ] = msgspec.field(default_factory=list)
    skus: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]],
        msgspec.Meta(max_length=rules.MAX_TARGETS),
    ] = msgspec.field(default_factory=list)


class PromotionView(Promotion, frozen=True):
    """A promotion and the uses counted so far (open or sold orders; given back ones not)."""

    uses: int = 0


class PromotionsPage(msgspec.Struct, frozen=True):
    items: list[PromotionView]
    next_cursor: str | None


def _view(p: Promotion, uses: int) -> PromotionView:
    return PromotionView(**msgspec.structs.asdict(p), uses=uses)


class Promotions:
    def __init__(self, repo: PromotionsRepo):
        self.repo = repo
        self._cache: dict[str, tuple[float, Promotion | None]] = {}

    async def create(
        self, actor: int, body: PromotionCreate, key: str
    ) -> tuple[PromotionView, bool]:
        """-> (the promotion, replayed). 409 promo-code-taken when the code exists from
        another request; 422 with every rule broken."""
        p = Promotion(
            code=rules.normal_code(body.code),
            kind=body.kind,
            value=body.value,
            currency=body.currency,
            min_spend_minor=body.min_spend_minor,
            starts_at_ms=body.starts_at_ms,
            ends_at_ms=body.ends_at_ms,
            usage_limit=body.usage_limit,
            per_user_limit=body.per_user_limit,
            category_ids=tuple(sorted(set(body.category_ids))),
            skus=tuple(sorted(set(body.skus))),
        )
        broken = rules.problems(p)
        if broken:
            raise Refused(422, "validation-error", "Promotion is invalid", "; ".join(broken))
        with pg_errors():
            existing = await self.repo.create(p, key, actor)
        if existing is not None:
            stored, stored_key = existing
            if stored_key != key:
                raise Refused(409, "promo-code-taken", "Promotion code exists", p.code)
            p = stored
        with redis_errors():
            # after the commit; a replay writes it again (a crash in between is healed)
            await self.repo.publish(p)
            (uses,) = await self.repo.uses([p.code])
        return _view(p, uses), existing is not None

    async def list(self, after: str, limit: int) -> PromotionsPage:
        with pg_errors():
            items = await self.repo.page(after, limit + 1)
        more = len(items) > limit
        items = items[:limit]
        with redis_errors():
            uses = await self.repo.uses([p.code for p in items])
        views = [_view(p, n) for p, n in zip(items, uses, strict=True)]
        return PromotionsPage(views, items[-1].code if more and items else None)

    async def deactivate(self, code: str) -> PromotionView:
        code = rules.normal_code(code)
        with pg_errors():
            found = await self.repo.deactivate(code)
            p = await self.repo.get(code) if found else None
        if p is None:
            raise Refused(404, "not-found", "No such promotion", code)
        with redis_errors():
            await self.repo.publish(p)  # the checkout script refuses it from now on
            (uses,) = await self.repo.uses([code])
        self._cache.pop(code, None)
        return _view(p, uses)

    async def lookup(self, code: str, fresh: bool = False) -> Promotion | None:
        """A code's definition for the checkout (cached per worker for a few seconds;
        ``fresh``: from PostgreSQL now)."""
        code = rules.normal_code(code)
        now = time.monotonic()
        hit = self._cache.get(code)
        if hit is not None and hit[0] > now and not fresh:
            return hit[1]
        p = None
        if rules.valid_code(code):
            with pg_errors():
                p = await self.repo.get(code)
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[code] = (now + CACHE_S, p)
        return p

    async def republish(self, p: Promotion) -> None:
        """Write a definition to Redis again (Redis lost it: restarted empty)."""
        with redis_errors():
            await self.repo.publish(p)
