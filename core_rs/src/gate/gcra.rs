//! GCRA ("generic cell rate algorithm") token buckets, keyed by `u64`, with bounded memory.
//!
//! A bucket is one number per key: its theoretical arrival time (TAT), in nanoseconds on
//! the gate's clock. With emission interval `T = 1/rate` and burst `B`, a request at
//! `now` conforms iff `max(TAT, now) + T - B*T <= now`; if it does, the new TAT is
//! `max(TAT, now) + T`, otherwise it may retry after `max(TAT, now) + T - B*T - now`.
//!
//! A key whose TAT is not after `now` is exactly a full bucket, the same as a key never
//! seen; such entries carry no information and are swept. Sweeping is amortized: a shard
//! sweeps when it has doubled since its last sweep, so each sweep is paid for by the
//! inserts before it. Each shard also has a hard capacity; when live entries reach 3/4 of
//! it, the ones closest to a full bucket (smallest TAT) are evicted, which at worst gives
//! those keys back part of a burst. Memory never exceeds `max_keys` entries per table.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use foldhash::fast::RandomState;

use crate::error::{CoreError, CoreResult};

const NANOS_PER_SEC: f64 = 1e9;
/// Highest accepted rate: one request per nanosecond.
pub const MAX_RATE: f64 = 1e9;
/// Log2 of the number of lock shards per table.
const SHARD_BITS: u32 = 5;
const SHARD_COUNT: usize = 1 << SHARD_BITS;
/// A shard does not sweep before it holds this many entries.
const MIN_SWEEP_LEN: usize = 64;

/// The parameters of one family of buckets (all users, or all IPs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraParams {
    /// `T`: nanoseconds per token, rounded up so the effective rate never exceeds the
    /// configured one.
    emission_ns: u64,
    /// `B * T`: how far ahead of `now` the TAT may run.
    tolerance_ns: u64,
    burst: u32,
}

impl GcraParams {
    /// Buckets refilling at `rate` tokens per second and holding at most `burst` tokens.
    /// The names are used in error messages.
    pub fn new(
        rate_name: &'static str,
        rate: f64,
        burst_name: &'static str,
        burst: u32,
    ) -> CoreResult<Self> {
        if !rate.is_finite() || rate <= 0.0 {
            return Err(CoreError::invalid(
                rate_name,
                format!("must be a finite number > 0, got {rate}"),
            ));
        }
        if rate > MAX_RATE {
            return Err(CoreError::invalid(
                rate_name,
                format!("must be at most {MAX_RATE} per second, got {rate}"),
            ));
        }
        if burst == 0 {
            return Err(CoreError::out_of_range(burst_name, burst, 1, u32::MAX));
        }
        let emission = (NANOS_PER_SEC / rate).ceil();
        // `emission` is in [1, +inf); anything at or above 2^64 ns (584 years) is rejected.
        if emission >= 18_446_744_073_709_551_616.0 {
            return Err(CoreError::invalid(
                rate_name,
                format!("{rate} per second is too slow (one token per >584 years)"),
            ));
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let emission_ns = emission as u64;
        let tolerance_ns = emission_ns.checked_mul(u64::from(burst)).ok_or_else(|| {
            CoreError::invalid(
                burst_name,
                format!("{burst} tokens at {rate} per second span more than 584 years"),
            )
        })?;
        Ok(Self {
            emission_ns,
            tolerance_ns,
            burst,
        })
    }

    /// Nanoseconds per token.
    #[inline]
    pub const fn emission_ns(&self) -> u64 {
        self.emission_ns
    }

    /// Bucket size in tokens.
    #[inline]
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    /// Decide a request at `now` against a bucket whose stored TAT is `tat` (`None` for a
    /// key not tracked, i.e. a full bucket). `Ok(new_tat)` if it conforms, to be stored
    /// by the caller; `Err(wait_ns)` if not, with the time until it would conform.
    #[inline]
    pub fn check(&self, tat: Option<u64>, now: u64) -> Result<u64, u64> {
        let base = tat.map_or(now, |t| t.max(now));
        let new_tat = base.saturating_add(self.emission_ns);
        let allowed_at = new_tat.saturating_sub(self.tolerance_ns);
        if allowed_at <= now {
            Ok(new_tat)
        } else {
            Err(allowed_at - now)
        }
    }
}

type Map = HashMap<u64, u64, RandomState>;

#[derive(Debug)]
struct Shard {
    map: Map,
    next_sweep: usize,
}

impl Shard {
    fn new(cap: usize) -> Self {
        Self {
            map: Map::with_hasher(RandomState::default()),
            next_sweep: MIN_SWEEP_LEN.min(cap),
        }
    }

    /// Drop entries that are full buckets at `now`; if the live entries still exceed 3/4
    /// of `cap`, evict those with the smallest TAT down to 3/4 of `cap`. Returns how
    /// many entries were removed.
    fn sweep(&mut self, now: u64, cap: usize) -> usize {
        let before = self.map.len();
        self.map.retain(|_, tat| *tat > now);
        let keep = cap.saturating_sub((cap / 4).max(1));
        if self.map.len() > keep {
            let excess = self.map.len() - keep;
            let mut tats: Vec<u64> = self.map.values().copied().collect();
            let (_, threshold, _) = tats.select_nth_unstable(excess - 1);
            let threshold = *threshold;
            self.map.retain(|_, tat| *tat > threshold);
        }
        let len = self.map.len();
        self.next_sweep = len.saturating_mul(2).clamp(MIN_SWEEP_LEN.min(cap), cap);
        if self.map.capacity() > 4 * len.max(MIN_SWEEP_LEN) {
            self.map.shrink_to(2 * len);
        }
        before - len
    }
}

/// A locked shard of a [`BucketTable`]; holds the lock until dropped.
#[derive(Debug)]
pub struct BucketGuard<'a> {
    shard: MutexGuard<'a, Shard>,
    params: GcraParams,
    cap: usize,
}

impl BucketGuard<'_> {
    /// Decide without changing anything (see [`GcraParams::check`]).
    #[inline]
    pub fn check(&self, key: u64, now: u64) -> Result<u64, u64> {
        self.params.check(self.shard.map.get(&key).copied(), now)
    }

    /// Store the TAT computed by a successful [`Self::check`].
    #[inline]
    pub fn commit(&mut self, key: u64, new_tat: u64, now: u64) {
        // One lookup in the common case; a new key may first trigger a sweep.
        if self.shard.map.len() >= self.shard.next_sweep && !self.shard.map.contains_key(&key) {
            self.shard.sweep(now, self.cap);
        }
        self.shard.map.insert(key, new_tat);
    }
}

/// Buckets for one key family, sharded over mutexes.
#[derive(Debug)]
pub struct BucketTable {
    params: GcraParams,
    shards: Box<[Mutex<Shard>]>,
    /// Hard cap on entries per shard.
    shard_cap: usize,
}

impl BucketTable {
    /// A table tracking at most `max_keys` keys (rounded up to a multiple of the shard
    /// count; at least one key per shard).
    pub fn new(params: GcraParams, max_keys: usize) -> Self {
        let shard_cap = max_keys.div_ceil(SHARD_COUNT).max(1);
        Self {
            params,
            shards: (0..SHARD_COUNT)
                .map(|_| Mutex::new(Shard::new(shard_cap)))
                .collect(),
            shard_cap,
        }
    }

    /// The bucket parameters.
    #[inline]
    pub const fn params(&self) -> &GcraParams {
        &self.params
    }

    /// Maximum number of keys tracked.
    pub fn capacity(&self) -> usize {
        self.shard_cap * SHARD_COUNT
    }

    #[inline]
    fn shard_index(key: u64) -> usize {
        // Fibonacci hashing: the top bits of key * 2^64/phi spread sequential ids.
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_BITS)) as usize
    }

    #[inline]
    fn lock_shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        // A panic while holding the lock cannot leave a shard inconsistent (every
        // mutation is a single map operation), so a poisoned lock is simply taken over.
        self.shards[index & (SHARD_COUNT - 1)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Lock the shard holding `key`.
    #[inline]
    pub fn lock(&self, key: u64) -> BucketGuard<'_> {
        BucketGuard {
            shard: self.lock_shard(Self::shard_index(key)),
            params: self.params,
            cap: self.shard_cap,
        }
    }

    /// Decide and, if conforming, consume one token: `Ok(())` or `Err(wait_ns)`.
    pub fn take(&self, key: u64, now: u64) -> Result<(), u64> {
        let mut guard = self.lock(key);
        let new_tat = guard.check(key, now)?;
        guard.commit(key, new_tat, now);
        Ok(())
    }

    /// Number of keys currently tracked.
    pub fn len(&self) -> usize {
        (0..SHARD_COUNT).map(|i| self.lock_shard(i).map.len()).sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sweep every shard now (see module docs). Returns the number of entries removed.
    pub fn sweep(&self, now: u64) -> usize {
        (0..SHARD_COUNT)
            .map(|i| self.lock_shard(i).sweep(now, self.shard_cap))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn params(rate: f64, burst: u32) -> GcraParams {
        GcraParams::new("rate", rate, "burst", burst).unwrap()
    }

    #[test]
    fn rejects_bad_parameters() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e9] {
            assert!(GcraParams::new("rate", rate, "burst", 1).is_err(), "{rate}");
        }
        assert!(GcraParams::new("rate", 1.0, "burst", 0).is_err());
        assert!(GcraParams::new("rate", 1e-12, "burst", 1).is_err());
        assert!(GcraParams::new("rate", 1e-6, "burst", u32::MAX).is_err());
        assert!(GcraParams::new("rate", 1e9, "burst", u32::MAX).is_ok());
    }

    #[test]
    fn emission_rounds_up() {
        assert_eq!(params(3.0, 1).emission_ns(), 333_333_334);
        assert_eq!(params(1.0, 1).emission_ns(), SEC);
        assert_eq!(params(0.5, 1).emission_ns(), 2 * SEC);
    }

    #[test]
    fn burst_then_steady_rate() {
        let t = BucketTable::new(params(10.0, 3), 1024);
        let now = 5 * SEC;
        for _ in 0..3 {
            assert_eq!(t.take(1, now), Ok(()));
        }
        // Bucket empty: next token in 100 ms.
        assert_eq!(t.take(1, now), Err(SEC / 10));
        assert_eq!(t.take(1, now + SEC / 20), Err(SEC / 20));
        assert_eq!(t.take(1, now + SEC / 10), Ok(()));
        assert_eq!(t.take(1, now + SEC / 10), Err(SEC / 10));
        // Other keys are independent.
        assert_eq!(t.take(2, now), Ok(()));
        // After a long idle time the bucket is full again, but not fuller.
        let later = now + 100 * SEC;
        for _ in 0..3 {
            assert_eq!(t.take(1, later), Ok(()));
        }
        assert!(t.take(1, later).is_err());
    }

    #[test]
    fn clock_going_backwards_is_harmless() {
        let t = BucketTable::new(params(1.0, 1), 1024);
        assert_eq!(t.take(1, 10 * SEC), Ok(()));
        assert_eq!(t.take(1, 9 * SEC), Err(2 * SEC));
        assert_eq!(t.take(1, 11 * SEC), Ok(()));
    }

    #[test]
    fn admitted_count_never_exceeds_burst_plus_rate() {
        // Pseudo-random arrival times; count admissions in every prefix window.
        let p = params(7.0, 4);
        let t = BucketTable::new(p, 1024);
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let start = SEC;
        let mut now = start;
        let mut admitted = 0u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            now += x % (SEC / 20);
            if t.take(9, now).is_ok() {
                admitted += 1;
            }
            let bound = u64::from(p.burst()) + (now - start) / p.emission_ns();
            assert!(admitted <= bound, "admitted {admitted} > bound {bound}");
        }
        // And the limiter is not overly strict either: close to the rate over the run.
        let ideal = (now - start) / p.emission_ns();
        assert!(admitted + 2 >= ideal, "admitted {admitted}, ideal {ideal}");
    }

    #[test]
    fn expired_entries_are_swept() {
        let t = BucketTable::new(params(1.0, 1), 1 << 20);
        // 100k distinct keys, one per 100 µs: each bucket is full again 1 s later.
        let mut now = 0;
        for key in 0..100_000u64 {
            now += 100_000;
            assert!(t.take(key, now).is_ok());
        }
        // Only keys from the last second (10k) are live; amortized sweeping keeps at
        // most ~2x that plus per-shard slack.
        let len = t.len();
        assert!(len <= 2 * 10_000 + SHARD_COUNT * MIN_SWEEP_LEN, "len={len}");
        t.sweep(now);
        assert!(t.len() <= 10_000, "after sweep: {}", t.len());
        let live = t.len();
        assert_eq!(t.sweep(now + 2 * SEC), live);
        assert!(t.is_empty());
    }

    #[test]
    fn memory_is_bounded_even_when_every_entry_is_live() {
        // burst 1 at 1/hour: nothing expires during the test.
        let t = BucketTable::new(params(1.0 / 3600.0, 1), 4096);
        let cap = t.capacity();
        for key in 0..200_000u64 {
            assert!(t.take(key, key).is_ok());
            if key % 997 == 0 {
                assert!(t.len() <= cap);
            }
        }
        assert!(t.len() <= cap);
        assert!(t.len() >= cap / 2, "evicts only what it must: {}", t.len());
        // The most recent key is still tracked (it has the largest TAT).
        assert!(t.take(199_999, 199_999).is_err());
    }

    #[test]
    fn tiny_capacity_still_works() {
        let t = BucketTable::new(params(1.0, 1), 1);
        for key in 0..1000u64 {
            assert!(t.take(key, key).is_ok());
            assert!(t.len() <= t.capacity());
        }
    }
}
