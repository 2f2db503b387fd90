"""Account rules, pure: email normalisation, the password policy, display names, roles and the
refresh-token format. No I/O (docs/accounts.md)."""

from __future__ import annotations

import functools
import re
import secrets
import unicodedata
from typing import Final, NamedTuple

ROLES: Final = ("customer", "seller", "admin")
DEFAULT_ROLES: Final = ("customer",)

EMAIL_MAX: Final = 254  # RFC 5321 path limit
LOCAL_MAX: Final = 64
PASSWORD_MIN: Final = 8  # NIST SP 800-63B
# Argon2 hashes any length at the same cost, but a cap keeps a megabyte password from being
# normalised and copied around; 128 characters is well above any passphrase.
PASSWORD_MAX: Final = 128
DISPLAY_NAME_MAX: Final = 100


class PolicyError(ValueError):
    """Input breaks an account rule; ``problems`` lists every rule broken, for the client."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


_DOMAIN: Final = re.compile(r"^[^\s@.]+(\.[^\s@.]+)+$")


def normalise_email(raw: str) -> str:
    """The one spelling of an address under which accounts are unique and looked up: NFKC
    (full-width and compatibility forms fold to their plain letters), surrounding spaces
    dropped, and the whole address case-folded. The local part is case-sensitive in theory
    (RFC 5321) but no mainstream provider treats it so, and two accounts that differ only in
    case would be a support and phishing hazard. Dots and ``+tags`` are kept: they are
    provider-specific. Raises PolicyError for an address that cannot be one."""
    email = unicodedata.normalize("NFKC", raw).strip().casefold()
    local, at, domain = email.rpartition("@")
    problems = []
    if not at or not local or not domain:
        problems.append("email must look like name@example.com")
    elif len(email) > EMAIL_MAX or len(local) > LOCAL_MAX:
        problems.append(f"email must be at most {EMAIL_MAX} characters ({LOCAL_MAX} before @)")
    elif "@" in local or not _DOMAIN.match(domain):
        problems.append("email must look like name@example.com")
    elif not email.isprintable() or any(c.isspace() for c in email):
        problems.append("email must not contain spaces or control characters")
    if problems:
        raise PolicyError(problems)
    return email


def normalise_display_name(raw: str) -> str:
    name = unicodedata.normalize("NFKC", raw).strip()
    if not 1 <= len(name) <= DISPLAY_NAME_MAX or not name.isprintable():
        raise PolicyError([f"display_name must be 1 to {DISPLAY_NAME_MAX} printable characters"])
    return name


@functools.cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords of zxcvbn's frequency list (shipped with the
    package; no network call), lower-cased."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.casefold() for p in FREQUENCY_LISTS["passwords"])


def check_password(password: str, email: str = "", display_name: str = "") -> None:
    """The password policy (NIST SP 800-63B): length bounds, not a common or breached
    password, not the account's own email or name. Raises PolicyError naming every rule
    broken. Characters are counted after NFKC, as they are hashed."""
    pw = unicodedata.normalize("NFKC", password)
    problems = []
    if len(pw) < PASSWORD_MIN:
        problems.append(f"password must have at least {PASSWORD_MIN} characters")
    if len(pw) > PASSWORD_MAX:
        problems.append(f"password must have at most {PASSWORD_MAX} characters")
    folded = pw.casefold()
    if folded in common_passwords():
        problems.append("password is too common (it is on a list of breached passwords)")
    own = {email.casefold(), email.casefold().partition("@")[0], display_name.casefold()}
    if folded in own - {""}:
        problems.append("password must not be the email or the display name")
    if problems:
        raise PolicyError(problems)


def password_bytes(password: str) -> bytes:
    """What is hashed: NFKC, so the same password typed on another keyboard matches."""
    return unicodedata.normalize("NFKC", password).encode()


def check_roles(roles: list[str]) -> tuple[str, ...]:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise PolicyError([f"roles must be a non-empty subset of {', '.join(ROLES)}"])
    return tuple(r for r in ROLES if r in roles)  # canonical order, no repeats


# -- refresh tokens ---------------------------------------------------------------------
# ``rt1.<user id>.<family id>.<secret>``: the user id picks the Redis hash tag of the user's
# sessions, the family id the session; only a hash of the whole token is stored.

TOKEN_PREFIX: Final = "rt1"
_ID: Final = re.compile(r"^[1-9][0-9]{0,17}$")
_HEX32: Final = re.compile(r"^[0-9a-f]{32}$")
_SECRET: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")  # token_urlsafe(32)
TOKEN_MAX: Final = 128


class RefreshToken(NamedTuple):
    user_id: int
    family: str
    raw: str


def new_family() -> str:
    return secrets.token_hex(16)


def new_refresh_token(user_id: int, family: str) -> RefreshToken:
    raw = f"{TOKEN_PREFIX}.{user_id}.{family}.{secrets.token_urlsafe(32)}"
    return RefreshToken(user_id, family, raw)


def parse_refresh_token(raw: str) -> RefreshToken | None:
    """The parts of a well-formed refresh token, else None (then it is simply invalid)."""
    if len(raw) > TOKEN_MAX:
        return None
    parts = raw.split(".")
    if len(parts) != 4 or parts[0] != TOKEN_PREFIX:
        return None
    _, uid, family, secret = parts
    if not (_ID.match(uid) and _HEX32.match(family) and _SECRET.match(secret)):
        return None
    return RefreshToken(int(uid), family, raw)


def lock_seconds(failures: int, free: int, base_s: float, max_s: float) -> float:
    """The brute-force lock after ``failures`` counted attempts: none within the free
    ones, then ``base_s`` doubling per attempt, at most ``max_s`` (lua/login_attempt.lua
    computes the same; tests compare them)."""
    if failures < free:
        return 0.0
    return float(min(max_s, base_s * 2 ** min(failures - free, 40)))
