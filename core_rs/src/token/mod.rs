//! Buyer tokens: HS256 JWTs whose `sub` is the user id.
//!
//! [`TokenVerifier::user_id`] is the Rust twin of the Python reference
//! `tests/token_reference.py`, with the same rules, in the same order, and the
//! same reasons ([`TokenError::reason`]):
//!
//! 1. the `Authorization` value must start with `Bearer ` → "missing bearer token";
//! 2. a cached token is accepted until its `exp` ("token expired" after that, and it is
//!    dropped from the cache);
//! 3. three `.`-separated segments, a JSON object header and a signature, both canonical
//!    base64url → "malformed token";
//! 4. header `alg` must be `HS256` (exactly one algorithm: no alg confusion, no `none`)
//!    → "unsupported alg";
//! 5. HMAC-SHA256 of `header.payload`, compared in constant time → "bad signature";
//! 6. the payload decodes to the claims (see [`claims`]) → "malformed claims";
//! 7. `now < exp` → "token expired"; 8. `exp <= now + max_ttl_s` → "token lifetime too
//!    long" (a leaked token must not live forever, whatever its issuer wrote);
//! 9. `now >= nbf` if present → "token not yet valid";
//! 10. `iss` equals the configured issuer, if one is configured → "wrong issuer";
//! 11. `sub` is 1 to 18 ASCII digits and not zero → "sub must be a numeric user id".
//!
//! Verified tokens are cached (token → user id, expiry) in a map that is cleared when it
//! reaches its size bound: a buyer in a storm retries with the same token, and a cold
//! cache only costs a re-verification.

pub mod b64;
pub mod claims;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use foldhash::fast::RandomState;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use thiserror::Error;

use crate::error::{CoreError, CoreResult};

pub use claims::{Claims, Header, NumericDate};

/// Default bound on cached verified tokens.
pub const DEFAULT_CACHE_SIZE: usize = 65_536;

/// Decoded tokens up to this size (header, signature and claims) need no allocation.
const STACK_BUF: usize = 1024;

/// The longest `sub` accepted: 18 decimal digits always fit an `i64`.
pub const MAX_SUB_DIGITS: usize = 18;

/// Default bound on a token's remaining lifetime (`exp - now`), in seconds.
pub const DEFAULT_MAX_TTL_S: f64 = 86_400.0;

/// Why a token was rejected. The `Display` text is the reason the Python side shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[error("{}", self.reason())]
pub enum TokenError {
    /// No `Authorization` value, or one without the `Bearer ` scheme.
    MissingBearer,
    /// Not three segments, or the header or signature is not canonical base64url, or
    /// the header is not a JSON object with a string `alg`.
    Malformed,
    /// The header's `alg` is not `HS256`.
    UnsupportedAlg,
    /// The HMAC-SHA256 signature does not match.
    BadSignature,
    /// The (correctly signed) payload is not a valid claims object.
    MalformedClaims,
    /// `now >= exp`.
    Expired,
    /// `exp > now + max_ttl_s`.
    LifetimeTooLong,
    /// `now < nbf`.
    NotYetValid,
    /// `iss` differs from the configured issuer.
    WrongIssuer,
    /// `sub` is not 1 to 18 ASCII digits, or is zero.
    BadSubject,
}

impl TokenError {
    /// The reason, as shown to the client (the exception message in Python).
    pub const fn reason(self) -> &'static str {
        match self {
            Self::MissingBearer => "missing bearer token",
            Self::Malformed => "malformed token",
            Self::UnsupportedAlg => "unsupported alg",
            Self::BadSignature => "bad signature",
            Self::MalformedClaims => "malformed claims",
            Self::Expired => "token expired",
            Self::LifetimeTooLong => "token lifetime too long",
            Self::NotYetValid => "token not yet valid",
            Self::WrongIssuer => "wrong issuer",
            Self::BadSubject => "sub must be a numeric user id",
        }
    }
}

/// A token that passed every check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verified {
    /// The user id (`sub`).
    pub user_id: u64,
    /// `exp` as a float, for the cache.
    pub exp: f64,
}

/// Seconds since the Unix epoch, like Python's `time.time()`.
pub fn unix_now() -> f64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// `sub` as a user id: 1 to [`MAX_SUB_DIGITS`] ASCII digits (leading zeros allowed),
/// at least 1 (user ids start at 1; 0 is nobody).
pub fn parse_sub(sub: &str) -> Option<u64> {
    if sub.is_empty() || sub.len() > MAX_SUB_DIGITS {
        return None;
    }
    sub.bytes()
        .try_fold(0u64, |acc, b| {
            b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
        })
        .filter(|&id| id >= 1)
}

type Cache = HashMap<Box<str>, Verified, RandomState>;

/// Verifies HS256 buyer tokens and caches the verified ones. Thread-safe (`&self`).
pub struct TokenVerifier {
    /// HMAC state with the key already absorbed; cloned for each verification.
    mac: Hmac<Sha256>,
    issuer: Option<Box<str>>,
    max_ttl_s: f64,
    cache: Mutex<Cache>,
    cache_size: usize,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("issuer", &self.issuer)
            .field("cache_size", &self.cache_size)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier for tokens signed with `secret` (its UTF-8 bytes are the HMAC key) and,
    /// if `issuer` is given, issued by it. At most `cache_size` verified tokens are
    /// remembered (0 still remembers the last one, like the Python reference). Tokens
    /// whose `exp` lies more than `max_ttl_s` seconds ahead are refused.
    pub fn new(
        secret: &[u8],
        issuer: Option<&str>,
        cache_size: usize,
        max_ttl_s: f64,
    ) -> CoreResult<Self> {
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .map_err(|_| CoreError::invalid("secret", "not usable as an HMAC key"))?;
        if !(max_ttl_s.is_finite() && max_ttl_s > 0.0) {
            return Err(CoreError::invalid(
                "max_ttl_s",
                "must be a positive number of seconds",
            ));
        }
        Ok(Self {
            mac,
            issuer: issuer.map(Box::from),
            max_ttl_s,
            cache: Mutex::new(Cache::with_hasher(RandomState::default())),
            cache_size,
        })
    }

    /// The configured issuer.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The bound on a token's remaining lifetime, in seconds.
    pub fn max_ttl_s(&self) -> f64 {
        self.max_ttl_s
    }

    /// The bound on cached tokens.
    pub fn cache_size(&self) -> usize {
        self.cache_size
    }

    /// Number of tokens cached now.
    pub fn cache_len(&self) -> usize {
        self.lock().len()
    }

    /// Forget every cached token.
    pub fn clear_cache(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        // The map is consistent after any panic (single insert/remove calls).
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The user id of a valid `Bearer` token in an `Authorization` value, at `now`
    /// (seconds since the epoch).
    pub fn user_id(&self, authorization: Option<&str>, now: f64) -> Result<u64, TokenError> {
        let token = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .ok_or(TokenError::MissingBearer)?;
        {
            let mut cache = self.lock();
            if let Some(hit) = cache.get(token) {
                if now < hit.exp {
                    return Ok(hit.user_id);
                }
                cache.remove(token);
                return Err(TokenError::Expired);
            }
        }
        let verified = self.verify(token, now)?;
        let mut cache = self.lock();
        if cache.len() >= self.cache_size {
            cache.clear();
        }
        cache.insert(Box::from(token), verified);
        Ok(verified.user_id)
    }

    /// Check a token (without the `Bearer ` prefix) at `now`, bypassing the cache.
    pub fn verify(&self, token: &str, now: f64) -> Result<Verified, TokenError> {
        let mut segments = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        // One buffer for the three decoded segments, on the stack for usual tokens.
        let header_len = b64::decoded_len(h.len()).map_err(|_| TokenError::Malformed)?;
        let sig_len = b64::decoded_len(s.len()).map_err(|_| TokenError::Malformed)?;
        // (a payload of impossible length is reported after the signature check)
        let payload_len = b64::decoded_len(p.len()).unwrap_or(0);
        let mut stack = [0u8; STACK_BUF];
        let mut heap = Vec::new();
        let total = header_len + sig_len + payload_len;
        let buf = if total <= STACK_BUF {
            &mut stack[..total]
        } else {
            heap.resize(total, 0);
            &mut heap[..]
        };
        let (header_json, rest) = buf.split_at_mut(header_len);
        let (sig, claims_json) = rest.split_at_mut(sig_len);
        b64::decode_to_slice(h.as_bytes(), header_json).map_err(|_| TokenError::Malformed)?;
        let header = claims::parse_header(header_json).map_err(|_| TokenError::Malformed)?;
        // Like the reference, decode the signature before looking at `alg`: a token with
        // a garbage signature is malformed whatever its alg.
        b64::decode_to_slice(s.as_bytes(), sig).map_err(|_| TokenError::Malformed)?;
        if header.alg != "HS256" {
            return Err(TokenError::UnsupportedAlg);
        }
        let mut mac = self.mac.clone();
        mac.update(&token.as_bytes()[..h.len() + 1 + p.len()]);
        mac.verify_slice(sig)
            .map_err(|_| TokenError::BadSignature)?;
        b64::decode_to_slice(p.as_bytes(), claims_json).map_err(|_| TokenError::MalformedClaims)?;
        let claims = claims::parse_claims(claims_json).map_err(|_| TokenError::MalformedClaims)?;
        if claims.exp.is_reached_at(now) {
            return Err(TokenError::Expired);
        }
        if claims.exp.as_f64() > now + self.max_ttl_s {
            return Err(TokenError::LifetimeTooLong);
        }
        if claims.nbf.is_some_and(|nbf| nbf.is_after(now)) {
            return Err(TokenError::NotYetValid);
        }
        if let Some(issuer) = self.issuer.as_deref()
            && claims.iss.as_deref() != Some(issuer)
        {
            return Err(TokenError::WrongIssuer);
        }
        let user_id = parse_sub(&claims.sub).ok_or(TokenError::BadSubject)?;
        Ok(Verified {
            user_id,
            exp: claims.exp.as_f64(),
        })
    }
}

/// Seconds-since-epoch clock for [`TokenVerifier::user_id`] callers that pass none.
#[inline]
pub fn now_or(now: Option<f64>) -> f64 {
    now.unwrap_or_else(unix_now)
}

#[cfg(test)]
mod tests;
