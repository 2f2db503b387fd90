//! Flash-sale admission: decides in-process, before any Redis round trip, whether a
//! purchase request may proceed. A purchase passes two steps:
//!
//! 1. [`Gate::check`], as soon as the request's headers are in: the per-user and then the
//!    per-IP GCRA bucket → [`Decision::RateLimited`]; then the sale's sold-out flag →
//!    [`Decision::SoldOut`]. Buckets come first so that every attempt is charged, whatever
//!    follows: a bot retrying a sold-out sale is throttled like any other. Both buckets are
//!    checked before either is charged (a request refused by one costs nothing in the other).
//! 2. [`Gate::enter`], once the body is read and valid, just before the Redis call: the
//!    per-sale cap on requests in flight to Redis → [`Decision::Busy`] (or `SoldOut` if the
//!    flag was set meanwhile). An entered request holds one slot until [`Gate::release`].
//!    The slot is held only around the Redis call, whose time the server bounds, so a client
//!    that stalls its body (or a user or IP with many connections) cannot pin slots.
//!
//! [`Gate::admit`] is both steps at once, for callers that already hold the body.
//!
//! All methods take `&self`; the gate is `Send + Sync` (sharded mutexes, one lock order:
//! user shard → IP shard; the sale table is locked on its own).

pub mod gcra;
pub mod sales;

use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::time::Instant;

use foldhash::fast::RandomState;

pub use gcra::{BucketTable, GcraParams};
pub use sales::{Acquire, SaleTable};

use crate::error::CoreResult;

/// Admitted: go ahead, then [`Gate::release`] the sale when the Redis call is done.
pub const ADMIT: u8 = 0;
/// The sale is flagged sold out.
pub const SOLD_OUT: u8 = 1;
/// The user's or the IP's bucket is empty; retry after the given delay.
pub const RATE_LIMITED: u8 = 2;
/// Too many requests for this sale are in flight to Redis.
pub const BUSY: u8 = 3;

/// Default cap on keys tracked per bucket family (users, IPs).
pub const DEFAULT_MAX_KEYS: usize = 1 << 20;

/// The answer of [`Gate::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted; one in-flight slot is held.
    Admit,
    /// Sale flagged sold out.
    SoldOut,
    /// A bucket is empty; the request would conform after `retry_after_ns`.
    RateLimited {
        /// Nanoseconds until both buckets would admit the request.
        retry_after_ns: u64,
    },
    /// In-flight cap reached.
    Busy,
}

impl Decision {
    /// The wire code ([`ADMIT`], [`SOLD_OUT`], [`RATE_LIMITED`], [`BUSY`]).
    #[inline]
    pub const fn code(self) -> u8 {
        match self {
            Self::Admit => ADMIT,
            Self::SoldOut => SOLD_OUT,
            Self::RateLimited { .. } => RATE_LIMITED,
            Self::Busy => BUSY,
        }
    }

    /// Retry delay in whole milliseconds, rounded up (0 unless rate limited).
    #[inline]
    pub const fn retry_after_ms(self) -> u64 {
        match self {
            Self::RateLimited { retry_after_ns } => retry_after_ns.div_ceil(1_000_000),
            _ => 0,
        }
    }
}

/// Nanoseconds on a process-wide monotonic clock (0 at its first use).
#[inline]
pub fn monotonic_ns() -> u64 {
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    let anchor = ANCHOR.get_or_init(Instant::now);
    u64::try_from(anchor.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Everything a [`Gate`] is built from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateConfig {
    /// Per-user tokens per second.
    pub user_rate: f64,
    /// Per-user bucket size.
    pub user_burst: u32,
    /// Per-IP tokens per second.
    pub ip_rate: f64,
    /// Per-IP bucket size.
    pub ip_burst: u32,
    /// Per-sale cap on admitted requests not yet released.
    pub max_in_flight: u32,
    /// Cap on keys tracked per bucket family.
    pub max_keys: usize,
}

/// The admission gate. See the module docs.
#[derive(Debug)]
pub struct Gate {
    users: BucketTable,
    ips: BucketTable,
    sales: SaleTable,
    ip_hasher: RandomState,
}

impl Gate {
    /// Build a gate; rejects non-positive rates, zero bursts and a zero in-flight cap.
    pub fn new(config: GateConfig) -> CoreResult<Self> {
        let user = GcraParams::new(
            "user_rate",
            config.user_rate,
            "user_burst",
            config.user_burst,
        )?;
        let ip = GcraParams::new("ip_rate", config.ip_rate, "ip_burst", config.ip_burst)?;
        Ok(Self {
            users: BucketTable::new(user, config.max_keys),
            ips: BucketTable::new(ip, config.max_keys),
            sales: SaleTable::new(config.max_in_flight)?,
            ip_hasher: RandomState::default(),
        })
    }

    /// The 64-bit key an IP address string is tracked under (seeded per gate).
    #[inline]
    pub fn ip_key(&self, ip: &str) -> u64 {
        self.ip_hasher.hash_one(ip)
    }

    /// Both steps at once ([`Self::check`] then [`Self::enter`]). `now_ns` is the gate
    /// clock (`None`: [`monotonic_ns`]).
    #[inline]
    pub fn admit(&self, sale_id: u64, user_id: u64, ip: &str, now_ns: Option<u64>) -> Decision {
        match self.check(sale_id, user_id, ip, now_ns) {
            Decision::Admit => self.enter(sale_id),
            other => other,
        }
    }

    /// Step 1: the user's and the IP's buckets (charged when both conform), then the
    /// sold-out flag. Takes no in-flight slot: `Admit` here means "go on to [`Self::enter`]".
    #[inline]
    pub fn check(&self, sale_id: u64, user_id: u64, ip: &str, now_ns: Option<u64>) -> Decision {
        let ip_key = self.ip_key(ip);
        self.check_keys(
            sale_id,
            user_id,
            ip_key,
            now_ns.unwrap_or_else(monotonic_ns),
        )
    }

    /// [`Self::check`] with the IP already hashed by [`Self::ip_key`].
    pub fn check_keys(&self, sale_id: u64, user_id: u64, ip_key: u64, now: u64) -> Decision {
        {
            let mut user = self.users.lock(user_id);
            let user_check = user.check(user_id, now);
            let mut ip = self.ips.lock(ip_key);
            let ip_check = ip.check(ip_key, now);
            match (user_check, ip_check) {
                (Ok(user_tat), Ok(ip_tat)) => {
                    user.commit(user_id, user_tat, now);
                    ip.commit(ip_key, ip_tat, now);
                }
                (Err(wait), Ok(_)) | (Ok(_), Err(wait)) => {
                    return Decision::RateLimited {
                        retry_after_ns: wait,
                    };
                }
                (Err(a), Err(b)) => {
                    return Decision::RateLimited {
                        retry_after_ns: a.max(b),
                    };
                }
            }
        }
        if self.sales.is_sold_out(sale_id) {
            return Decision::SoldOut;
        }
        Decision::Admit
    }

    /// Step 2: take one of the sale's in-flight slots (not if it is flagged sold out).
    /// `Admit` must be followed by [`Self::release`] once the Redis call is done.
    #[inline]
    pub fn enter(&self, sale_id: u64) -> Decision {
        match self.sales.try_acquire(sale_id) {
            Acquire::Acquired => Decision::Admit,
            Acquire::SoldOut => Decision::SoldOut,
            Acquire::Busy => Decision::Busy,
        }
    }

    /// Give back the in-flight slot of an admitted request. Returns `false` (a no-op)
    /// if nothing was in flight for the sale.
    #[inline]
    pub fn release(&self, sale_id: u64) -> bool {
        self.sales.release(sale_id)
    }

    /// Flag the sale sold out; with `epoch`, only if no reopen happened since the caller
    /// read [`Self::epoch`]. Returns whether the flag was applied.
    pub fn mark_sold_out(&self, sale_id: u64, epoch: Option<u64>) -> bool {
        self.sales.mark_sold_out(sale_id, epoch)
    }

    /// Clear the sold-out flag and start a new epoch. Returns the new epoch.
    pub fn reopen(&self, sale_id: u64) -> u64 {
        self.sales.reopen(sale_id)
    }

    /// The sale's epoch, to pass to [`Self::mark_sold_out`].
    pub fn epoch(&self, sale_id: u64) -> u64 {
        self.sales.epoch(sale_id)
    }

    /// Whether the sale is flagged sold out.
    pub fn is_sold_out(&self, sale_id: u64) -> bool {
        self.sales.is_sold_out(sale_id)
    }

    /// Requests admitted and not yet released for the sale.
    pub fn in_flight(&self, sale_id: u64) -> u32 {
        self.sales.in_flight(sale_id)
    }

    /// The per-sale in-flight cap.
    pub fn max_in_flight(&self) -> u32 {
        self.sales.max_in_flight()
    }

    /// Ids of the sales flagged sold out, ascending.
    pub fn sold_out_sales(&self) -> Vec<u64> {
        self.sales.sold_out_sales()
    }

    /// Keys tracked: `(users, ips)`.
    pub fn tracked_keys(&self) -> (usize, usize) {
        (self.users.len(), self.ips.len())
    }

    /// Drop bucket entries that are full at `now` (and evict over capacity). Sweeping
    /// also happens on its own as keys are added; this is for periodic housekeeping.
    /// Returns the number of entries removed.
    pub fn sweep(&self, now: u64) -> usize {
        self.users.sweep(now) + self.ips.sweep(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000 * MS;

    fn gate(user: (f64, u32), ip: (f64, u32), max_in_flight: u32) -> Gate {
        Gate::new(GateConfig {
            user_rate: user.0,
            user_burst: user.1,
            ip_rate: ip.0,
            ip_burst: ip.1,
            max_in_flight,
            max_keys: 1 << 16,
        })
        .unwrap()
    }

    #[test]
    fn gate_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Gate>();
    }

    #[test]
    fn codes() {
        assert_eq!(Decision::Admit.code(), 0);
        assert_eq!(Decision::SoldOut.code(), 1);
        assert_eq!(Decision::RateLimited { retry_after_ns: 1 }.code(), 2);
        assert_eq!(Decision::Busy.code(), 3);
        assert_eq!(
            Decision::RateLimited { retry_after_ns: 1 }.retry_after_ms(),
            1
        );
        assert_eq!(
            Decision::RateLimited {
                retry_after_ns: 1_000_001
            }
            .retry_after_ms(),
            2
        );
        assert_eq!(Decision::Busy.retry_after_ms(), 0);
    }

    #[test]
    fn rejects_bad_config() {
        let ok = GateConfig {
            user_rate: 1.0,
            user_burst: 1,
            ip_rate: 1.0,
            ip_burst: 1,
            max_in_flight: 1,
            max_keys: 10,
        };
        assert!(Gate::new(ok).is_ok());
        assert!(
            Gate::new(GateConfig {
                user_rate: 0.0,
                ..ok
            })
            .is_err()
        );
        assert!(Gate::new(GateConfig { ip_burst: 0, ..ok }).is_err());
        assert!(
            Gate::new(GateConfig {
                max_in_flight: 0,
                ..ok
            })
            .is_err()
        );
    }

    #[test]
    fn sold_out_attempts_are_charged_to_the_buckets() {
        // Regression: the sold-out short-circuit used to come before the buckets, so a
        // bot retrying a sold-out sale was never throttled.
        let g = gate((1.0, 2), (1.0, 100), 10);
        g.mark_sold_out(1, None);
        assert_eq!(g.admit(1, 5, "1.2.3.4", Some(0)), Decision::SoldOut);
        assert_eq!(g.check(1, 5, "1.2.3.4", Some(0)), Decision::SoldOut);
        assert_eq!(
            g.check(1, 5, "1.2.3.4", Some(0)),
            Decision::RateLimited {
                retry_after_ns: SEC
            }
        );
        // The sold-out answer took no slot; another sale admits a fresh user.
        assert_eq!(g.in_flight(1), 0);
        assert_eq!(g.admit(2, 6, "1.2.3.4", Some(0)), Decision::Admit);
    }

    #[test]
    fn check_takes_no_slot_and_enter_does() {
        let g = gate((100.0, 100), (100.0, 100), 1);
        assert_eq!(g.check(1, 1, "a", Some(0)), Decision::Admit);
        assert_eq!(g.check(1, 2, "b", Some(0)), Decision::Admit);
        assert_eq!(g.in_flight(1), 0);
        assert_eq!(g.enter(1), Decision::Admit);
        assert_eq!(g.enter(1), Decision::Busy);
        assert!(g.release(1));
        g.mark_sold_out(1, None);
        assert_eq!(g.enter(1), Decision::SoldOut);
        assert_eq!(g.in_flight(1), 0);
    }

    #[test]
    fn user_limit_then_ip_limit() {
        let g = gate((1.0, 2), (1.0, 3), 100);
        let t = 10 * SEC;
        assert_eq!(g.admit(1, 7, "a", Some(t)), Decision::Admit);
        assert_eq!(g.admit(1, 7, "a", Some(t)), Decision::Admit);
        // User bucket empty.
        assert_eq!(
            g.admit(1, 7, "a", Some(t)),
            Decision::RateLimited {
                retry_after_ns: SEC
            }
        );
        // Another user on the same IP: IP has one token left.
        assert_eq!(g.admit(1, 8, "a", Some(t)), Decision::Admit);
        let d = g.admit(1, 9, "a", Some(t));
        assert_eq!(
            d,
            Decision::RateLimited {
                retry_after_ns: SEC
            }
        );
        assert_eq!(d.retry_after_ms(), 1000);
    }

    #[test]
    fn rejection_by_one_bucket_does_not_charge_the_other() {
        let g = gate((1.0, 1), (1.0, 1), 100);
        let t = SEC;
        assert_eq!(g.admit(1, 1, "ip-a", Some(t)), Decision::Admit);
        // User 1 is limited: the fresh IP "ip-b" must not lose its token.
        assert!(matches!(
            g.admit(1, 1, "ip-b", Some(t)),
            Decision::RateLimited { .. }
        ));
        assert_eq!(g.admit(1, 2, "ip-b", Some(t)), Decision::Admit);
        // IP "ip-a" is limited: fresh user 3 must not lose their token.
        assert!(matches!(
            g.admit(1, 3, "ip-a", Some(t)),
            Decision::RateLimited { .. }
        ));
        assert_eq!(g.admit(1, 3, "ip-c", Some(t)), Decision::Admit);
    }

    #[test]
    fn both_limited_reports_the_longer_wait() {
        let g = gate((1.0, 1), (0.5, 1), 100);
        assert_eq!(g.admit(1, 1, "x", Some(0)), Decision::Admit);
        assert_eq!(
            g.admit(1, 1, "x", Some(0)),
            Decision::RateLimited {
                retry_after_ns: 2 * SEC
            }
        );
    }

    #[test]
    fn busy_is_charged_and_release_frees_a_slot() {
        let g = gate((1.0, 2), (1.0, 2), 1);
        assert_eq!(g.admit(1, 1, "a", Some(0)), Decision::Admit);
        assert_eq!(g.in_flight(1), 1);
        assert_eq!(g.admit(1, 2, "b", Some(0)), Decision::Busy);
        assert_eq!(g.tracked_keys(), (2, 2), "a busy attempt is an attempt");
        assert!(g.release(1));
        assert_eq!(g.in_flight(1), 0);
        assert!(!g.release(1));
        assert_eq!(g.admit(1, 2, "b", Some(0)), Decision::Admit);
        // In-flight is per sale.
        assert_eq!(g.admit(2, 3, "c", Some(0)), Decision::Admit);
    }

    #[test]
    fn reopen_and_stale_marks() {
        let g = gate((100.0, 100), (100.0, 100), 10);
        let epoch = g.epoch(4);
        let new_epoch = g.reopen(4);
        assert!(!g.mark_sold_out(4, Some(epoch)));
        assert!(!g.is_sold_out(4));
        assert!(g.mark_sold_out(4, Some(new_epoch)));
        assert_eq!(g.sold_out_sales(), vec![4]);
        g.reopen(4);
        assert_eq!(g.admit(4, 1, "a", Some(0)), Decision::Admit);
    }

    #[test]
    fn default_clock_works() {
        let g = gate((1000.0, 10), (1000.0, 10), 10);
        let a = monotonic_ns();
        assert_eq!(g.admit(1, 1, "a", None), Decision::Admit);
        assert!(monotonic_ns() >= a);
    }

    #[test]
    fn concurrent_admissions_never_exceed_burst() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU32, Ordering};
        // Frozen clock: exactly `burst` admissions for one user, however many threads.
        let g = Arc::new(gate((1.0, 50), (1000.0, 1000), u32::MAX));
        let admitted = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (g, admitted) = (g.clone(), admitted.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        if g.admit(1, 42, &format!("10.0.0.{i}"), Some(SEC)) == Decision::Admit {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 50);
        assert_eq!(g.in_flight(1), 50);
    }
}
