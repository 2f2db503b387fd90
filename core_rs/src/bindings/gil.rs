//! The one place that releases the GIL.
//!
//! Releasing and re-acquiring the GIL costs on the order of a microsecond, and more
//! when other threads are waiting for it, which is more than one admission decision or
//! one hash costs (see `docs/adr/0002-gate-keeps-gil-for-single-decisions.md`). So single
//! operations keep it, and batch operations copy their input out of Python objects
//! first and then run the pure-Rust part through [`run_batch`], which releases the GIL
//! once the batch is large enough for that to pay off.

use pyo3::Python;
use pyo3::marker::Ungil;

/// Batches smaller than this run with the GIL held (a few microseconds of work at most).
pub const DETACH_MIN_ITEMS: usize = 256;

/// Run `work` over `items` already-copied inputs, without the GIL when `items` is large.
#[inline]
pub fn run_batch<T, F>(py: Python<'_>, items: usize, work: F) -> T
where
    F: Ungil + FnOnce() -> T,
    T: Ungil,
{
    if items < DETACH_MIN_ITEMS {
        work()
    } else {
        py.detach(work)
    }
}
