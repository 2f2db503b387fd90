"""The pure-Python reference of ``nexuscart._core.TokenVerifier``: the same rules, in the
same order, with the same reasons. Tests only (compared with the Rust one in
test_token_verifier.py); the shipped package has only the Rust verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from typing import Any, Final

import msgspec

from nexuscart.auth import AuthError


class _Header(msgspec.Struct):
    alg: str
    typ: str | None = None


class _Claims(msgspec.Struct):
    sub: str
    exp: int | float
    iat: int | float
    iss: str | None = None
    nbf: int | float | None = None
    roles: Any = msgspec.UNSET  # checked after the other claims ("bad roles")


IAT_LEEWAY_S: Final = 5.0
ROLE_BITS: Final = {"customer": 1, "seller": 2, "admin": 4}


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
        max_revocations: int = 1_000_000,
    ):
        self._key = secret.encode()
        self._max_ttl_s = max_ttl_s
        self._issuer = issuer
        # token -> (user id, role bits, exp, iat)
        self._cache: dict[str, tuple[int, int, float, float]] = {}
        self._cache_size = cache_size
        self._revoked: dict[int, float] = {}  # user id -> not before
        self._max_revocations = max(1, max_revocations)

    def user_id(self, authorization: str | None, now: float | None = None) -> int:
        """The user id of a valid ``Bearer`` token, else AuthError."""
        return self.principal(authorization, now)[0]

    def principal(self, authorization: str | None, now: float | None = None) -> tuple[int, int]:
        """(user id, role bits) of a valid ``Bearer`` token, else AuthError."""
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("missing bearer token")
        token = authorization[7:]
        now = time.time() if now is None else now
        hit = self._cache.get(token)
        if hit is not None:
            if now < hit[2]:
                self._check_revoked(hit[0], hit[3])
                return hit[0], hit[1]
            del self._cache[token]
            raise AuthError("token expired")
        user_id, roles, exp, iat = self._verify(token, now)
        self._check_revoked(user_id, iat)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # cheap bound; a cold cache only costs a re-verify
        self._cache[token] = (user_id, roles, exp, iat)
        return user_id, roles

    def _check_revoked(self, user_id: int, iat: float) -> None:
        not_before = self._revoked.get(user_id)
        if not_before is not None and iat < not_before:
            raise AuthError("token revoked")

    def revoke_before(self, user_id: int, epoch_s: float, now: float | None = None) -> None:
        if not math.isfinite(epoch_s):
            raise ValueError("epoch_s must be finite")
        now = time.time() if now is None else now
        old = self._revoked.get(user_id)
        if old is not None:
            self._revoked[user_id] = max(old, epoch_s)
            return
        if len(self._revoked) >= self._max_revocations:
            moot = now - self._max_ttl_s - 1.0
            self._revoked = {u: nb for u, nb in self._revoked.items() if nb > moot}
            if len(self._revoked) >= self._max_revocations:
                raise ValueError("revocation map full")
        self._revoked[user_id] = float(epoch_s)

    def clear_revocations(self) -> None:
        self._revoked.clear()

    def revocations_len(self) -> int:
        return len(self._revoked)

    def _verify(self, token: str, now: float) -> tuple[int, int, float, float]:
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
        if now + IAT_LEEWAY_S < claims.iat:
            raise AuthError("token issued in the future")
        exp, iat = float(claims.exp), float(claims.iat)
        if exp > iat + self._max_ttl_s:
            raise AuthError("token lifetime too long")
        roles = 0
        if claims.roles is not msgspec.UNSET:
            if not isinstance(claims.roles, list) or not all(
                isinstance(r, str) for r in claims.roles
            ):
                raise AuthError("bad roles")
            for r in claims.roles:
                roles |= ROLE_BITS.get(r, 0)
        return int(claims.sub), roles, exp, iat
