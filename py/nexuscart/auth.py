"""Buyer identity (HS256 JWT, ``sub`` = user id) and the admin credential. Pure, no I/O.

A lean verifier instead of a general JWT library on the hot path: it accepts exactly one
algorithm (HS256, so no alg-confusion), checks ``exp``/``nbf``/``iss``, and caches recent
verified tokens, since a buyer in a storm retries with the same token.

``TokenVerifier`` and ``AuthError`` are the Rust ones (``nexuscart._core``, crate module
``token``); ``str(exc)`` is the reason. ``PyTokenVerifier`` is the pure-Python reference
implementation with the same rules, order and reasons, kept for the property tests that
compare the two (tests/test_token_verifier.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Final

import msgspec

from nexuscart._core import AuthError, TokenVerifier

__all__ = ["AuthError", "PyTokenVerifier", "TokenVerifier", "admin_ok", "issue"]


class _Header(msgspec.Struct):
    alg: str
    typ: str | None = None


class _Claims(msgspec.Struct):
    sub: str
    exp: int | float
    iss: str | None = None
    nbf: int | float | None = None


_header_dec: Final = msgspec.json.Decoder(_Header)
_claims_dec: Final = msgspec.json.Decoder(_Claims)
_enc: Final = msgspec.json.Encoder()


def _b64d(seg: str) -> bytes:
    raw = base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))
    # Canonical base64url only (RFC 7515): the decoder above skips characters outside
    # the alphabet, accepts "+/" and "=" and ignores the unused low bits.
    if _b64e(raw) != seg:
        raise ValueError("not canonical base64url")
    return raw


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class PyTokenVerifier:
    """Reference implementation of ``TokenVerifier`` (tests only; not on the hot path)."""

    def __init__(self, secret: str, issuer: str | None, cache_size: int = 65_536):
        self._key = secret.encode()
        self._issuer = issuer
        self._cache: dict[str, tuple[int, float]] = {}
        self._cache_size = cache_size

    def user_id(self, authorization: str | None, now: float | None = None) -> int:
        """The user id of a valid ``Bearer`` token, else AuthError."""
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("missing bearer token")
        token = authorization[7:]
        now = time.time() if now is None else now
        hit = self._cache.get(token)
        if hit is not None:
            if now < hit[1]:
                return hit[0]
            del self._cache[token]
            raise AuthError("token expired")
        user_id, exp = self._verify(token, now)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # cheap bound; a cold cache only costs a re-verify
        self._cache[token] = (user_id, exp)
        return user_id

    def _verify(self, token: str, now: float) -> tuple[int, float]:
        parts = token.split(".")
        if len(parts) != 3:
            raise AuthError("malformed token")
        h, p, s = parts
        try:
            header = _header_dec.decode(_b64d(h))
            sig = _b64d(s)
        except (ValueError, msgspec.DecodeError) as exc:
            raise AuthError("malformed token") from exc
        if header.alg != "HS256":
            raise AuthError("unsupported alg")
        want = hmac.new(self._key, f"{h}.{p}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(want, sig):
            raise AuthError("bad signature")
        try:
            claims = _claims_dec.decode(_b64d(p))
        except (ValueError, msgspec.DecodeError) as exc:
            raise AuthError("malformed claims") from exc
        if now >= claims.exp:
            raise AuthError("token expired")
        if claims.nbf is not None and now < claims.nbf:
            raise AuthError("token not yet valid")
        if self._issuer is not None and claims.iss != self._issuer:
            raise AuthError("wrong issuer")
        if not (claims.sub.isascii() and claims.sub.isdigit()) or len(claims.sub) > 18:
            raise AuthError("sub must be a numeric user id")
        return int(claims.sub), float(claims.exp)


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
