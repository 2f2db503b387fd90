//! The PyO3 layer, compiled only with the `python` feature. Nothing here holds logic:
//! it converts arguments, calls the plain Rust in `gate`, `shard` and `token`, and maps
//! [`crate::CoreError`] to the Python exception hierarchy.

pub mod convert;
pub mod errors;
pub mod gate;
pub mod gil;
pub mod shard;
pub mod token;
