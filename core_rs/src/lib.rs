//! NexusCart's compiled core, the Python extension module `nexuscart._core`.
//!
//! - [`gate`]: flash-sale admission (GCRA token buckets, sold-out flags, in-flight caps).
//! - [`shard`]: Citus-compatible hashing and shard intervals, Redis Cluster slots.
//! - [`token`]: buyer-token (HS256 JWT) verification with a cache of verified tokens.
//! - [`error`]: the one error type, mapped to the `nexuscart._core` exceptions in Python.
//!
//! Everything above is plain Rust, tested with `cargo test` without Python. The PyO3
//! layer (`bindings`) is compiled only with the `python` feature, which maturin enables.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod error;
pub mod gate;
pub mod shard;
pub mod token;

pub use error::{CoreError, CoreResult};

#[cfg(feature = "python")]
mod bindings;

#[cfg(feature = "python")]
use pyo3::prelude::*;

/// The extension module. Each area registers its own names.
#[cfg(feature = "python")]
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    bindings::errors::init_module(m)?;
    bindings::gate::init_module(m)?;
    bindings::shard::init_module(m)?;
    bindings::token::init_module(m)?;
    Ok(())
}
