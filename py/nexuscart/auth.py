"""Buyer tokens (HS256 JWT, ``sub`` = user id) and the admin credential. Pure, no I/O.

Tokens are verified by ``nexuscart._core.TokenVerifier`` (Rust, crate module ``token``): a
lean verifier instead of a general JWT library on the hot path. It accepts exactly one
algorithm (HS256, so no alg-confusion), checks ``exp`` (at most a maximum lifetime ahead),
``nbf`` and ``iss``, and caches recent verified tokens, since a buyer in a storm retries with
the same token. It raises ``AuthError`` (re-exported here); ``str(exc)`` is the reason. A
pure-Python reference with the same rules, order and reasons lives with the tests that
compare the two (tests/token_reference.py).

This module mints tokens (``issue``: tests, demo data, load generators) and checks the admin
bearer token (``admin_ok``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Final

import msgspec

from nexuscart._core import AuthError

__all__ = ["AuthError", "admin_ok", "issue"]


_enc: Final = msgspec.json.Encoder()


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def issue(
    secret: str,
    user_id: int,
    ttl_s: int = 3600,
    issuer: str = "nexuscart",
    now: float | None = None,
) -> str:
    """Mint a buyer token (tests, demo seed, load generators)."""
    now = time.time() if now is None else now
    h = _b64e(_enc.encode({"alg": "HS256", "typ": "JWT"}))
    p = _b64e(
        _enc.encode({"sub": str(user_id), "iss": issuer, "iat": int(now), "exp": int(now) + ttl_s})
    )
    sig = hmac.new(secret.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{_b64e(sig)}"


def admin_ok(authorization: str | None, admin_token: str) -> bool:
    if not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[7:].encode(), admin_token.encode())
