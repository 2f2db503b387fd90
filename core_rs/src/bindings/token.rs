//! Python class `TokenVerifier` (access tokens, HS256 JWT).
//!
//! A verification is about a microsecond (one HMAC-SHA256 and two small JSON documents),
//! a cache hit a fraction of that, and a revocation check one hash lookup, so calls keep
//! the GIL (docs/adr/0002-gate-keeps-gil-for-single-decisions.md); so does `revoke_before`
//! (one insert; only on a full map, which is rare, a sweep of it). Rejections raise
//! `AuthError` whose message is the reason.

use pyo3::prelude::*;
use pyo3::types::{PyInt, PyString};

use super::convert::{int_arg, utf8};
use crate::error::CoreError;
use crate::token::{
    DEFAULT_CACHE_SIZE, DEFAULT_MAX_REVOCATIONS, DEFAULT_MAX_TTL_S, RevokeError, TokenError,
    TokenVerifier, now_or,
};

/// Verifies HS256 access tokens (`sub` = user id, `roles`) and caches the verified ones.
#[pyclass(name = "TokenVerifier", module = "nexuscart._core", frozen)]
#[derive(Debug)]
pub struct PyTokenVerifier {
    inner: TokenVerifier,
}

#[pymethods]
impl PyTokenVerifier {
    #[new]
    #[pyo3(
        signature = (
            secret, issuer, cache_size = None, *, max_ttl_s = DEFAULT_MAX_TTL_S,
            max_revocations = None
        ),
        text_signature = "(secret, issuer, cache_size=65536, *, max_ttl_s=86400.0, max_revocations=1000000)"
    )]
    fn new(
        secret: &Bound<'_, PyString>,
        issuer: Option<&Bound<'_, PyString>>,
        cache_size: Option<&Bound<'_, PyInt>>,
        max_ttl_s: f64,
        max_revocations: Option<&Bound<'_, PyInt>>,
    ) -> PyResult<Self> {
        let cache_size = match cache_size {
            Some(n) => usize::try_from(int_arg::<u64>(n, "cache_size")?).unwrap_or(usize::MAX),
            None => DEFAULT_CACHE_SIZE,
        };
        let max_revocations = match max_revocations {
            Some(n) => usize::try_from(int_arg::<u64>(n, "max_revocations")?).unwrap_or(usize::MAX),
            None => DEFAULT_MAX_REVOCATIONS,
        };
        let issuer = issuer.map(|i| utf8(i, "issuer")).transpose()?;
        Ok(Self {
            inner: TokenVerifier::new(
                utf8(secret, "secret")?.as_bytes(),
                issuer,
                cache_size,
                max_ttl_s,
            )?
            .with_max_revocations(max_revocations),
        })
    }

    /// The user id of a valid `Bearer` token in an `Authorization` header value, at
    /// `now` (seconds since the epoch, default the current time); else `AuthError`.
    #[pyo3(signature = (authorization, now = None))]
    fn user_id(
        &self,
        authorization: Option<&Bound<'_, PyString>>,
        now: Option<f64>,
    ) -> PyResult<u64> {
        let authorization = authorization_str(authorization)?;
        self.inner
            .user_id(authorization, now_or(now))
            .map_err(|e| CoreError::from(e).into())
    }

    /// `(user id, role bits)` of a valid `Bearer` token (customer = 1, seller = 2,
    /// admin = 4), at `now` (default the current time); else `AuthError`.
    #[pyo3(signature = (authorization, now = None))]
    fn principal(
        &self,
        authorization: Option<&Bound<'_, PyString>>,
        now: Option<f64>,
    ) -> PyResult<(u64, u8)> {
        let authorization = authorization_str(authorization)?;
        self.inner
            .principal(authorization, now_or(now))
            .map_err(|e| CoreError::from(e).into())
    }

    /// Refuse every token of `user_id` issued before `epoch_s` (seconds since the epoch),
    /// cached or not. The later of the old and the new time is kept. `now` (default the
    /// current time) decides which entries are moot when the map is full.
    #[pyo3(signature = (user_id, epoch_s, now = None))]
    fn revoke_before(
        &self,
        user_id: &Bound<'_, PyInt>,
        epoch_s: f64,
        now: Option<f64>,
    ) -> PyResult<()> {
        let user_id = int_arg::<u64>(user_id, "user_id")?;
        self.inner
            .revoke_before(user_id, epoch_s, now_or(now))
            .map_err(|e| match e {
                RevokeError::NotFinite => CoreError::invalid("epoch_s", "not a finite number"),
                RevokeError::Full => CoreError::invalid(
                    "user_id",
                    "revocation map full (max_revocations users revoked within max_ttl_s)",
                ),
            })
            .map_err(PyErr::from)
    }

    /// Forget every revocation.
    fn clear_revocations(&self) {
        self.inner.clear_revocations();
    }

    /// Number of users with a revocation time.
    fn revocations_len(&self) -> usize {
        self.inner.revocations_len()
    }

    /// The bound on users with a revocation time.
    #[getter]
    fn max_revocations(&self) -> usize {
        self.inner.max_revocations()
    }

    /// The configured issuer.
    #[getter]
    fn issuer(&self) -> Option<&str> {
        self.inner.issuer()
    }

    /// The bound on a token's remaining lifetime, in seconds.
    #[getter]
    fn max_ttl_s(&self) -> f64 {
        self.inner.max_ttl_s()
    }

    /// The bound on cached tokens.
    #[getter]
    fn cache_size(&self) -> usize {
        self.inner.cache_size()
    }

    /// Number of verified tokens cached now.
    fn cache_len(&self) -> usize {
        self.inner.cache_len()
    }

    /// Forget every cached token.
    fn clear_cache(&self) {
        self.inner.clear_cache();
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let issuer = match self.inner.issuer() {
            Some(issuer) => PyString::new(py, issuer).repr()?.to_string(),
            None => String::from("None"),
        };
        Ok(format!(
            "<TokenVerifier issuer={issuer} cache_size={}>",
            self.inner.cache_size()
        ))
    }
}

/// The `Authorization` value as UTF-8; one that is not encodable (a lone surrogate) is
/// never part of a valid token.
fn authorization_str<'a>(
    authorization: Option<&'a Bound<'_, PyString>>,
) -> PyResult<Option<&'a str>> {
    match authorization {
        None => Ok(None),
        Some(a) => match a.to_str() {
            Ok(a) => Ok(Some(a)),
            Err(_) => {
                let reason = if a.to_string_lossy().starts_with("Bearer ") {
                    TokenError::Malformed
                } else {
                    TokenError::MissingBearer
                };
                Err(CoreError::from(reason).into())
            }
        },
    }
}

/// Registers `TokenVerifier`.
pub fn init_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTokenVerifier>()?;
    Ok(())
}
