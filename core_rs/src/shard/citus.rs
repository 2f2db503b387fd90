//! Citus hash distribution: shard intervals and value → shard lookup.
//!
//! Followed sources (citusdata/citus):
//! - `src/backend/distributed/operations/create_shards.c`,
//!   `CreateShardsWithRoundRobinPolicy`: `hashTokenIncrement = HASH_TOKEN_COUNT /
//!   shardCount`; shard `i` covers `[INT32_MIN + i * hashTokenIncrement,
//!   min + hashTokenIncrement - 1]`, and the last shard's max is forced to `INT32_MAX`
//!   (so with a shard count that is not a power of two the last shard is a little wider).
//! - `src/include/distributed/metadata_utility.h`: `HASH_TOKEN_COUNT` = 2^32.
//! - `src/backend/distributed/utils/shardinterval_utils.c`, `FindShardIntervalIndex`
//!   (the uniform fast path; newer releases factor it into a helper in the same file):
//!   `shardIndex = (uint32) (hashedValue - INT32_MIN) / hashTokenIncrement`, clamped to
//!   `shardCount - 1`; and `SearchCachedShardInterval`, the binary search used when the
//!   intervals are not uniform (kept here as a test oracle).
//! - `src/include/distributed/shared_library_init.h`: `MAX_SHARD_COUNT` = 64000.
//!
//! Citus hashes the distribution column with the type's hash function (`hashint8` for
//! bigint, `hashtext` for text, `uuid_hash` for uuid, ...) before the lookup.

use crate::error::{CoreError, CoreResult};

/// Number of hash tokens: the whole `int4` range, 2^32 (`HASH_TOKEN_COUNT`).
pub const HASH_TOKEN_COUNT: u64 = 1 << 32;

/// Largest `shard_count` Citus accepts (`MAX_SHARD_COUNT`).
pub const MAX_SHARD_COUNT: u32 = 64_000;

/// The uniform hash-range layout of a table created with `shard_count` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardIntervals {
    shard_count: u32,
    increment: u64,
}

impl ShardIntervals {
    /// Layout for `shard_count` shards (1..=[`MAX_SHARD_COUNT`]).
    pub fn new(shard_count: u32) -> CoreResult<Self> {
        if !(1..=MAX_SHARD_COUNT).contains(&shard_count) {
            return Err(CoreError::out_of_range(
                "shard_count",
                shard_count,
                1,
                MAX_SHARD_COUNT,
            ));
        }
        Ok(Self {
            shard_count,
            increment: HASH_TOKEN_COUNT / u64::from(shard_count),
        })
    }

    /// Number of shards.
    #[inline]
    pub const fn shard_count(&self) -> u32 {
        self.shard_count
    }

    /// `hashTokenIncrement`: the width of every shard but (possibly) the last.
    #[inline]
    pub const fn increment(&self) -> u64 {
        self.increment
    }

    /// `[shardminvalue, shardmaxvalue]` of shard `index`, as `pg_dist_shard` stores it,
    /// or `None` when `index >= shard_count`.
    pub fn interval(&self, index: u32) -> Option<(i32, i32)> {
        if index >= self.shard_count {
            return None;
        }
        // In C: int32 min = PG_INT32_MIN + (shardIndex * hashTokenIncrement), computed in
        // 64 bits; index * increment < 2^32, so the result always fits in int32.
        let offset = u64::from(index) * self.increment;
        let min = i64::from(i32::MIN) + i64::try_from(offset).ok()?;
        let max = if index == self.shard_count - 1 {
            i64::from(i32::MAX)
        } else {
            min + i64::try_from(self.increment).ok()? - 1
        };
        Some((i32::try_from(min).ok()?, i32::try_from(max).ok()?))
    }

    /// All intervals, in shard index order.
    pub fn intervals(&self) -> Vec<(i32, i32)> {
        (0..self.shard_count)
            .filter_map(|i| self.interval(i))
            .collect()
    }

    /// Index of the shard whose interval contains the (already hashed) value.
    #[inline]
    pub fn index_for_hash(&self, hashed: i32) -> u32 {
        // (uint32) (hashedValue - INT32_MIN): the offset of the hash from the bottom of
        // the token range, in 0..2^32.
        let normalized = u64::from(hashed.abs_diff(i32::MIN));
        let index = normalized / self.increment;
        // With a shard count that is not a power of two, the tail above
        // shard_count * increment belongs to the last shard.
        u32::try_from(index).map_or(self.shard_count - 1, |i| i.min(self.shard_count - 1))
    }

    /// `SearchCachedShardInterval`: binary search over the sorted intervals. Same
    /// answer as [`Self::index_for_hash`] for the uniform layout; kept as an oracle.
    pub fn search_intervals(intervals: &[(i32, i32)], hashed: i32) -> Option<usize> {
        let (mut lower, mut upper) = (0usize, intervals.len());
        while lower < upper {
            let middle = lower + (upper - lower) / 2;
            let (min, max) = *intervals.get(middle)?;
            if hashed < min {
                upper = middle;
                continue;
            }
            if hashed <= max {
                return Some(middle);
            }
            lower = middle + 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_shard_counts() {
        assert!(matches!(
            ShardIntervals::new(0),
            Err(CoreError::OutOfRange { .. })
        ));
        assert!(ShardIntervals::new(MAX_SHARD_COUNT + 1).is_err());
        assert!(ShardIntervals::new(1).is_ok());
        assert!(ShardIntervals::new(MAX_SHARD_COUNT).is_ok());
    }

    #[test]
    fn default_32_shards_match_pg_dist_shard() {
        // create_distributed_table(..., shard_count => 32) on Citus produces these
        // shardminvalue/shardmaxvalue pairs (first, second, last).
        let s = ShardIntervals::new(32).unwrap();
        let iv = s.intervals();
        assert_eq!(iv.len(), 32);
        assert_eq!(iv[0], (-2_147_483_648, -2_013_265_921));
        assert_eq!(iv[1], (-2_013_265_920, -1_879_048_193));
        assert_eq!(iv[31], (2_013_265_920, 2_147_483_647));
    }

    #[test]
    fn single_shard_covers_everything() {
        let s = ShardIntervals::new(1).unwrap();
        assert_eq!(s.intervals(), vec![(i32::MIN, i32::MAX)]);
        assert_eq!(s.index_for_hash(i32::MIN), 0);
        assert_eq!(s.index_for_hash(i32::MAX), 0);
    }

    #[test]
    fn non_power_of_two_last_shard_is_wider() {
        let s = ShardIntervals::new(3).unwrap();
        let iv = s.intervals();
        assert_eq!(s.increment(), 1_431_655_765);
        assert_eq!(iv[0], (-2_147_483_648, -715_827_884));
        assert_eq!(iv[1], (-715_827_883, 715_827_881));
        assert_eq!(iv[2], (715_827_882, 2_147_483_647));
        // 3 * increment = 2^32 - 1, so INT32_MAX normalizes to index 3 and is clamped.
        assert_eq!(s.index_for_hash(i32::MAX), 2);
    }

    #[test]
    fn intervals_tile_the_int32_range() {
        for n in [1u32, 2, 3, 5, 7, 8, 32, 100, 1000, 4096, 63_999, 64_000] {
            let iv = ShardIntervals::new(n).unwrap().intervals();
            assert_eq!(iv.first().map(|p| p.0), Some(i32::MIN));
            assert_eq!(iv.last().map(|p| p.1), Some(i32::MAX));
            for w in iv.windows(2) {
                assert!(w[0].0 <= w[0].1);
                assert_eq!(i64::from(w[0].1) + 1, i64::from(w[1].0), "n={n}");
            }
        }
    }

    #[test]
    fn fast_path_agrees_with_binary_search() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for n in [1u32, 2, 3, 6, 7, 32, 33, 100, 4095, 64_000] {
            let s = ShardIntervals::new(n).unwrap();
            let iv = s.intervals();
            let mut probes = vec![i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX - 1, i32::MAX];
            for &(lo, hi) in iv.iter().take(50) {
                probes.extend([lo, hi]);
            }
            for _ in 0..2000 {
                // xorshift64: deterministic pseudo-random probes
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                probes.push(x as i32);
            }
            for h in probes {
                assert_eq!(
                    Some(s.index_for_hash(h) as usize),
                    ShardIntervals::search_intervals(&iv, h),
                    "n={n} h={h}"
                );
            }
        }
    }
}
