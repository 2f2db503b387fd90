"""The pure-Python reference of ``nexuscart._core.TokenVerifier``: the same rules, in the
same order, with the same reasons. Tests only (compared with the Rust one in
test_token_verifier.py); the shipped package has only the Rust verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Final

import msgspec

from nexuscart.auth import AuthError


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


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64d(seg: str) -> bytes:
    raw = base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))
    # Canonical base64url only (RFC 7515): the decoder above skips characters outside
    # the alphabet, accepts "+/" and "=" and ignores the unused low bits.
    if _b64e(raw) != seg:
        raise ValueError("not canonical base64url")
    return raw


class PyTokenVerifier:
    """Reference implementation of ``TokenVerifier`` (tests only; not on the hot path)."""

    def __init__(
        self,
        secret: str,
        issuer: str | None,
        cache_size: int = 65_536,
        *,
        max_ttl_s: float = 86_400.0,
    ):
        self._key = secret.encode()
        self._max_ttl_s = max_ttl_s
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
        if float(claims.exp) > now + self._max_ttl_s:
            raise AuthError("token lifetime too long")
        if claims.nbf is not None and now < claims.nbf:
            raise AuthError("token not yet valid")
        if self._issuer is not None and claims.iss != self._issuer:
            raise AuthError("wrong issuer")
        sub = claims.sub
        if not (sub.isascii() and sub.isdigit()) or len(sub) > 18 or int(sub) == 0:
            raise AuthError("sub must be a numeric user id")
        return int(claims.sub), float(claims.exp)
