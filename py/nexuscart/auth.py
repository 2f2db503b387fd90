"""Access tokens (HS256 JWT) and roles. Pure, no I/O.

Tokens are verified by ``nexuscart._core.TokenVerifier`` (Rust, crate module ``token``): a
lean verifier instead of a general JWT library on the hot path. It accepts exactly one
algorithm (HS256, so no alg-confusion), checks ``exp`` (at most a maximum lifetime ahead),
``nbf``, ``iss``, ``iat`` and ``roles``, applies per-user revocations
(``revoke_before``), and caches recent verified tokens, since a buyer in a storm retries
with the same token. It raises ``AuthError`` (re-exported here); ``str(exc)`` is the
reason. A pure-Python reference with the same rules, order and reasons lives with the tests
that compare the two (tests/token_reference.py).

This module mints access tokens (``issue``: the login code, tests, load generators) and
names the roles: ``TokenVerifier.principal`` returns the roles as bits (``ROLE_BITS``).

``iat`` carries milliseconds, rounded up: a revocation at time t (``revoke_before``) refuses
the tokens issued before t, and a token minted after t, even in the same second (a login
right after a password change), is accepted. Whole seconds would either keep the old tokens
of that second or refuse the new one; with milliseconds rounded up, only a token minted in
the same millisecond before t survives, and a token minted after t never has an ``iat``
before t (same clock).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Iterable
from typing import Final

import msgspec

from nexuscart._core import AuthError

__all__ = [
    "ACCESS_TOKEN_TTL_S",
    "ADMIN",
    "CUSTOMER",
    "ROLES",
    "ROLE_BITS",
    "SELLER",
    "AuthError",
    "has_role",
    "issue",
    "role_bits",
    "role_names",
]

CUSTOMER: Final = "customer"
SELLER: Final = "seller"
ADMIN: Final = "admin"
ROLES: Final = (CUSTOMER, SELLER, ADMIN)
# The bits TokenVerifier.principal() returns (the Rust verifier has the same table).
ROLE_BITS: Final[dict[str, int]] = {CUSTOMER: 1, SELLER: 2, ADMIN: 4}

ACCESS_TOKEN_TTL_S: Final = 900

_enc: Final = msgspec.json.Encoder()
_HEADER: Final = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()


def role_bits(names: Iterable[str]) -> int:
    """The bits of role names; unknown names have none."""
    bits = 0
    for name in names:
        bits |= ROLE_BITS.get(name, 0)
    return bits


def role_names(bits: int) -> tuple[str, ...]:
    """The role names of bits, in ROLES order."""
    return tuple(name for name in ROLES if bits & ROLE_BITS[name])


def has_role(bits: int, role: str) -> bool:
    return bool(bits & ROLE_BITS[role])


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class _Claims(msgspec.Struct, frozen=True):
    sub: str
    roles: list[str]
    iat: float
    exp: int
    iss: str
    jti: str


def issue(
    secret: str,
    user_id: int,
    ttl_s: int = ACCESS_TOKEN_TTL_S,
    issuer: str = "nexuscart",
    now: float | None = None,
    roles: Iterable[str] = (CUSTOMER,),
    jti: str | None = None,
) -> str:
    """Mint an access token: ``sub`` (the user id), ``roles``, ``iat`` (with milliseconds,
    see the module doc), ``exp`` (``iat`` + ``ttl_s``, whole seconds), ``iss`` and ``jti``
    (random when None)."""
    now = time.time() if now is None else now
    iat = math.ceil(now * 1000) / 1000
    claims = _Claims(
        sub=str(user_id),
        roles=list(roles),
        iat=iat,
        exp=int(now) + ttl_s,
        iss=issuer,
        jti=secrets.token_urlsafe(12) if jti is None else jti,
    )
    p = _b64e(_enc.encode(claims))
    sig = hmac.new(secret.encode(), f"{_HEADER}.{p}".encode(), hashlib.sha256).digest()
    return f"{_HEADER}.{p}.{_b64e(sig)}"
