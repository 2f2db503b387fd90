"""What every edge handler module shares: the ``Idempotency-Key`` check, and the one mapping
of the use cases' ``Refused`` / ``Unavailable`` to HTTP answers (``refused``, and the
``handles_refusals`` wrapper for routes off the hot path)."""

from __future__ import annotations

from typing import Final

from nexuscart.app.errors import Refused, Unavailable
from nexuscart.web import (
    DependencyUnavailable,
    Handler,
    HTTPError,
    Request,
    Response,
    problem_response,
)

IDEM_MAX: Final = 200


def idem_key(req: Request) -> str:
    key = req.header("idempotency-key")
    if not key:
        raise HTTPError(400, "idempotency-key-required", "Idempotency-Key header required")
    if len(key) > IDEM_MAX or not key.isprintable() or " " in key:
        raise HTTPError(
            400,
            "idempotency-key-invalid",
            "Idempotency-Key is invalid",
            f"1 to {IDEM_MAX} printable characters without spaces",
        )
    return key


_refusals: dict[tuple[str, str], Response] = {}


def refused(r: Refused, path: str) -> Response:
    """A refusal's problem response; the fixed ones (no detail, no Retry-After: sold out,
    ended, ...) are built once per path, as a storm repeats them."""
    fixed = not (r.retry_after_s or r.detail)
    resp = _refusals.get((r.slug, path)) if fixed else None
    if resp is None:
        headers = [("retry-after", str(r.retry_after_s))] if r.retry_after_s else []
        if r.status == 401:
            headers.append(("www-authenticate", "Bearer"))
        resp = problem_response(HTTPError(r.status, r.slug, r.title, r.detail, headers), path)
        if fixed:
            if len(_refusals) >= 10_000:
                _refusals.clear()
            _refusals[(r.slug, path)] = resp
    return resp


def handles_refusals(handler: Handler) -> Handler:
    """Map the use cases' refusals and dependency failures to HTTP answers (the purchase
    handler, the hot path, calls ``refused`` itself instead of taking this frame)."""

    async def wrapped(req: Request) -> Response:
        try:
            return await handler(req)
        except Refused as r:
            return refused(r, req.path)
        except Unavailable as exc:
            raise DependencyUnavailable(exc.dependency) from exc

    wrapped.__name__ = handler.__name__  # the OpenAPI operationId
    return wrapped
