//! The one error type of the crate.
//!
//! Plain Rust code returns [`CoreError`]; the PyO3 layer (`bindings::errors`) maps each
//! variant onto the Python exception hierarchy rooted at `nexuscart._core.NexusCartError`:
//!
//! ```text
//! NexusCartError(Exception)
//! ├── InvalidArgument(NexusCartError, ValueError)   <- CoreError::InvalidArgument
//! │   └── OutOfRange(InvalidArgument)                <- CoreError::OutOfRange
//! └── AuthError(NexusCartError)                      <- CoreError::Auth
//! ```

use thiserror::Error;

use crate::token::TokenError;

/// Everything that can go wrong in the core. All variants describe bad input: the core
/// itself has no I/O and no failure modes of its own. [`CoreError::Auth`] is a rejected
/// credential rather than a programming error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CoreError {
    /// An argument has an acceptable type but a value that makes no sense
    /// (a UUID that is not 16 bytes, a non-finite rate, ...).
    #[error("invalid {name}: {reason}")]
    InvalidArgument {
        /// What was invalid: the argument's name, or the kind of value.
        name: &'static str,
        /// Human readable explanation.
        reason: String,
    },
    /// A number lies outside the domain of its target type or parameter
    /// (an int4 that does not fit 32 bits, `shard_count` of 0, ...).
    #[error("{name} out of range: {value} is not in [{min}, {max}]")]
    OutOfRange {
        /// The argument's name, or the kind of value (e.g. `int4 value`).
        name: &'static str,
        /// The rejected value, rendered as text (it may not fit any Rust integer).
        value: String,
        /// Smallest accepted value.
        min: i128,
        /// Largest accepted value.
        max: i128,
    },
    /// A buyer token was rejected; the message is exactly the reason
    /// (e.g. `token expired`).
    #[error(transparent)]
    Auth(#[from] TokenError),
}

impl CoreError {
    /// Shorthand for [`CoreError::InvalidArgument`].
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`CoreError::OutOfRange`].
    pub fn out_of_range(
        name: &'static str,
        value: impl ToString,
        min: impl Into<i128>,
        max: impl Into<i128>,
    ) -> Self {
        Self::OutOfRange {
            name,
            value: value.to_string(),
            min: min.into(),
            max: max.into(),
        }
    }
}

/// Result alias used throughout the crate.
pub type CoreResult<T> = Result<T, CoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_argument() {
        let e = CoreError::invalid("uuid", "expected 16 bytes, got 3");
        assert_eq!(e.to_string(), "invalid uuid: expected 16 bytes, got 3");
        let e = CoreError::out_of_range("shard_count", 0, 1, 64_000);
        assert_eq!(
            e.to_string(),
            "shard_count out of range: 0 is not in [1, 64000]"
        );
    }
}
