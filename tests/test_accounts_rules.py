"""Account rules, pure: email normalisation, the password policy, roles, refresh-token
format, the lock schedule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexuscart.domain import accounts as rules


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("Alice@Example.COM", "alice@example.com"),
        ("  bob@example.com ", "bob@example.com"),
        ("\uff23arol@\uff45xample.com", "carol@example.com"),  # full-width forms fold (NFKC)
        ("dave+shop@example.co.uk", "dave+shop@example.co.uk"),  # tags are kept
        ("STRASSE@example.de", "strasse@example.de"),
    ],
)
def test_emails_are_normalised_to_one_spelling(raw: str, want: str) -> None:
    assert rules.normalise_email(raw) == want


@pytest.mark.parametrize(
    "raw", ["", "no-at-sign", "@example.com", "a@", "a@localhost", "a b@example.com",
            "a@exa mple.com", "a@@example.com", "x" * 65 + "@example.com",
            "a@" + "b" * 250 + ".com"],
)  # fmt: skip
def test_what_cannot_be_an_address_is_refused(raw: str) -> None:
    with pytest.raises(rules.PolicyError):
        rules.normalise_email(raw)


@given(st.emails())
def test_normalising_an_email_twice_changes_nothing(raw: str) -> None:
    try:
        once = rules.normalise_email(raw)
    except rules.PolicyError:
        return
    assert rules.normalise_email(once) == once


@pytest.mark.parametrize("password", ["password", "123456789", "Qwerty123", "iloveyou"])
def test_common_passwords_are_refused(password: str) -> None:
    with pytest.raises(rules.PolicyError, match="too common"):
        rules.check_password(password)


def test_the_password_policy_names_every_rule_broken() -> None:
    with pytest.raises(rules.PolicyError) as err:
        rules.check_password("short")
    assert err.value.problems == ["password must have at least 8 characters"]
    with pytest.raises(rules.PolicyError, match="at most 128"):
        rules.check_password("x" * 129)
    with pytest.raises(rules.PolicyError, match="email or the display name"):
        rules.check_password("Someone.Unusual", "someone.unusual@example.com")
    rules.check_password("correct horse battery staple", "a@example.com", "A")


def test_roles_come_back_in_canonical_order_without_repeats() -> None:
    assert rules.check_roles(["admin", "customer", "admin"]) == ("customer", "admin")
    with pytest.raises(rules.PolicyError):
        rules.check_roles([])
    with pytest.raises(rules.PolicyError):
        rules.check_roles(["root"])


@given(st.integers(1, 10**18 - 1))
def test_a_refresh_token_parses_back_to_its_user_and_family(user_id: int) -> None:
    token = rules.new_refresh_token(user_id, rules.new_family())
    assert rules.parse_refresh_token(token.raw) == token


@given(st.text(max_size=200))
def test_a_malformed_refresh_token_is_none_never_an_exception(raw: str) -> None:
    parsed = rules.parse_refresh_token(raw)
    assert parsed is None or parsed.raw == raw


def test_the_lock_doubles_after_the_free_attempts_up_to_the_cap() -> None:
    got = [rules.lock_seconds(n, 5, 2.0, 60.0) for n in range(1, 12)]
    assert got == [0, 0, 0, 0, 2, 4, 8, 16, 32, 60, 60]
