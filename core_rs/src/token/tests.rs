use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::*;

const SECRET: &[u8] = b"test-secret";
const NOW: f64 = 1_700_000_000.0;

fn sign(secret: &[u8], signing_input: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(signing_input.as_bytes());
    b64::encode(&mac.finalize().into_bytes())
}

/// A token with the given raw JSON header and payload, signed with `secret`.
fn raw_token(secret: &[u8], header: &str, payload: &str) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(header.as_bytes()),
        b64::encode(payload.as_bytes())
    );
    let sig = sign(secret, &input);
    format!("{input}.{sig}")
}

fn token(payload: &str) -> String {
    raw_token(SECRET, r#"{"alg":"HS256","typ":"JWT"}"#, payload)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn verifier() -> TokenVerifier {
    TokenVerifier::new(SECRET, Some("nexuscart"), 16, DEFAULT_MAX_TTL_S).unwrap()
}

fn check(v: &TokenVerifier, token: &str, now: f64) -> Result<u64, TokenError> {
    v.user_id(Some(&bearer(token)), now)
}

const GOOD: &str = r#"{"sub":"42","iss":"nexuscart","iat":1699990000,"exp":1700003600}"#;

#[test]
fn accepts_a_valid_token() {
    let v = verifier();
    assert_eq!(check(&v, &token(GOOD), NOW), Ok(42));
    let leading_zeros =
        r#"{"sub":"000000000000000007","iss":"nexuscart","iat":1699990000,"exp":1700003600}"#;
    assert_eq!(check(&v, &token(leading_zeros), NOW), Ok(7));
    let max =
        r#"{"sub":"999999999999999999","iss":"nexuscart","iat":1699990000,"exp":1700003600.5}"#;
    assert_eq!(check(&v, &token(max), NOW), Ok(999_999_999_999_999_999));
}

#[test]
fn rfc7515_a1_signature() {
    // RFC 7515 appendix A.1: the signature is right, but the payload has no `sub`.
    let key = b64::decode(
        b"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
    )
    .unwrap();
    let t = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
             eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
             dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let right = TokenVerifier::new(&key, None, 16, DEFAULT_MAX_TTL_S).unwrap();
    assert_eq!(right.verify(t, 0.0), Err(TokenError::MalformedClaims));
    let wrong = TokenVerifier::new(b"other", None, 16, DEFAULT_MAX_TTL_S).unwrap();
    assert_eq!(wrong.verify(t, 0.0), Err(TokenError::BadSignature));
}

#[test]
fn missing_bearer_token() {
    let v = verifier();
    let t = token(GOOD);
    for auth in [
        None,
        Some(String::new()),
        Some("Bearer".to_owned()),
        Some(format!("bearer {t}")),
        Some(format!("Basic {t}")),
        Some(format!("Bearer\t{t}")),
        Some(t.clone()),
    ] {
        assert_eq!(
            v.user_id(auth.as_deref(), NOW),
            Err(TokenError::MissingBearer),
            "{auth:?}"
        );
    }
    // Exactly one space: a second one becomes part of the (now malformed) token.
    assert_eq!(
        v.user_id(Some(&format!("Bearer  {t}")), NOW),
        Err(TokenError::Malformed)
    );
}

#[test]
fn malformed_token() {
    let v = verifier();
    let t = token(GOOD);
    let (h, rest) = t.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    for bad in [
        String::new(),
        "abc".to_owned(),
        format!("{h}.{p}"),
        format!("{t}."),
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}=.{p}.{s}"),  // padded header
        format!("{h}.{p}.{s}="),  // padded signature
        format!("{h}.{p}.{s}AA"), // signature length 1 mod 4
        format!("{}.{p}.{s}", b64::encode(b"not json")),
        format!("{}.{p}.{s}", b64::encode(br#"{"typ":"JWT"}"#)),
        format!("{}.{p}.{s}", b64::encode(br#"{"alg":["HS256"]}"#)),
        format!("{}.{p}.{s}", b64::encode(br#"["HS256"]"#)),
        format!(".{p}.{s}"),
    ] {
        assert_eq!(check(&v, &bad, NOW), Err(TokenError::Malformed), "{bad}");
    }
    // A signature with non-zero unused bits in its last character: the same bytes as
    // the real one under a lenient decoder, rejected here.
    let last = s.as_bytes()[s.len() - 1];
    let tweaked = (0..64u8)
        .map(|i| {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[usize::from(i)]
        })
        .find(|&c| c != last && b64::decode(&[b'A', b'A', c]).is_err())
        .unwrap();
    let mut s2 = s.as_bytes().to_vec();
    *s2.last_mut().unwrap() = tweaked;
    let s2 = String::from_utf8(s2).unwrap();
    assert_eq!(
        check(&v, &format!("{h}.{p}.{s2}"), NOW),
        Err(TokenError::Malformed)
    );
}

#[test]
fn unsupported_alg() {
    let v = verifier();
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"HS384","typ":"JWT"}"#,
        r#"{"alg":"RS256"}"#,
        r#"{"alg":"hs256"}"#,
        r#"{"alg":""}"#,
    ] {
        let t = raw_token(SECRET, header, GOOD);
        assert_eq!(
            check(&v, &t, NOW),
            Err(TokenError::UnsupportedAlg),
            "{header}"
        );
    }
    // `alg: none` with an empty signature (the classic downgrade).
    let none = format!(
        "{}.{}.",
        b64::encode(br#"{"alg":"none"}"#),
        b64::encode(GOOD.as_bytes())
    );
    assert_eq!(check(&v, &none, NOW), Err(TokenError::UnsupportedAlg));
}

#[test]
fn bad_signature() {
    let v = verifier();
    let other = raw_token(b"other-secret", r#"{"alg":"HS256"}"#, GOOD);
    assert_eq!(check(&v, &other, NOW), Err(TokenError::BadSignature));
    let t = token(GOOD);
    let (input, s) = t.rsplit_once('.').unwrap();
    // Flip one signature byte; truncate; empty; lengthen.
    let mut raw = b64::decode(s.as_bytes()).unwrap();
    raw[0] ^= 1;
    for sig in [
        b64::encode(&raw),
        b64::encode(&raw[..31]),
        String::new(),
        b64::encode(&[raw.as_slice(), b"x"].concat()),
        b64::encode(&[0u8; 200]),
    ] {
        assert_eq!(
            check(&v, &format!("{input}.{sig}"), NOW),
            Err(TokenError::BadSignature),
            "{sig}"
        );
    }
    // Tampered payload: the signature no longer matches.
    let forged = GOOD.replace("42", "43");
    let (h, _) = input.split_once('.').unwrap();
    let tampered = format!("{h}.{}.{s}", b64::encode(forged.as_bytes()));
    assert_eq!(check(&v, &tampered, NOW), Err(TokenError::BadSignature));
}

#[test]
fn malformed_claims() {
    let v = verifier();
    for payload in [
        "",
        "null",
        "[]",
        r#"{"sub":"42","iss":"nexuscart"}"#,
        r#"{"iss":"nexuscart","iat":1699990000,"exp":1700003600}"#,
        r#"{"sub":42,"iss":"nexuscart","iat":1699990000,"exp":1700003600}"#,
        r#"{"sub":"42","iss":"nexuscart","exp":"1700003600"}"#,
        r#"{"sub":"42","iss":"nexuscart","exp":true}"#,
        r#"{"sub":"42","iss":7,"iat":1699990000,"exp":1700003600}"#,
        r#"{"sub":"42","iss":"nexuscart","iat":1699990000,"exp":1700003600,"nbf":"0"}"#,
        r#"{"sub":"42","iss":"nexuscart","iat":1,"exp":1e400}"#,
    ] {
        assert_eq!(
            check(&v, &token(payload), NOW),
            Err(TokenError::MalformedClaims),
            "{payload}"
        );
    }
    // A correctly signed payload segment that is not base64url.
    let header = b64::encode(br#"{"alg":"HS256"}"#);
    let input = format!("{header}.!!!");
    let t = format!("{input}.{}", sign(SECRET, &input));
    assert_eq!(check(&v, &t, NOW), Err(TokenError::MalformedClaims));
}

#[test]
fn expiry_and_not_before() {
    let v = verifier();
    let at = |exp: &str, nbf: &str, now: f64| {
        let payload = format!(r#"{{"sub":"1","iss":"nexuscart","iat":0,"exp":{exp},"nbf":{nbf}}}"#);
        v.verify(&token(&payload), now)
    };
    assert_eq!(at("100", "null", 99.5).map(|x| x.user_id), Ok(1));
    assert_eq!(at("100", "null", 100.0), Err(TokenError::Expired));
    assert_eq!(at("100.25", "null", 100.25), Err(TokenError::Expired));
    assert!(at("100.25", "null", 100.2).is_ok());
    assert_eq!(at("100", "50", 49.99), Err(TokenError::NotYetValid));
    assert!(at("100", "50", 50.0).is_ok());
    assert_eq!(at("100", "50.5", 50.0), Err(TokenError::NotYetValid));
    // Expired wins over not-yet-valid (checked first).
    assert_eq!(at("10", "50", 60.0), Err(TokenError::Expired));
    assert_eq!(at("100", "null", f64::INFINITY), Err(TokenError::Expired));
}

#[test]
fn issuer() {
    let v = verifier();
    for payload in [
        r#"{"sub":"1","iat":1699990000,"exp":1700003600}"#,
        r#"{"sub":"1","iat":1699990000,"exp":1700003600,"iss":null}"#,
        r#"{"sub":"1","iat":1699990000,"exp":1700003600,"iss":"other"}"#,
        r#"{"sub":"1","iat":1699990000,"exp":1700003600,"iss":"nexuscart "}"#,
    ] {
        assert_eq!(
            check(&v, &token(payload), NOW),
            Err(TokenError::WrongIssuer),
            "{payload}"
        );
    }
    let any = TokenVerifier::new(SECRET, None, 16, DEFAULT_MAX_TTL_S).unwrap();
    assert_eq!(
        check(
            &any,
            &token(r#"{"sub":"1","iat":1699990000,"exp":1700003600}"#),
            NOW
        ),
        Ok(1)
    );
    assert_eq!(
        check(
            &any,
            &token(r#"{"sub":"1","iat":1699990000,"exp":1700003600,"iss":"x"}"#),
            NOW
        ),
        Ok(1)
    );
    // An empty issuer is still an issuer.
    let empty = TokenVerifier::new(SECRET, Some(""), 16, DEFAULT_MAX_TTL_S).unwrap();
    assert_eq!(
        check(
            &empty,
            &token(r#"{"sub":"1","iat":1699990000,"exp":1700003600,"iss":""}"#),
            NOW
        ),
        Ok(1)
    );
    assert_eq!(
        check(
            &empty,
            &token(r#"{"sub":"1","iat":1699990000,"exp":1700003600}"#),
            NOW
        ),
        Err(TokenError::WrongIssuer)
    );
}

#[test]
fn subject_must_be_a_numeric_user_id() {
    let v = verifier();
    for sub in [
        "",
        "-1",
        "+1",
        " 1",
        "1.0",
        "1e3",
        "0x10",
        "1234567890123456789",
        "\u{0661}\u{0662}", // Arabic-Indic digits: Python's isdigit() says yes
        "\u{00b2}",         // superscript two: isdigit() yes, int() fails
        "１",               // fullwidth digit one
    ] {
        let payload =
            format!(r#"{{"sub":"{sub}","iss":"nexuscart","iat":1699990000,"exp":1700003600}}"#);
        assert_eq!(
            check(&v, &token(&payload), NOW),
            Err(TokenError::BadSubject),
            "{sub}"
        );
    }
    assert_eq!(parse_sub("0"), None, "user ids start at 1");
    assert_eq!(parse_sub("000"), None);
    assert_eq!(
        parse_sub("123456789012345678"),
        Some(123_456_789_012_345_678)
    );
    assert_eq!(parse_sub("1234567890123456789"), None);
}

#[test]
fn reasons_match_display() {
    for e in [
        TokenError::MissingBearer,
        TokenError::Malformed,
        TokenError::UnsupportedAlg,
        TokenError::BadSignature,
        TokenError::MalformedClaims,
        TokenError::Expired,
        TokenError::LifetimeTooLong,
        TokenError::NotYetValid,
        TokenError::WrongIssuer,
        TokenError::BadSubject,
        TokenError::IssuedInFuture,
        TokenError::BadRoles,
        TokenError::Revoked,
    ] {
        assert_eq!(e.to_string(), e.reason());
        assert_eq!(CoreError::from(e).to_string(), e.reason());
    }
}

#[test]
fn cache_serves_until_expiry() {
    let v = verifier();
    let t = token(r#"{"sub":"5","iss":"nexuscart","iat":0,"exp":1000}"#);
    assert_eq!(check(&v, &t, 500.0), Ok(5));
    assert_eq!(v.cache_len(), 1);
    // Served from the cache even at a time the token would fail `nbf`... (the Python
    // reference behaves the same: the cache only remembers expiry).
    assert_eq!(check(&v, &t, 999.999), Ok(5));
    assert_eq!(check(&v, &t, 1000.0), Err(TokenError::Expired));
    assert_eq!(v.cache_len(), 0);
    assert_eq!(check(&v, &t, 1000.0), Err(TokenError::Expired));
    assert_eq!(v.cache_len(), 0);
    // Rejected tokens are never cached.
    assert_eq!(
        check(&v, &token(r#"{"sub":"x","iat":0,"exp":2000}"#), 1.0),
        Err(TokenError::WrongIssuer)
    );
    assert_eq!(v.cache_len(), 0);
}

#[test]
fn cache_is_bounded() {
    let v = TokenVerifier::new(SECRET, None, 4, 1e10).unwrap();
    for i in 1..5 {
        let t = token(&format!(r#"{{"sub":"{i}","iat":1.7e9,"exp":1e10}}"#));
        assert_eq!(check(&v, &t, NOW), Ok(i));
    }
    assert_eq!(v.cache_len(), 4);
    assert_eq!(
        check(&v, &token(r#"{"sub":"9","iat":1.7e9,"exp":1e10}"#), NOW),
        Ok(9)
    );
    assert_eq!(
        v.cache_len(),
        1,
        "cleared when full, then the new token added"
    );
    v.clear_cache();
    assert_eq!(v.cache_len(), 0);

    let zero = TokenVerifier::new(SECRET, None, 0, 1e10).unwrap();
    for i in 1..4 {
        let t = token(&format!(r#"{{"sub":"{i}","iat":1.7e9,"exp":1e10}}"#));
        assert_eq!(check(&zero, &t, NOW), Ok(i));
        assert_eq!(zero.cache_len(), 1);
    }
}

#[test]
fn verifier_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TokenVerifier>();
}

#[test]
fn clock_is_unix_seconds() {
    let now = unix_now();
    assert!(now > 1_600_000_000.0 && now < 4_000_000_000.0);
    assert_eq!(now_or(Some(1.5)), 1.5);
}

#[test]
fn refuses_tokens_that_live_too_long() {
    // Regression: `exp: 1e300` was accepted, so a leaked token lived forever.
    let v = TokenVerifier::new(SECRET, Some("nexuscart"), 16, 3600.0).unwrap();
    let at = |exp: &str| {
        let payload = format!(r#"{{"sub":"1","iss":"nexuscart","iat":1000,"exp":{exp}}}"#);
        v.verify(&token(&payload), 1000.0)
    };
    assert!(at("4600").is_ok());
    assert_eq!(at("4600.5"), Err(TokenError::LifetimeTooLong));
    assert_eq!(at("1e300"), Err(TokenError::LifetimeTooLong));
    assert_eq!(at("18446744073709551615"), Err(TokenError::LifetimeTooLong));
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(TokenVerifier::new(SECRET, None, 16, bad).is_err());
    }
}

#[test]
fn refuses_user_id_zero() {
    let v = verifier();
    for sub in ["0", "000000000000000000"] {
        let payload =
            format!(r#"{{"sub":"{sub}","iss":"nexuscart","iat":1699990000,"exp":1700003600}}"#);
        assert_eq!(
            check(&v, &token(&payload), NOW),
            Err(TokenError::BadSubject)
        );
    }
}

fn principal(v: &TokenVerifier, payload: &str, now: f64) -> Result<(u64, u8), TokenError> {
    v.principal(Some(&bearer(&token(payload))), now)
}

#[test]
fn roles_are_bits_and_unknown_names_grant_nothing() {
    let v = verifier();
    let with = |roles: &str| {
        format!(
            r#"{{"sub":"7","iss":"nexuscart","iat":1699990000,"exp":1700003600,"roles":{roles}}}"#
        )
    };
    let cases = [
        ("[]", Ok((7, 0))),
        (r#"["customer"]"#, Ok((7, ROLE_CUSTOMER))),
        (
            r#"["seller","customer"]"#,
            Ok((7, ROLE_CUSTOMER | ROLE_SELLER)),
        ),
        (r#"["admin","admin"]"#, Ok((7, ROLE_ADMIN))),
        (r#"["admin","root","Customer"]"#, Ok((7, ROLE_ADMIN))),
        (r#"["cust\u006fmer"]"#, Ok((7, ROLE_CUSTOMER))),
        ("null", Err(TokenError::BadRoles)),
        (r#""admin""#, Err(TokenError::BadRoles)),
        ("4", Err(TokenError::BadRoles)),
        (r#"{"admin":true}"#, Err(TokenError::BadRoles)),
        (r#"["admin",1]"#, Err(TokenError::BadRoles)),
        (r#"["admin",null]"#, Err(TokenError::BadRoles)),
        (r#"[["admin"]]"#, Err(TokenError::BadRoles)),
        (r#"["admin",{"x":[1,2e99]}]"#, Err(TokenError::BadRoles)),
        (
            r#"["admin",{"x":[1,2e999]}]"#,
            Err(TokenError::MalformedClaims),
        ),
        (r#"{"x":[1e999]}"#, Err(TokenError::MalformedClaims)),
        (
            r#"[123456789012345678901234567890]"#,
            Err(TokenError::BadRoles),
        ),
        ("[1e999]", Err(TokenError::MalformedClaims)),
        (r#"["admin",]"#, Err(TokenError::MalformedClaims)),
    ];
    for (roles, want) in cases {
        assert_eq!(principal(&v, &with(roles), NOW), want, "{roles}");
    }
    // absent: no roles
    assert_eq!(principal(&v, GOOD, NOW), Ok((42, 0)));
    // the last duplicate wins
    let dup = r#"{"sub":"7","iss":"nexuscart","iat":1699990000,"exp":1700003600,"roles":null,"roles":["seller"]}"#;
    assert_eq!(principal(&v, dup, NOW), Ok((7, ROLE_SELLER)));
    // bad roles come after the other claim checks
    let both_bad = r#"{"sub":"x","iss":"nexuscart","iat":1699990000,"exp":1700003600,"roles":1}"#;
    assert_eq!(principal(&v, both_bad, NOW), Err(TokenError::BadSubject));
    // a cache hit returns the same roles
    let t = with(r#"["admin","customer"]"#);
    assert_eq!(principal(&v, &t, NOW), Ok((7, ROLE_ADMIN | ROLE_CUSTOMER)));
    assert_eq!(
        principal(&v, &t, NOW + 1.0),
        Ok((7, ROLE_ADMIN | ROLE_CUSTOMER))
    );
}

#[test]
fn iat_is_required_not_in_the_future_and_bounds_the_lifetime() {
    let v = TokenVerifier::new(SECRET, None, 16, 3600.0).unwrap();
    let at = |iat: &str, exp: &str, now: f64| {
        principal(
            &v,
            &format!(r#"{{"sub":"1","iat":{iat},"exp":{exp}}}"#),
            now,
        )
    };
    assert_eq!(
        principal(&v, r#"{"sub":"1","exp":2000}"#, 1000.0),
        Err(TokenError::MalformedClaims)
    );
    for bad in ["null", r#""1000""#, "true", "[]"] {
        assert_eq!(
            at(bad, "2000", 1000.0),
            Err(TokenError::MalformedClaims),
            "{bad}"
        );
    }
    assert_eq!(at("1005", "2000", 1000.0).map(|p| p.0), Ok(1));
    assert_eq!(
        at("1005.5", "2000", 1000.0),
        Err(TokenError::IssuedInFuture)
    );
    assert_eq!(at("1005.5", "2000", 1000.5).map(|p| p.0), Ok(1));
    // exp - iat <= max_ttl_s, even when exp is close
    assert_eq!(at("1000", "4600", 1000.0).map(|p| p.0), Ok(1));
    assert_eq!(
        at("999.5", "4600", 1000.0),
        Err(TokenError::LifetimeTooLong)
    );
    assert_eq!(
        at("-1e300", "2000", 1000.0),
        Err(TokenError::LifetimeTooLong)
    );
    assert_eq!(
        at("-9223372036854775808", "2000", 1000.0),
        Err(TokenError::LifetimeTooLong)
    );
}

#[test]
fn revocation_refuses_older_tokens_cached_or_not() {
    let v = TokenVerifier::new(SECRET, None, 16, 86_400.0).unwrap();
    let tok = |sub: u64, iat: f64| format!(r#"{{"sub":"{sub}","iat":{iat},"exp":1700003600}}"#);
    let old = tok(5, NOW - 10.0);
    let other = tok(6, NOW - 10.0);
    assert_eq!(principal(&v, &old, NOW), Ok((5, 0)));
    assert_eq!(v.revocations_len(), 0);
    v.revoke_before(5, NOW - 1.0, NOW).unwrap();
    assert_eq!(v.revocations_len(), 1);
    // the cached token is refused, and so is a fresh verification
    assert_eq!(principal(&v, &old, NOW), Err(TokenError::Revoked));
    assert_eq!(check(&v, &token(&old), NOW), Err(TokenError::Revoked));
    v.clear_cache();
    assert_eq!(principal(&v, &old, NOW), Err(TokenError::Revoked));
    assert_eq!(v.cache_len(), 0, "a revoked token is not cached");
    // other users are not affected; a token issued at or after the time is accepted
    assert_eq!(principal(&v, &other, NOW), Ok((6, 0)));
    assert_eq!(principal(&v, &tok(5, NOW - 1.0), NOW), Ok((5, 0)));
    assert_eq!(
        principal(&v, &tok(5, NOW - 1.001), NOW),
        Err(TokenError::Revoked)
    );
    // the time only moves forward
    v.revoke_before(5, NOW - 100.0, NOW).unwrap();
    assert_eq!(
        principal(&v, &tok(5, NOW - 1.001), NOW),
        Err(TokenError::Revoked)
    );
    assert!(v.revoke_before(5, f64::NAN, NOW).is_err());
    assert!(v.revoke_before(5, f64::INFINITY, NOW).is_err());
    // expiry is still reported first for a cached token
    let short = tok(7, NOW - 10.0).replace("1700003600", "1700000001");
    assert_eq!(principal(&v, &short, NOW), Ok((7, 0)));
    v.revoke_before(7, NOW, NOW).unwrap();
    assert_eq!(principal(&v, &short, NOW + 5.0), Err(TokenError::Expired));
    v.clear_revocations();
    assert_eq!(v.revocations_len(), 0);
    assert_eq!(principal(&v, &old, NOW), Ok((5, 0)));
}

#[test]
fn revocation_map_is_bounded() {
    let v = TokenVerifier::new(SECRET, None, 16, 100.0)
        .unwrap()
        .with_max_revocations(3);
    assert_eq!(v.max_revocations(), 3);
    for user in 1..=3 {
        v.revoke_before(user, 1000.0 + user as f64, 1000.0).unwrap();
    }
    // updating a user already in the map needs no room
    v.revoke_before(2, 1500.0, 1000.0).unwrap();
    assert_eq!(v.revoke_before(4, 1000.0, 1000.0), Err(RevokeError::Full));
    // entries older than max_ttl_s (+1 s slack) can no longer refuse anything: dropped
    v.revoke_before(4, 1102.5, 1102.5).unwrap();
    assert_eq!(
        v.revocations_len(),
        3,
        "users 1 and 3 dropped, 2 and 4 kept"
    );
    let tok = |sub: u64, iat: f64| format!(r#"{{"sub":"{sub}","iat":{iat},"exp":1150}}"#);
    assert_eq!(
        principal(&v, &tok(2, 1100.0), 1102.5),
        Err(TokenError::Revoked)
    );
    assert_eq!(principal(&v, &tok(1, 1100.0), 1102.5), Ok((1, 0)));
    assert_eq!(
        TokenVerifier::new(SECRET, None, 1, 1.0)
            .unwrap()
            .with_max_revocations(0)
            .max_revocations(),
        1
    );
}

#[test]
fn revocations_and_cache_under_threads() {
    let v = std::sync::Arc::new(TokenVerifier::new(SECRET, None, 8, 86_400.0).unwrap());
    let tokens: Vec<String> = (1..=16u64)
        .map(|i| {
            token(&format!(
                r#"{{"sub":"{i}","iat":{},"exp":1700003600}}"#,
                NOW - 5.0
            ))
        })
        .collect();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (v, tokens) = (v.clone(), tokens.clone());
            std::thread::spawn(move || {
                for round in 0..50u64 {
                    for (i, t) in tokens.iter().enumerate() {
                        let user = i as u64 + 1;
                        if w == 0 && round == 10 && user % 2 == 0 {
                            v.revoke_before(user, NOW, NOW).unwrap();
                        }
                        let got = v.principal(Some(&bearer(t)), NOW);
                        assert!(
                            got == Ok((user, 0))
                                || (user % 2 == 0 && got == Err(TokenError::Revoked))
                        );
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    for (i, t) in tokens.iter().enumerate() {
        let user = i as u64 + 1;
        let want = if user % 2 == 0 {
            Err(TokenError::Revoked)
        } else {
            Ok((user, 0))
        };
        assert_eq!(v.principal(Some(&bearer(t)), NOW), want);
    }
}
