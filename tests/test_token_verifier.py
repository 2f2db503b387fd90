"""Access-token verification: the Rust ``TokenVerifier`` against the Python reference.

``nexuscart._core.TokenVerifier`` is the Rust one;
``tests.token_reference.PyTokenVerifier`` is the pure-Python reference. The property tests feed
both the same ``Authorization`` values (tokens minted by ``auth.issue``, by PyJWT and by
hand, tampered ones, garbage) and the same revocations, and require the same outcome: the
same principal (user id, role bits), or the same rejection reason. Time is injected (``now``)
everywhere except where the default clock itself is tested. Pure logic, no servers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import threading
import time
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt import api_jws

# isort: split
from nexuscart import _core, auth
from nexuscart._core import NexusCartError, OutOfRange, TokenVerifier
from nexuscart.auth import AuthError
from tests.token_reference import PyTokenVerifier

SECRET = "nexuscart-test-secret-" + "k" * 42  # 64 bytes: PyJWT wants >= 48 for HS384
OTHER_SECRET = "some-other-secret-" + "o" * 46
ISSUER = "nexuscart"
NOW = 1_700_000_000.0
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

Verifier = TokenVerifier | PyTokenVerifier


def b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(header: str | bytes, payload: str | bytes, secret: str = SECRET) -> str:
    """A token with exactly these JSON texts, HMAC-SHA256 signed whatever its alg says."""
    h = b64e(header.encode() if isinstance(header, str) else header)
    p = b64e(payload.encode() if isinstance(payload, str) else payload)
    sig = hmac.new(secret.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64e(sig)}"


def claims_json(**claims: Any) -> str:
    return json.dumps(claims)


HS256 = '{"alg":"HS256","typ":"JWT"}'
ALG_NONE = '{"alg":"none"}'
HS384 = '{"alg":"HS384"}'
IAT = int(NOW) - 10
GOOD = claims_json(sub="42", iss=ISSUER, iat=IAT, exp=int(NOW) + 3600)


def outcome(v: Verifier, authorization: str | None, now: float) -> int | str:
    try:
        return v.user_id(authorization, now)
    except AuthError as exc:
        return f"rejected: {exc}"


def principal(v: Verifier, authorization: str | None, now: float) -> tuple[int, int] | str:
    try:
        return v.principal(authorization, now)
    except AuthError as exc:
        return f"rejected: {exc}"


def pair(
    issuer: str | None = ISSUER, cache_size: int = 64
) -> tuple[TokenVerifier, PyTokenVerifier]:
    return TokenVerifier(SECRET, issuer, cache_size), PyTokenVerifier(SECRET, issuer, cache_size)


def both(authorization: str | None, now: float = NOW, issuer: str | None = ISSUER) -> int | str:
    """The outcome both verifiers agree on (fresh verifiers; the second call may hit the
    cache and must still agree)."""
    rust, ref = pair(issuer)
    first = outcome(rust, authorization, now)
    assert first == outcome(ref, authorization, now), authorization
    again = principal(rust, authorization, now)
    assert again == principal(ref, authorization, now), authorization
    assert rust.cache_len() == len(ref._cache)
    return first


# -- the exception and the API -----------------------------------------------------------


def test_auth_error_is_the_rust_exception_in_the_hierarchy() -> None:
    assert auth.AuthError is _core.AuthError
    assert issubclass(AuthError, NexusCartError)
    assert not issubclass(AuthError, ValueError)
    with pytest.raises(NexusCartError, match=r"^missing bearer token$"):
        TokenVerifier(SECRET, ISSUER).user_id(None)


def test_constructor_and_introspection() -> None:
    v = TokenVerifier(SECRET, ISSUER)
    assert (v.issuer, v.cache_size, v.cache_len()) == (ISSUER, 65536, 0)
    assert repr(v) == "<TokenVerifier issuer='nexuscart' cache_size=65536>"
    assert TokenVerifier(SECRET, None, cache_size=3).issuer is None
    assert repr(TokenVerifier(SECRET, None, 3)) == "<TokenVerifier issuer=None cache_size=3>"
    with pytest.raises(OutOfRange):
        TokenVerifier(SECRET, ISSUER, -1)
    with pytest.raises(TypeError):
        TokenVerifier(SECRET.encode(), ISSUER)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        v.user_id(b"Bearer x")  # type: ignore[arg-type]


def test_default_clock_is_the_wall_clock() -> None:
    v = TokenVerifier(SECRET, ISSUER)
    assert v.user_id("Bearer " + auth.issue(SECRET, 7, ttl_s=60)) == 7
    with pytest.raises(AuthError, match="token expired"):
        v.user_id("Bearer " + auth.issue(SECRET, 7, ttl_s=-1))
    future = auth.issue(SECRET, 8, ttl_s=60, now=time.time() + 3600)
    with pytest.raises(AuthError, match="token issued in the future"):
        v.user_id("Bearer " + future)
    soon = auth.issue(SECRET, 8, ttl_s=60, now=time.time() + 4)  # within the leeway
    assert v.principal("Bearer " + soon) == (8, auth.ROLE_BITS["customer"])


# -- one explicit case per reason (both implementations) ---------------------------------

_valid = signed(HS256, GOOD)
_h, _p, _s = _valid.split(".")
_sig = base64.urlsafe_b64decode(_s + "=")
_flipped = b64e(bytes([_sig[0] ^ 1]) + _sig[1:])
# The same signature bytes with non-zero unused low bits in the last character (43 chars
# carry 256 bits + 2 unused): a lenient decoder (Python's base64 module) reads the valid
# signature from it; both verifiers refuse it.
_noncanonical = _s[:-1] + B64URL[B64URL.index(_s[-1]) | 1]


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        pytest.param(f"Bearer {_valid}", 42, id="valid"),
        pytest.param(None, "missing bearer token", id="none"),
        pytest.param("", "missing bearer token", id="empty"),
        pytest.param(_valid, "missing bearer token", id="no-scheme"),
        pytest.param(f"bearer {_valid}", "missing bearer token", id="lowercase-scheme"),
        pytest.param(f"Basic {_valid}", "missing bearer token", id="basic"),
        pytest.param("Bearer ", "malformed token", id="empty-token"),
        pytest.param(f"Bearer  {_valid}", "malformed token", id="two-spaces"),
        pytest.param(f"Bearer {_h}.{_p}", "malformed token", id="two-segments"),
        pytest.param(f"Bearer {_valid}.{_s}", "malformed token", id="four-segments"),
        pytest.param(f"Bearer {_h}.{_p}.{_s}=", "malformed token", id="padded-signature"),
        pytest.param(f"Bearer {_h}.{_p}.{_noncanonical}", "malformed token", id="non-canonical"),
        pytest.param(f"Bearer {_h}.{_p}.{_s}AA", "malformed token", id="sig-length-1-mod-4"),
        pytest.param(
            f"Bearer {b64e(b'not json')}.{_p}.{_s}", "malformed token", id="header-not-json"
        ),
        pytest.param(f"Bearer {b64e(b'{}')}.{_p}.{_s}", "malformed token", id="header-without-alg"),
        pytest.param("Bearer " + signed(ALG_NONE, GOOD), "unsupported alg", id="alg-none"),
        pytest.param(
            f"Bearer {b64e(ALG_NONE.encode())}.{_p}.", "unsupported alg", id="alg-none-unsigned"
        ),
        pytest.param("Bearer " + signed(HS384, GOOD), "unsupported alg", id="alg-hs384"),
        pytest.param(
            f"Bearer {signed(HS256, GOOD, OTHER_SECRET)}", "bad signature", id="other-secret"
        ),
        pytest.param(f"Bearer {_h}.{_p}.{_flipped}", "bad signature", id="flipped-bit"),
        pytest.param(f"Bearer {_h}.{_p}.", "bad signature", id="empty-signature"),
        pytest.param(
            f"Bearer {_h}.{b64e(GOOD.replace('42', '43').encode())}.{_s}",
            "bad signature",
            id="tampered-payload",
        ),
        pytest.param(
            f"Bearer {signed(HS256, 'not json')}", "malformed claims", id="claims-not-json"
        ),
        pytest.param(
            f"Bearer {signed(HS256, claims_json(sub='42', iss=ISSUER))}",
            "malformed claims",
            id="no-exp",
        ),
        pytest.param(
            f"Bearer {signed(HS256, claims_json(iat=IAT, sub=42, iss=ISSUER, exp=NOW + 60))}",
            "malformed claims",
            id="sub-not-a-string",
        ),
        pytest.param(
            f"Bearer {signed(HS256, claims_json(iat=IAT, sub='42', iss=ISSUER, exp=NOW))}",
            "token expired",
            id="expired-at-exp",
        ),
        pytest.param(
            "Bearer "
            + signed(
                HS256, claims_json(iat=IAT, sub="42", iss=ISSUER, exp=NOW + 60, nbf=NOW + 0.5)
            ),
            "token not yet valid",
            id="nbf",
        ),
        pytest.param(
            f"Bearer {signed(HS256, claims_json(iat=IAT, sub='42', iss='other', exp=NOW + 60))}",
            "wrong issuer",
            id="other-issuer",
        ),
        pytest.param(
            f"Bearer {signed(HS256, claims_json(iat=IAT, sub='42', exp=NOW + 60))}",
            "wrong issuer",
            id="no-issuer",
        ),
        pytest.param(
            f"Bearer {signed(HS256, claims_json(iat=IAT, sub='-1', iss=ISSUER, exp=NOW + 60))}",
            "sub must be a numeric user id",
            id="negative-sub",
        ),
        pytest.param(
            f"Bearer {signed(HS256, claims_json(iat=IAT, sub='1' * 19, iss=ISSUER, exp=NOW + 60))}",
            "sub must be a numeric user id",
            id="19-digits",
        ),
        pytest.param(
            f"Bearer {signed(HS256, claims_json(iat=IAT, sub='١٢', iss=ISSUER, exp=NOW + 60))}",
            "sub must be a numeric user id",
            id="arabic-indic-digits",
        ),
        pytest.param(
            f"Bearer {signed(HS256, claims_json(iat=IAT, sub='²', iss=ISSUER, exp=NOW + 60))}",
            "sub must be a numeric user id",
            id="superscript-digit",
        ),
        pytest.param(
            f"Bearer {signed(HS256, claims_json(sub='42', iss=ISSUER, exp=NOW + 60))}",
            "malformed claims",
            id="no-iat",
        ),
        pytest.param(
            "Bearer "
            + signed(HS256, claims_json(iat=NOW + 5.5, sub="4", iss=ISSUER, exp=NOW + 60)),
            "token issued in the future",
            id="iat-in-the-future",
        ),
        pytest.param(
            f"Bearer {signed(HS256, claims_json(iat=NOW + 5, sub='4', iss=ISSUER, exp=NOW + 60))}",
            4,
            id="iat-within-the-leeway",
        ),
        pytest.param(
            "Bearer "
            + signed(HS256, claims_json(iat=NOW - 86_401, sub="4", iss=ISSUER, exp=NOW + 60)),
            "token lifetime too long",
            id="exp-minus-iat-too-long",
        ),
        pytest.param(
            "Bearer "
            + signed(HS256, claims_json(iat=IAT, sub="4", iss=ISSUER, exp=NOW + 60, roles="admin")),
            "bad roles",
            id="roles-not-a-list",
        ),
        pytest.param(
            "Bearer "
            + signed(
                HS256, claims_json(iat=IAT, sub="4", iss=ISSUER, exp=NOW + 60, roles=["admin", 4])
            ),
            "bad roles",
            id="roles-not-strings",
        ),
    ],
)
def test_each_reason(authorization: str | None, expected: int | str) -> None:
    want = expected if isinstance(expected, int) else f"rejected: {expected}"
    assert both(authorization) == want


def test_pyjwt_tokens() -> None:
    claims = {"sub": "9", "iss": ISSUER, "iat": IAT, "exp": int(NOW) + 60}
    assert both("Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")) == 9
    hs384 = jwt.encode(claims, SECRET, algorithm="HS384")
    assert both("Bearer " + hs384) == "rejected: unsupported alg"
    none = jwt.encode(claims, None, algorithm="none")
    assert both("Bearer " + none) == "rejected: unsupported alg"


@pytest.mark.parametrize(
    ("roles", "bits"),
    [
        ([], 0),
        (["customer"], 1),
        (["seller", "customer"], 3),
        (["admin"], 4),
        (["admin", "superuser", "ADMIN"], 4),
        (["customer", "seller", "admin", "customer"], 7),
    ],
)
def test_roles_become_bits_and_unknown_names_grant_nothing(roles: list[str], bits: int) -> None:
    token = "Bearer " + auth.issue(SECRET, 12, now=NOW, roles=roles)
    for v in pair():
        assert v.principal(token, NOW) == (12, bits)
        assert v.principal(token, NOW) == (12, bits)  # cached
    assert auth.role_bits(roles) == bits
    assert auth.role_names(bits) == tuple(r for r in auth.ROLES if r in roles)
    absent = "Bearer " + signed(HS256, claims_json(iat=IAT, sub="3", iss=ISSUER, exp=NOW + 60))
    assert both(absent) == 3
    assert TokenVerifier(SECRET, ISSUER).principal(absent, NOW) == (3, 0)


def test_issued_tokens_carry_the_contract_claims() -> None:
    token = auth.issue(SECRET, 77, now=NOW + 0.0004, roles=("seller",))
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["sub"] == "77"
    assert claims["roles"] == ["seller"]
    assert claims["iss"] == ISSUER
    assert claims["exp"] == int(NOW) + auth.ACCESS_TOKEN_TTL_S
    assert claims["iat"] == NOW + 0.001  # milliseconds, rounded up
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 16
    other = jwt.decode(
        auth.issue(SECRET, 77, now=NOW), SECRET, algorithms=["HS256"], options={"verify_exp": False}
    )
    assert other["jti"] != claims["jti"]
    assert other["roles"] == ["customer"]
    assert (
        jwt.decode(
            auth.issue(SECRET, 1, now=NOW, jti="j-1"),
            SECRET,
            algorithms=["HS256"],
            options={"verify_exp": False},
        )["jti"]
        == "j-1"
    )


# -- revocation --------------------------------------------------------------------------


def test_revoked_tokens_are_refused_cached_or_not() -> None:
    old = "Bearer " + auth.issue(SECRET, 5, now=NOW - 60)
    other = "Bearer " + auth.issue(SECRET, 6, now=NOW - 60)
    for v in pair():
        assert v.principal(old, NOW) == (5, 1)
        assert v.revocations_len() == 0
        v.revoke_before(5, NOW - 1)
        assert v.revocations_len() == 1
        for _ in range(2):
            with pytest.raises(AuthError, match=r"^token revoked$"):
                v.principal(old, NOW)
            with pytest.raises(AuthError, match=r"^token revoked$"):
                v.user_id(old, NOW)
        assert v.principal(other, NOW) == (6, 1)
        # a token issued at or after the time works; the time only moves forward
        assert v.principal("Bearer " + auth.issue(SECRET, 5, now=NOW - 1.0005), NOW) == (5, 1)
        v.revoke_before(5, NOW - 3600)
        with pytest.raises(AuthError, match="token revoked"):
            v.principal(old, NOW)
        v.clear_revocations()
        assert v.revocations_len() == 0
        assert v.principal(old, NOW) == (5, 1)


def test_a_login_in_the_same_second_as_a_revocation_gets_a_working_token() -> None:
    """iat has milliseconds rounded up: a token minted after the revocation time, even in the
    same second, is accepted; one minted before it, in the same second, is refused."""
    v = TokenVerifier(SECRET, ISSUER)
    second = float(int(NOW))
    before = "Bearer " + auth.issue(SECRET, 9, now=second + 0.2)
    v.revoke_before(9, second + 0.5)  # e.g. a password change at .5
    after = "Bearer " + auth.issue(SECRET, 9, now=second + 0.5001)
    with pytest.raises(AuthError, match="token revoked"):
        v.principal(before, second + 0.6)
    assert v.principal(after, second + 0.6) == (9, 1)


def test_revoke_before_checks_its_arguments_and_bound() -> None:
    v = TokenVerifier(SECRET, ISSUER, max_ttl_s=100.0, max_revocations=2)
    assert v.max_revocations == 2
    for bad in (math.nan, math.inf):
        with pytest.raises(NexusCartError):
            v.revoke_before(1, bad)
    with pytest.raises(OutOfRange):
        v.revoke_before(-1, NOW)
    v.revoke_before(1, 1000.0, now=1000.0)
    v.revoke_before(2, 1050.0, now=1000.0)
    with pytest.raises(NexusCartError, match="full"):
        v.revoke_before(3, 1000.0, now=1000.0)
    v.revoke_before(3, 1101.5, now=1101.5)  # user 1's entry (older than max_ttl_s) dropped
    assert v.revocations_len() == 2


def test_issuer_none_accepts_any_issuer() -> None:
    for claims in (
        claims_json(iat=IAT, sub="5", exp=NOW + 60),
        claims_json(iat=IAT, sub="5", exp=NOW + 60, iss="x"),
    ):
        assert both("Bearer " + signed(HS256, claims), issuer=None) == 5


def test_exact_time_comparisons() -> None:
    big = 2**53 + 1  # not representable as a float
    token = "Bearer " + signed(HS256, claims_json(iat=2**53 - 10, sub="1", iss=ISSUER, exp=big))
    assert both(token, now=float(2**53)) == 1
    assert both(token, now=float(2**53 + 2)) == "rejected: token expired"
    for now in (math.nan, math.inf, -math.inf):
        both(token, now=now)


def test_json_corner_cases_agree() -> None:
    cases = [
        '{"alg":"none","alg":"HS256"}',  # the last duplicate wins
        '{"al\\u0067":"HS256"}',
        '{"alg":"HS256","typ":1}',
        '{"alg":"HS256","x":"\\ud800"}',  # lone surrogate, even in a skipped member
        '{"t\x01p":"JWT","alg":"HS256"}',  # raw control character, even in a name
        '{"alg":"HS256","x":"\\ud83d\\ude00"}',
        '{"alg":"HS256","x":1e999}',  # skipped numbers are not range checked
        ' {"alg":"HS256"}\n',
        '{"alg":"HS256"}\f',
        '["HS256"]',
    ]
    for header in cases:
        both("Bearer " + signed(header, GOOD))
    payloads = [
        '{"sub":"1","sub":"2","iss":"nexuscart","iat":1699999990,"exp":1700000060}',
        '{"sub":"1","iss":"nexuscart","iat":0,"exp":1e400}',
        '{"sub":"1","iss":"nexuscart","iat":0,"exp":123456789012345678901234567890}',
        '{"sub":"1","iss":"nexuscart","iat":0,"exp":-0}',
        '{"sub":"1","iss":"nexuscart","iat":0,"exp":true}',
        '{"sub":"1","iss":"nexuscart","exp":1700000060}',
        '{"sub":"1","iss":"nexuscart","iat":null,"exp":1700000060}',
        '{"sub":"1","iss":"nexuscart","iat":1699999990,"exp":1700000060,"roles":null}',
        '{"sub":"1","iss":"nexuscart","iat":1699999990,"exp":1700000060,"roles":["admin",[1e999]]}',
        '{"sub":"1","iss":"nexuscart","iat":1699999990,"exp":1700000060,"roles":[{"a":1e99}]}',
        '{"sub":"1","iss":"nexuscart","iat":1699999990,"exp":1700000060,"roles":[1e40000000]}',
        '{"sub":"1","iss":"nexuscart","iat":1699999990,"exp":1700000060,"roles":[12345678901234567890123]}',
        '{"sub":"1","iss":"nexuscart","iat":1699999990,"exp":1700000060,"roles":["\\u0061dmin"]}',
        '{"sub":"1","iss":"nexuscart","iat":1699999990,"exp":1700000060,"roles":[],"roles":["seller"]}',
        '{"sub":"1","iss":"nexuscart","iat":1699999990,"exp":1700000060,"nbf":null}',
        '{"sub":"1","iss":null,"iat":1699999990,"exp":1700000060}',
        '{"sub":"1","iss":"nexuscart","iat":1699999990,"exp":1700000060,"x":"\\udc00"}',
        '{"sub":"1","iss":"nexuscart","iat":1699999990,"exp":1700000060,}',
    ]
    for payload in payloads:
        both("Bearer " + signed(HS256, payload))
    # Invalid UTF-8 is an error in values that are read, not in skipped ones (msgspec).
    both("Bearer " + signed(b'{"alg":"HS256","x":"\xff"}', GOOD))
    both("Bearer " + signed(b'{"\xff":1,"alg":"HS256"}', GOOD))
    both("Bearer " + signed(b'{"alg":"HS256\xff"}', GOOD))


def test_non_utf8_encodable_authorization() -> None:
    v = TokenVerifier(SECRET, ISSUER)
    with pytest.raises(AuthError, match=r"^malformed token$"):
        v.user_id(f"Bearer {_h}.{_p}.\udcff")
    with pytest.raises(AuthError, match=r"^missing bearer token$"):
        v.user_id("\udcff")


# -- the cache ---------------------------------------------------------------------------


def test_cached_token_is_rejected_after_exp_and_dropped() -> None:
    token = "Bearer " + signed(HS256, claims_json(iat=0, sub="5", iss=ISSUER, exp=1000))
    for v in pair():
        assert v.user_id(token, 500.0) == 5
        assert v.user_id(token, 999.5) == 5
        with pytest.raises(AuthError, match="token expired"):
            v.user_id(token, 1000.0)
    rust = TokenVerifier(SECRET, ISSUER)
    rust.user_id(token, 1.0)
    assert rust.cache_len() == 1
    with pytest.raises(AuthError):
        rust.user_id(token, 1000.0)
    assert rust.cache_len() == 0
    rust.user_id(token, 1.0)
    rust.clear_cache()
    assert rust.cache_len() == 0


def test_cache_is_bounded() -> None:
    tokens = [auth.issue(SECRET, i, now=NOW) for i in range(1, 11)]
    rust, ref = pair(cache_size=4)
    for i, t in enumerate(tokens, start=1):
        assert rust.user_id("Bearer " + t, NOW) == ref.user_id("Bearer " + t, NOW) == i
        assert rust.cache_len() == len(ref._cache) <= 4
    zero = TokenVerifier(SECRET, ISSUER, 0)
    for t in tokens:
        zero.user_id("Bearer " + t, NOW)
        assert zero.cache_len() == 1


def test_concurrent_use() -> None:
    v = TokenVerifier(SECRET, ISSUER, 8)
    tokens = [auth.issue(SECRET, i, now=NOW) for i in range(1, 33)]
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                for i, t in enumerate(tokens, start=1):
                    assert v.user_id("Bearer " + t, NOW) == i
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert v.cache_len() <= 8


# -- properties: Rust and Python agree ---------------------------------------------------

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
secrets = st.sampled_from([SECRET, SECRET, OTHER_SECRET])
nows = st.one_of(
    st.just(NOW),
    st.integers(-3, 3).map(lambda d: NOW + d),
    st.floats(NOW - 5, NOW + 5),
)
subs = st.one_of(
    st.integers(0, 10**19).map(str),
    st.text("0123456789", max_size=20),
    st.sampled_from(["", "-1", "+1", " 1", "1 ", "١٢", "²", "\uff11", "0x1", "1e3", "00"]),
    text,
)
numbers: st.SearchStrategy[Any] = st.one_of(
    st.integers(-3, 3).map(lambda d: int(NOW) + d),
    st.floats(-3, 3).map(lambda d: NOW + d),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1700000000", True, None, [], {}]),
)
issuers = st.one_of(st.sampled_from([ISSUER, ISSUER, "other", "", None]), text)
role_lists = st.lists(
    st.one_of(
        st.sampled_from(["customer", "seller", "admin", "Admin", "root", ""]),
        text,
    ),
    max_size=4,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
any_claims = st.fixed_dictionaries(
    {},
    optional={
        "sub": subs,
        "exp": numbers,
        "nbf": numbers,
        "iss": issuers,
        "iat": numbers,
        "jti": json_values,
        "roles": st.one_of(role_lists, json_values),
        "x": json_values,
    },
)
# Mostly right, so that the later checks (exp, nbf, iss, sub) are reached often.
plausible_claims = st.fixed_dictionaries(
    {
        "sub": st.one_of(
            st.integers(0, 10**18 - 1).map(str), st.integers(0, 10**18 - 1).map(str), subs
        ),
        "exp": st.one_of(st.integers(-2, 10**6).map(lambda d: int(NOW) + d), numbers),
        "iss": st.sampled_from([ISSUER, ISSUER, ISSUER, "other", None]),
        "iat": st.one_of(
            st.integers(-(10**5), 8).map(lambda d: int(NOW) + d),
            st.floats(-100, 8).map(lambda d: NOW + d),
            numbers,
        ),
    },
    optional={
        "nbf": st.one_of(st.integers(-(10**6), 2).map(lambda d: int(NOW) + d), numbers),
        "roles": st.one_of(role_lists, role_lists, json_values),
        "x": json_values,
    },
)
claim_dicts = st.one_of(plausible_claims, plausible_claims, any_claims)
algs = st.sampled_from(["HS256", "HS256", "HS256", "HS384", "none"])


@st.composite
def issued(draw: st.DrawFn) -> str:
    return auth.issue(
        draw(secrets),
        draw(st.integers(-10, 10**19)),
        ttl_s=draw(st.one_of(st.integers(-5, 5), st.integers(60, 7200))),
        issuer=draw(st.sampled_from([ISSUER, ISSUER, "other", ""])),
        now=draw(nows),
        roles=draw(role_lists),
    )


@st.composite
def by_pyjwt(draw: st.DrawFn) -> str:
    """PyJWT: well-typed claims through ``jwt.encode``, arbitrary ones through the JWS
    layer (``jwt.encode`` refuses some types, e.g. a non-str ``iss``)."""
    alg = draw(algs)
    key = None if alg == "none" else draw(secrets)
    claims = draw(claim_dicts)
    headers = draw(st.sampled_from([None, {"typ": None}, {"kid": "k1"}, {"typ": 1}]))
    try:
        return jwt.encode(claims, key, algorithm=alg, headers=headers)
    except (TypeError, ValueError):
        payload = json.dumps(claims).encode()
        return api_jws.encode(payload, key, algorithm=alg, headers=headers)


@st.composite
def by_hand(draw: st.DrawFn) -> str:
    """Any header/payload text, signed with HMAC-SHA256 whatever the header says."""
    header = draw(
        st.one_of(
            st.sampled_from(
                [
                    HS256,
                    '{"alg":"HS256"}',
                    '{"typ":"JWT","alg":"HS256"}',
                    '{"alg":"none","alg":"HS256"}',
                    '{"alg":"HS256","alg":"none"}',
                    '{"alg":"HS256","typ":null}',
                    '{"alg":"HS256","typ":5}',
                    '{"alg":"none"}',
                    '{"alg":"HS256","x":"\\ud800"}',
                    '{"alg":"HS256","x":[1,{"y":1e999}]}',
                    "{}",
                    "",
                ]
            ),
            st.fixed_dictionaries(
                {"alg": st.one_of(algs, algs, text)},
                optional={
                    "typ": st.one_of(st.just("JWT"), st.none(), json_values),
                    "x": json_values,
                },
            ).map(json.dumps),
        )
    )
    payload = draw(
        st.one_of(
            claim_dicts.map(lambda c: json.dumps(c, ensure_ascii=False)),
            claim_dicts.map(json.dumps),
            st.sampled_from(
                [
                    '{"sub":"1","sub":"2","iss":"nexuscart","iat":1699999990,"exp":1700000060}',
                    '{"sub":"7","iss":"nexuscart","iat":1699999990,"exp":1700000060,"x":"\\udc00"}',
                    '{"sub":"7","iss":"nexuscart","exp":2000000000.5e0}',
                    '{"sub":"7","iss":"nexuscart","iat":1699999990,"exp":1700000060} ',
                    '{"sub":"7","iss":"nexuscart","iat":1699999990,"exp":1700000060} x',
                ]
            ),
            text,
        )
    )
    return signed(header, payload, draw(secrets))


@st.composite
def tampered(draw: st.DrawFn, tokens: st.SearchStrategy[str]) -> str:
    token = draw(tokens)
    kind = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "swap"]))
    if not token or kind == "truncate":
        return token[: draw(st.integers(0, max(len(token) - 1, 0)))]
    i = draw(st.integers(0, len(token) - 1))
    if kind == "replace":
        return token[:i] + draw(st.sampled_from(B64URL + ".=+/ ")) + token[i + 1 :]
    if kind == "insert":
        return token[:i] + draw(st.sampled_from(B64URL + ".=")) + token[i:]
    if kind == "delete":
        return token[:i] + token[i + 1 :]
    parts = token.split(".")
    draw(st.randoms()).shuffle(parts)
    return ".".join(parts)


tokens = st.one_of(issued(), by_pyjwt(), by_hand())
any_token = st.one_of(
    tokens,
    tampered(tokens),
    text,
    st.text(B64URL + ".=", max_size=120),
)
authorizations = st.one_of(
    any_token.map(lambda t: "Bearer " + t),
    any_token.map(lambda t: "Bearer " + t),
    any_token.map(lambda t: "Bearer " + t),
    any_token,
    st.sampled_from([None, "", "Bearer", "Bearer ", "bearer x"]),
)


@settings(max_examples=600, deadline=None)
@given(authorization=authorizations, now=nows, issuer=st.sampled_from([ISSUER, None, ""]))
def test_rust_and_python_agree(authorization: str | None, now: float, issuer: str | None) -> None:
    both(authorization, now, issuer)


@settings(max_examples=200, deadline=None)
@given(token=tokens)
def test_rust_and_python_agree_on_valid_looking_tokens(token: str) -> None:
    both("Bearer " + token)


@settings(max_examples=100, deadline=None)
@given(
    pool=st.lists(issued(), min_size=1, max_size=6),
    calls=st.lists(st.tuples(st.integers(0, 5), nows), max_size=30),
    cache_size=st.integers(0, 4),
)
def test_rust_and_python_agree_across_cache_hits(
    pool: list[str], calls: list[tuple[int, float]], cache_size: int
) -> None:
    rust, ref = pair(cache_size=cache_size)
    for index, now in calls:
        authorization = "Bearer " + pool[index % len(pool)]
        assert outcome(rust, authorization, now) == outcome(ref, authorization, now)
        assert rust.cache_len() == len(ref._cache)


@settings(max_examples=150, deadline=None)
@given(
    pool=st.lists(
        st.tuples(st.integers(1, 4), st.floats(NOW - 120, NOW + 6), role_lists),
        min_size=1,
        max_size=6,
    ),
    calls=st.lists(
        st.one_of(
            st.tuples(st.just("call"), st.integers(0, 5), nows),
            st.tuples(
                st.just("revoke"),
                st.integers(1, 4),
                st.one_of(
                    st.floats(NOW - 130, NOW + 10), st.integers(int(NOW) - 130, int(NOW) + 10)
                ),
            ),
            st.tuples(st.just("clear"), st.just(0), st.just(NOW)),
        ),
        max_size=30,
    ),
    cache_size=st.integers(0, 4),
)
def test_rust_and_python_agree_on_revocations(
    pool: list[tuple[int, float, list[str]]],
    calls: list[tuple[str, int, float]],
    cache_size: int,
) -> None:
    """Tokens of a few users minted at various times, revocations and clears interleaved
    with calls (cached and not): the same principal or reason from both, every time."""
    tokens = ["Bearer " + auth.issue(SECRET, u, now=t, roles=r) for u, t, r in pool]
    rust, ref = pair(cache_size=cache_size)
    for op, arg, t in calls:
        if op == "revoke":
            rust.revoke_before(arg, t)
            ref.revoke_before(arg, t)
        elif op == "clear":
            rust.clear_revocations()
            ref.clear_revocations()
        else:
            authorization = tokens[arg % len(tokens)]
            assert principal(rust, authorization, t) == principal(ref, authorization, t)
        assert rust.cache_len() == len(ref._cache)
        assert rust.revocations_len() == ref.revocations_len()
