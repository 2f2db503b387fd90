//! Shard routing: which Citus shard holds a row, which Redis Cluster slot holds a key.
//!
//! Plain Rust, no Python: the PyO3 layer lives in `bindings::shard`. See
//! `docs/shard-router.md` for the sources followed and how the hashes were checked
//! against a real PostgreSQL.

pub mod citus;
pub mod pg_hash;
pub mod redis;

pub use citus::{HASH_TOKEN_COUNT, MAX_SHARD_COUNT, ShardIntervals};
pub use pg_hash::{hash_bytes, hash_uint32, hashbytes, hashint4, hashint8, hashtext, uuid_hash};
pub use redis::{SLOT_COUNT, crc16, hash_tag, key_slot};

use crate::error::{CoreError, CoreResult};

/// Routes distribution-column values to the shard index Citus would pick for a
/// hash-distributed table created with `shard_count` shards.
///
/// The index is the position of the shard in `pg_dist_shard` ordered by
/// `shardminvalue::int` (the column is text) (equivalently, by shard id for a freshly created table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardRouter {
    intervals: ShardIntervals,
}

impl ShardRouter {
    /// A router for `shard_count` shards (1..=64000).
    pub fn new(shard_count: u32) -> CoreResult<Self> {
        Ok(Self {
            intervals: ShardIntervals::new(shard_count)?,
        })
    }

    /// Number of shards.
    #[inline]
    pub const fn shard_count(&self) -> u32 {
        self.intervals.shard_count()
    }

    /// The `[min, max]` hash range of every shard, in index order.
    pub fn intervals(&self) -> Vec<(i32, i32)> {
        self.intervals.intervals()
    }

    /// Shard of an already hashed value (an `int4` from one of PostgreSQL's hash functions).
    #[inline]
    pub fn shard_for_hash(&self, hashed: i32) -> u32 {
        self.intervals.index_for_hash(hashed)
    }

    /// Shard of a `bigint` distribution column value.
    #[inline]
    pub fn shard_for_int8(&self, value: i64) -> u32 {
        self.shard_for_hash(hashint8(value))
    }

    /// Shard of an `integer` distribution column value.
    #[inline]
    pub fn shard_for_int4(&self, value: i32) -> u32 {
        self.shard_for_hash(hashint4(value))
    }

    /// Shard of a `text` distribution column value (deterministic collation, UTF-8).
    #[inline]
    pub fn shard_for_text(&self, value: &str) -> u32 {
        self.shard_for_hash(hashtext(value))
    }

    /// Shard of a `uuid` distribution column value given as its 16 bytes.
    #[inline]
    pub fn shard_for_uuid(&self, value: &[u8; 16]) -> u32 {
        self.shard_for_hash(uuid_hash(value))
    }

    /// Shard of a `uuid` given as a byte slice, which must be exactly 16 bytes long.
    pub fn shard_for_uuid_slice(&self, value: &[u8]) -> CoreResult<u32> {
        Ok(self.shard_for_uuid(&uuid_bytes(value)?))
    }

    /// Batch form of [`Self::shard_for_int8`].
    pub fn shards_for_int8(&self, values: &[i64]) -> Vec<u32> {
        values.iter().map(|&v| self.shard_for_int8(v)).collect()
    }

    /// Batch form of [`Self::shard_for_text`] over strings packed into one buffer:
    /// string `i` is `buf[ends[i-1]..ends[i]]` (with `ends[-1]` = 0), as built by
    /// [`PackedBytes`]. Bytes are hashed as they are (they need not be valid UTF-8).
    pub fn shards_for_packed(&self, packed: &PackedBytes) -> Vec<u32> {
        packed
            .iter()
            .map(|bytes| self.shard_for_hash(hashbytes(bytes)))
            .collect()
    }
}

/// Check that a uuid is given as exactly 16 bytes.
pub fn uuid_bytes(value: &[u8]) -> CoreResult<[u8; 16]> {
    <[u8; 16]>::try_from(value)
        .map_err(|_| CoreError::invalid("uuid", format!("expected 16 bytes, got {}", value.len())))
}

/// Many byte strings copied into one contiguous buffer: one allocation for the bytes
/// and one for the offsets, instead of one per string. Used to copy batch input out of
/// Python objects before the GIL is released.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedBytes {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl PackedBytes {
    /// An empty buffer with room for `items` strings of `bytes` total length.
    pub fn with_capacity(items: usize, bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(items),
        }
    }

    /// Append one string.
    #[inline]
    pub fn push(&mut self, item: &[u8]) {
        self.buf.extend_from_slice(item);
        self.ends.push(self.buf.len());
    }

    /// Number of strings.
    #[inline]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no string was pushed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The strings, in push order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let item = self.buf.get(start..end).unwrap_or_default();
            start = end;
            item
        })
    }

    /// Redis Cluster slot of every string.
    pub fn key_slots(&self) -> Vec<u16> {
        self.iter().map(key_slot).collect()
    }
}

impl<'a> FromIterator<&'a [u8]> for PackedBytes {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> Self {
        let mut packed = Self::default();
        for item in iter {
            packed.push(item);
        }
        packed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_combines_hash_and_interval() {
        let r = ShardRouter::new(32).unwrap();
        assert_eq!(r.shard_count(), 32);
        for v in [-5i64, 0, 1, 42, 1 << 40, i64::MIN, i64::MAX] {
            let (lo, hi) = r.intervals()[r.shard_for_int8(v) as usize];
            let h = hashint8(v);
            assert!(lo <= h && h <= hi, "v={v}");
        }
        assert_eq!(r.shard_for_int4(7), r.shard_for_int8(7));
        assert_eq!(r.shard_for_text("abc"), r.shard_for_hash(hashtext("abc")));
    }

    #[test]
    fn uuid_length_is_checked() {
        let r = ShardRouter::new(8).unwrap();
        assert!(matches!(
            r.shard_for_uuid_slice(&[0u8; 15]),
            Err(CoreError::InvalidArgument { .. })
        ));
        assert_eq!(
            r.shard_for_uuid_slice(&[7u8; 16]).unwrap(),
            r.shard_for_uuid(&[7u8; 16])
        );
    }

    #[test]
    fn batches_match_singles() {
        let r = ShardRouter::new(12).unwrap();
        let ints: Vec<i64> = (-500..500).map(|i| i * 7_919).collect();
        let singles: Vec<u32> = ints.iter().map(|&v| r.shard_for_int8(v)).collect();
        assert_eq!(r.shards_for_int8(&ints), singles);

        let texts: Vec<String> = (0..300).map(|i| format!("user-{i}")).collect();
        let packed: PackedBytes = texts.iter().map(|s| s.as_bytes()).collect();
        assert_eq!(packed.len(), 300);
        let singles: Vec<u32> = texts.iter().map(|s| r.shard_for_text(s)).collect();
        assert_eq!(r.shards_for_packed(&packed), singles);
        let slots: Vec<u16> = texts.iter().map(|s| key_slot(s.as_bytes())).collect();
        assert_eq!(packed.key_slots(), slots);
    }

    #[test]
    fn packed_handles_empty_strings() {
        let packed: PackedBytes = [&b""[..], b"a", b"", b"bc"].into_iter().collect();
        let items: Vec<&[u8]> = packed.iter().collect();
        assert_eq!(items, vec![&b""[..], b"a", b"", b"bc"]);
        assert!(PackedBytes::default().is_empty());
    }
}
