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
//! 11. `sub` is 1 to 18 ASCII digits and not zero → "sub must be a numeric user id";
//! 12. `iat` (required: a missing one is "malformed claims") is at most
//!     [`IAT_LEEWAY_S`] ahead of `now` → "token issued in the future";
//! 13. `exp - iat <= max_ttl_s` → "token lifetime too long" (so a revocation older than
//!     `max_ttl_s` can no longer matter, see below);
//! 14. `roles` is absent or an array of strings → "bad roles" (unknown names are
//!     ignored; see [`claims::role_bit`]);
//! 15. `iat` is not before the user's revocation time, if any → "token revoked".
//!
//! Verified tokens are cached (token → user id, roles, expiry, iat) in a map that is
//! cleared when it reaches its size bound: a buyer in a storm retries with the same token,
//! and a cold cache only costs a re-verification. A cache hit checks `exp` and then the
//! revocation (step 15) again.
//!
//! Revocations ([`TokenVerifier::revoke_before`]) are a map user id → "not before" (seconds
//! since the epoch); a token of that user with `iat` < that time is refused, cached or
//! not. Checking costs one hash lookup per call, and none while the map is empty. The map
//! holds at most `max_revocations` users (default [`DEFAULT_MAX_REVOCATIONS`]); when it is
//! full, entries older than `max_ttl_s` are dropped first (step 13 means no token they
//! could refuse is still unexpired), and if that frees nothing `revoke_before` fails.

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

pub use claims::{Claims, Header, NumericDate, ROLE_ADMIN, ROLE_CUSTOMER, ROLE_SELLER, Roles};

/// Default bound on cached verified tokens.
pub const DEFAULT_CACHE_SIZE: usize = 65_536;

/// Decoded tokens up to this size (header, signature and claims) need no allocation.
const STACK_BUF: usize = 1024;

/// The longest `sub` accepted: 18 decimal digits always fit an `i64`.
pub const MAX_SUB_DIGITS: usize = 18;

/// Default bound on a token's remaining lifetime (`exp - now`), in seconds.
pub const DEFAULT_MAX_TTL_S: f64 = 86_400.0;

/// How far ahead of the verifier's clock `iat` may be, in seconds (clock skew between
/// the host that signs tokens and the edge).
pub const IAT_LEEWAY_S: f64 = 5.0;

/// Default bound on users with a revocation time.
pub const DEFAULT_MAX_REVOCATIONS: usize = 1_000_000;

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
    /// `iat` is more than [`IAT_LEEWAY_S`] ahead of `now`.
    IssuedInFuture,
    /// `roles` is not an array of strings.
    BadRoles,
    /// `iat` is before the user's revocation time.
    Revoked,
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
            Self::IssuedInFuture => "token issued in the future",
            Self::BadRoles => "bad roles",
            Self::Revoked => "token revoked",
        }
    }
}

/// A token that passed every check but the revocation one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verified {
    /// The user id (`sub`).
    pub user_id: u64,
    /// The role bits ([`ROLE_CUSTOMER`] | [`ROLE_SELLER`] | [`ROLE_ADMIN`]).
    pub roles: u8,
    /// `exp` as a float, for the cache.
    pub exp: f64,
    /// `iat` as a float, for the revocation check (exact: step 12 and 13 keep it within
    /// `max_ttl_s` + a few seconds of a sane clock, far below 2^53).
    pub iat: f64,
}

/// Why [`TokenVerifier::revoke_before`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RevokeError {
    /// The time is not a finite number.
    #[error("epoch_s must be a finite number of seconds")]
    NotFinite,
    /// The map is full of revocations that may still matter.
    #[error("revocation map full")]
    Full,
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

/// The cache and the revocations, under one lock (one lock per call).
struct State {
    cache: Cache,
    /// user id -> not before (seconds since the epoch)
    revoked: HashMap<u64, f64, RandomState>,
}

impl State {
    /// The revocation check (step 15): one lookup, none while no user is revoked.
    #[inline]
    fn check_revoked(&self, v: &Verified) -> Result<(), TokenError> {
        if !self.revoked.is_empty()
            && let Some(&not_before) = self.revoked.get(&v.user_id)
            && v.iat < not_before
        {
            return Err(TokenError::Revoked);
        }
        Ok(())
    }
}

/// Verifies HS256 buyer tokens and caches the verified ones. Thread-safe (`&self`).
pub struct TokenVerifier {
    /// HMAC state with the key already absorbed; cloned for each verification.
    mac: Hmac<Sha256>,
    issuer: Option<Box<str>>,
    max_ttl_s: f64,
    state: Mutex<State>,
    cache_size: usize,
    max_revocations: usize,
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
            state: Mutex::new(State {
                cache: Cache::with_hasher(RandomState::default()),
                revoked: HashMap::with_hasher(RandomState::default()),
            }),
            cache_size,
            max_revocations: DEFAULT_MAX_REVOCATIONS,
        })
    }

    /// The same verifier with room for `max_revocations` revoked users (at least 1).
    pub fn with_max_revocations(mut self, max_revocations: usize) -> Self {
        self.max_revocations = max_revocations.max(1);
        self
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

    /// The bound on revoked users.
    pub fn max_revocations(&self) -> usize {
        self.max_revocations
    }

    /// Number of tokens cached now.
    pub fn cache_len(&self) -> usize {
        self.lock().cache.len()
    }

    /// Forget every cached token.
    pub fn clear_cache(&self) {
        self.lock().cache.clear();
    }

    /// Refuse every token of `user_id` issued (`iat`) before `epoch_s`, from now on, cached
    /// or not. A user's time only moves forward (the later of the old and the new one is
    /// kept), so replaying an old notice cannot lift a newer revocation. `now` is used to
    /// drop moot entries when the map is full.
    pub fn revoke_before(&self, user_id: u64, epoch_s: f64, now: f64) -> Result<(), RevokeError> {
        if !epoch_s.is_finite() {
            return Err(RevokeError::NotFinite);
        }
        let mut state = self.lock();
        let revoked = &mut state.revoked;
        if let Some(old) = revoked.get_mut(&user_id) {
            *old = old.max(epoch_s);
            return Ok(());
        }
        if revoked.len() >= self.max_revocations {
            // A token issued before `now - max_ttl_s` has expired (step 13): those
            // entries refuse nothing any more. (1 s of slack for float rounding.)
            let moot = now - self.max_ttl_s - 1.0;
            revoked.retain(|_, not_before| *not_before > moot);
            if revoked.len() >= self.max_revocations {
                return Err(RevokeError::Full);
            }
        }
        revoked.insert(user_id, epoch_s);
        Ok(())
    }

    /// Forget every revocation.
    pub fn clear_revocations(&self) {
        self.lock().revoked.clear();
    }

    /// Number of users with a revocation time.
    pub fn revocations_len(&self) -> usize {
        self.lock().revoked.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The maps are consistent after any panic (single insert/remove calls).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The user id of a valid `Bearer` token in an `Authorization` value, at `now`
    /// (seconds since the epoch).
    pub fn user_id(&self, authorization: Option<&str>, now: f64) -> Result<u64, TokenError> {
        self.principal(authorization, now)
            .map(|(user_id, _)| user_id)
    }

    /// The user id and role bits of a valid `Bearer` token in an `Authorization` value, at
    /// `now` (seconds since the epoch).
    pub fn principal(
        &self,
        authorization: Option<&str>,
        now: f64,
    ) -> Result<(u64, u8), TokenError> {
        let token = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .ok_or(TokenError::MissingBearer)?;
        {
            let mut state = self.lock();
            if let Some(hit) = state.cache.get(token) {
                let hit = *hit;
                if now < hit.exp {
                    state.check_revoked(&hit)?;
                    return Ok((hit.user_id, hit.roles));
                }
                state.cache.remove(token);
                return Err(TokenError::Expired);
            }
        }
        let verified = self.verify(token, now)?;
        let mut state = self.lock();
        // A revoked token is not cached: its user may log in again, and the cache is for
        // tokens that are served.
        state.check_revoked(&verified)?;
        if state.cache.len() >= self.cache_size {
            state.cache.clear();
        }
        state.cache.insert(Box::from(token), verified);
        Ok((verified.user_id, verified.roles))
    }

    /// Check a token (without the `Bearer ` prefix) at `now`, bypassing the cache and the
    /// revocations (steps 3 to 14).
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
        if claims.iat.is_after(now + IAT_LEEWAY_S) {
            return Err(TokenError::IssuedInFuture);
        }
        let (exp, iat) = (claims.exp.as_f64(), claims.iat.as_f64());
        if exp > iat + self.max_ttl_s {
            return Err(TokenError::LifetimeTooLong);
        }
        let Roles::Bits(roles) = claims.roles else {
            return Err(TokenError::BadRoles);
        };
        Ok(Verified {
            user_id,
            roles,
            exp,
            iat,
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
