//! Python class `Gate` and the admission codes.
//!
//! Every method is a single sub-microsecond decision, so all of them keep the GIL
//! (docs/adr/0002-gate-keeps-gil-for-single-decisions.md).

use pyo3::prelude::*;
use pyo3::types::{PyInt, PyString};

use super::convert::{Int, int_arg, utf8};
use crate::gate::{
    ADMIT, BUSY, DEFAULT_MAX_KEYS, Decision, Gate, GateConfig, RATE_LIMITED, SOLD_OUT, monotonic_ns,
};

/// Flash-sale admission gate: sold-out flags, per-user and per-IP GCRA token buckets,
/// and a per-sale cap on requests in flight to Redis. Thread-safe.
#[pyclass(name = "Gate", module = "nexuscart._core", frozen)]
#[derive(Debug)]
pub struct PyGate {
    inner: Gate,
}

#[pymethods]
impl PyGate {
    #[new]
    #[pyo3(signature = (user_rate, user_burst, ip_rate, ip_burst, max_in_flight, *, max_keys = None))]
    fn new(
        user_rate: f64,
        user_burst: &Bound<'_, PyInt>,
        ip_rate: f64,
        ip_burst: &Bound<'_, PyInt>,
        max_in_flight: &Bound<'_, PyInt>,
        max_keys: Option<&Bound<'_, PyInt>>,
    ) -> PyResult<Self> {
        let max_keys = match max_keys {
            Some(n) => usize::try_from(int_arg::<u32>(n, "max_keys")?).unwrap_or(usize::MAX),
            None => DEFAULT_MAX_KEYS,
        };
        let config = GateConfig {
            user_rate,
            user_burst: int_arg(user_burst, "user_burst")?,
            ip_rate,
            ip_burst: int_arg(ip_burst, "ip_burst")?,
            max_in_flight: int_arg(max_in_flight, "max_in_flight")?,
            max_keys,
        };
        Ok(Self {
            inner: Gate::new(config)?,
        })
    }

    /// Both admission steps at once (`check` then `enter`): `(code, retry_after_ms)`.
    /// An admitted request must be `release`d.
    #[pyo3(signature = (sale_id, user_id, ip, now_ns = None))]
    fn admit(
        &self,
        sale_id: Int<u64>,
        user_id: Int<u64>,
        ip: &Bound<'_, PyString>,
        now_ns: Option<Int<u64>>,
    ) -> PyResult<(u8, u64)> {
        decide(Gate::admit, &self.inner, sale_id, user_id, ip, now_ns)
    }

    /// Step 1, before the body is read: `(code, retry_after_ms)` from the user's and the
    /// IP's buckets (charged when both conform, whatever follows), then the sold-out flag.
    /// Takes no in-flight slot: ADMIT means "go on to `enter`".
    #[pyo3(signature = (sale_id, user_id, ip, now_ns = None))]
    fn check(
        &self,
        sale_id: Int<u64>,
        user_id: Int<u64>,
        ip: &Bound<'_, PyString>,
        now_ns: Option<Int<u64>>,
    ) -> PyResult<(u8, u64)> {
        decide(Gate::check, &self.inner, sale_id, user_id, ip, now_ns)
    }

    /// Step 2, just before the Redis call: take one of the sale's in-flight slots.
    /// Returns ADMIT (then `release` it), BUSY or SOLD_OUT.
    fn enter(&self, sale_id: Int<u64>) -> u8 {
        self.inner.enter(sale_id.0).code()
    }

    /// Give back the in-flight slot of an admitted request; False if none was held.
    fn release(&self, sale_id: Int<u64>) -> bool {
        self.inner.release(sale_id.0)
    }

    /// Flag the sale sold out. With `epoch` (read from `epoch()` before the Redis call),
    /// only if the sale was not reopened since. Returns whether the flag was applied.
    #[pyo3(signature = (sale_id, epoch = None))]
    fn mark_sold_out(&self, sale_id: Int<u64>, epoch: Option<Int<u64>>) -> bool {
        self.inner.mark_sold_out(sale_id.0, epoch.map(|e| e.0))
    }

    /// Clear the sold-out flag and start a new epoch (stock came back). Returns it.
    fn reopen(&self, sale_id: Int<u64>) -> u64 {
        self.inner.reopen(sale_id.0)
    }

    /// The sale's current epoch (0 until its first reopen).
    fn epoch(&self, sale_id: Int<u64>) -> u64 {
        self.inner.epoch(sale_id.0)
    }

    /// Whether the sale is flagged sold out.
    fn is_sold_out(&self, sale_id: Int<u64>) -> bool {
        self.inner.is_sold_out(sale_id.0)
    }

    /// Requests admitted and not yet released for the sale.
    fn in_flight(&self, sale_id: Int<u64>) -> u32 {
        self.inner.in_flight(sale_id.0)
    }

    /// Ids of the sales flagged sold out, ascending.
    fn sold_out_sales(&self) -> Vec<u64> {
        self.inner.sold_out_sales()
    }

    /// Number of bucket entries tracked: `(users, ips)`.
    fn tracked_keys(&self) -> (usize, usize) {
        self.inner.tracked_keys()
    }

    /// Drop bucket entries that are full again (this also happens by itself as keys
    /// are added). Returns how many were removed.
    #[pyo3(signature = (now_ns = None))]
    fn sweep(&self, now_ns: Option<Int<u64>>) -> usize {
        self.inner.sweep(now_ns.map_or_else(monotonic_ns, |n| n.0))
    }

    /// The per-sale cap on requests in flight.
    #[getter]
    fn max_in_flight(&self) -> u32 {
        self.inner.max_in_flight()
    }

    fn __repr__(&self) -> String {
        format!("<Gate max_in_flight={}>", self.inner.max_in_flight())
    }
}

/// One decision by `step` (`Gate::admit` or `Gate::check`), as `(code, retry_after_ms)`.
fn decide(
    step: fn(&Gate, u64, u64, &str, Option<u64>) -> Decision,
    gate: &Gate,
    sale_id: Int<u64>,
    user_id: Int<u64>,
    ip: &Bound<'_, PyString>,
    now_ns: Option<Int<u64>>,
) -> PyResult<(u8, u64)> {
    let decision = step(
        gate,
        sale_id.0,
        user_id.0,
        utf8(ip, "ip")?,
        now_ns.map(|n| n.0),
    );
    Ok((decision.code(), decision.retry_after_ms()))
}

/// Registers `Gate` and the admission codes.
pub fn init_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGate>()?;
    m.add("ADMIT", ADMIT)?;
    m.add("SOLD_OUT", SOLD_OUT)?;
    m.add("RATE_LIMITED", RATE_LIMITED)?;
    m.add("BUSY", BUSY)?;
    Ok(())
}
