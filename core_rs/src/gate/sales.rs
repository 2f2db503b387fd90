//! Per-sale state: the sold-out flag (with an epoch) and the in-flight counter.
//!
//! Sold-out flags let the edge answer "sold out" without a Redis round trip. Because the
//! flag is set from Redis answers that may be stale by the time they arrive (stock came
//! back meanwhile: expired holds, cancellations, restock), every [`SaleTable::reopen`]
//! starts a new *epoch*. A caller reads [`SaleTable::epoch`] before its Redis call and
//! passes it to [`SaleTable::mark_sold_out`]; a mark carrying an older epoch is ignored,
//! so a stale "sold out" can never close a sale that was reopened after the call began.
//!
//! Entries that hold no information (not sold out, never reopened, nothing in flight)
//! are removed, so unknown sale ids sent by clients cannot grow the table beyond the
//! number of requests in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use foldhash::fast::RandomState;

use crate::error::{CoreError, CoreResult};

const SHARD_BITS: u32 = 4;
const SHARD_COUNT: usize = 1 << SHARD_BITS;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct SaleState {
    sold_out: bool,
    /// 0 until the first reopen; then a value from the table's global epoch counter.
    epoch: u64,
    in_flight: u32,
}

impl SaleState {
    fn is_idle(&self) -> bool {
        !self.sold_out && self.epoch == 0 && self.in_flight == 0
    }
}

/// Outcome of [`SaleTable::try_acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// A slot was taken; the caller must [`SaleTable::release`] it.
    Acquired,
    /// The sale is flagged sold out; nothing was taken.
    SoldOut,
    /// `max_in_flight` requests are already in flight; nothing was taken.
    Busy,
}

type Map = HashMap<u64, SaleState, RandomState>;

/// Sold-out flags and in-flight counters for all sales.
#[derive(Debug)]
pub struct SaleTable {
    shards: Box<[Mutex<Map>]>,
    max_in_flight: u32,
    epochs: AtomicU64,
}

impl SaleTable {
    /// A table allowing at most `max_in_flight` (>= 1) concurrent requests per sale.
    pub fn new(max_in_flight: u32) -> CoreResult<Self> {
        if max_in_flight == 0 {
            return Err(CoreError::out_of_range(
                "max_in_flight",
                max_in_flight,
                1,
                u32::MAX,
            ));
        }
        Ok(Self {
            shards: (0..SHARD_COUNT)
                .map(|_| Mutex::new(Map::with_hasher(RandomState::default())))
                .collect(),
            max_in_flight,
            epochs: AtomicU64::new(0),
        })
    }

    /// The per-sale cap on requests in flight.
    #[inline]
    pub const fn max_in_flight(&self) -> u32 {
        self.max_in_flight
    }

    #[inline]
    fn lock(&self, sale_id: u64) -> MutexGuard<'_, Map> {
        let index = (sale_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_BITS)) as usize;
        // Every mutation is a single map operation, so a poisoned lock holds consistent
        // data and is taken over.
        self.shards[index & (SHARD_COUNT - 1)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the sale is flagged sold out.
    #[inline]
    pub fn is_sold_out(&self, sale_id: u64) -> bool {
        self.lock(sale_id).get(&sale_id).is_some_and(|s| s.sold_out)
    }

    /// The sale's current epoch (0 if it was never reopened).
    pub fn epoch(&self, sale_id: u64) -> u64 {
        self.lock(sale_id).get(&sale_id).map_or(0, |s| s.epoch)
    }

    /// Flag the sale sold out. With `expected_epoch`, only if the sale is still in that
    /// epoch (no reopen happened since the caller read it). Returns whether the flag is
    /// now set by this call or already was (`false` only for a stale mark).
    pub fn mark_sold_out(&self, sale_id: u64, expected_epoch: Option<u64>) -> bool {
        let mut map = self.lock(sale_id);
        let state = map.entry(sale_id).or_default();
        if expected_epoch.is_some_and(|e| e != state.epoch) {
            if state.is_idle() {
                map.remove(&sale_id);
            }
            return false;
        }
        state.sold_out = true;
        true
    }

    /// Clear the sold-out flag and start a new epoch, invalidating sold-out marks from
    /// requests that started before now. Returns the new epoch.
    pub fn reopen(&self, sale_id: u64) -> u64 {
        let epoch = self.epochs.fetch_add(1, Ordering::Relaxed) + 1;
        let mut map = self.lock(sale_id);
        let state = map.entry(sale_id).or_default();
        state.sold_out = false;
        state.epoch = epoch;
        epoch
    }

    /// Take one in-flight slot if the sale is not sold out and below the cap.
    #[inline]
    pub fn try_acquire(&self, sale_id: u64) -> Acquire {
        let mut map = self.lock(sale_id);
        let state = map.entry(sale_id).or_default();
        if state.sold_out {
            Acquire::SoldOut
        } else if state.in_flight >= self.max_in_flight {
            Acquire::Busy
        } else {
            state.in_flight += 1;
            Acquire::Acquired
        }
    }

    /// Give back one in-flight slot. Never goes below zero: returns `false` (and changes
    /// nothing) if nothing was in flight.
    #[inline]
    pub fn release(&self, sale_id: u64) -> bool {
        let mut map = self.lock(sale_id);
        let Some(state) = map.get_mut(&sale_id) else {
            return false;
        };
        if state.in_flight == 0 {
            return false;
        }
        state.in_flight -= 1;
        if state.is_idle() {
            map.remove(&sale_id);
        }
        true
    }

    /// Requests in flight for the sale.
    pub fn in_flight(&self, sale_id: u64) -> u32 {
        self.lock(sale_id).get(&sale_id).map_or(0, |s| s.in_flight)
    }

    /// Ids of all sales flagged sold out, ascending.
    pub fn sold_out_sales(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .shards
            .iter()
            .flat_map(|m| {
                let map = m.lock().unwrap_or_else(PoisonError::into_inner);
                map.iter()
                    .filter(|(_, s)| s.sold_out)
                    .map(|(&id, _)| id)
                    .collect::<Vec<_>>()
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Number of sales with any state (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_cap_is_rejected() {
        assert!(SaleTable::new(0).is_err());
    }

    #[test]
    fn in_flight_cap_and_release() {
        let t = SaleTable::new(2).unwrap();
        assert_eq!(t.try_acquire(1), Acquire::Acquired);
        assert_eq!(t.try_acquire(1), Acquire::Acquired);
        assert_eq!(t.try_acquire(1), Acquire::Busy);
        assert_eq!(t.in_flight(1), 2);
        assert_eq!(t.try_acquire(2), Acquire::Acquired);
        assert!(t.release(1));
        assert_eq!(t.try_acquire(1), Acquire::Acquired);
        assert!(t.release(1));
        assert!(t.release(1));
        assert!(!t.release(1), "never negative");
        assert!(!t.release(99));
        assert_eq!(t.in_flight(1), 0);
        assert!(t.release(2));
        assert_eq!(t.tracked(), 0, "idle entries are dropped");
    }

    #[test]
    fn sold_out_blocks_acquire_and_reopen_clears() {
        let t = SaleTable::new(5).unwrap();
        assert!(!t.is_sold_out(7));
        assert!(t.mark_sold_out(7, None));
        assert!(t.is_sold_out(7));
        assert_eq!(t.try_acquire(7), Acquire::SoldOut);
        assert_eq!(t.sold_out_sales(), vec![7]);
        let e = t.reopen(7);
        assert!(e > 0);
        assert!(!t.is_sold_out(7));
        assert_eq!(t.try_acquire(7), Acquire::Acquired);
        assert!(t.sold_out_sales().is_empty());
    }

    #[test]
    fn stale_sold_out_mark_is_ignored_after_reopen() {
        let t = SaleTable::new(5).unwrap();
        let seen = t.epoch(3); // request reads the epoch, then calls Redis...
        assert_eq!(seen, 0);
        let e1 = t.reopen(3); // ...stock comes back meanwhile...
        assert!(
            !t.mark_sold_out(3, Some(seen)),
            "stale mark must not close the sale"
        );
        assert!(!t.is_sold_out(3));
        assert!(t.mark_sold_out(3, Some(e1)), "a current mark applies");
        assert!(t.is_sold_out(3));
        let e2 = t.reopen(3);
        assert!(e2 > e1);
        assert_eq!(t.epoch(3), e2);
        // Epochs are unique across sales, so no ABA between sales either.
        assert!(t.reopen(4) > e2);
    }

    #[test]
    fn stale_mark_on_unknown_sale_leaves_nothing_behind() {
        let t = SaleTable::new(1).unwrap();
        assert!(!t.mark_sold_out(11, Some(5)));
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn concurrent_acquire_release_respects_cap() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicU32;
        let t = Arc::new(SaleTable::new(3).unwrap());
        let holders = Arc::new(AtomicU32::new(0));
        let max_seen = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (t, holders, max_seen) = (t.clone(), holders.clone(), max_seen.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        if t.try_acquire(1) == Acquire::Acquired {
                            let n = holders.fetch_add(1, Ordering::SeqCst) + 1;
                            max_seen.fetch_max(n, Ordering::SeqCst);
                            holders.fetch_sub(1, Ordering::SeqCst);
                            assert!(t.release(1));
                        }
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert!(max_seen.load(Ordering::SeqCst) <= 3);
        assert_eq!(t.in_flight(1), 0);
    }
}
