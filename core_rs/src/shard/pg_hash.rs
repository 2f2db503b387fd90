//! PostgreSQL's built-in hash functions, bit-exact.
//!
//! Followed sources (PostgreSQL master):
//! - `src/common/hashfn.c`: `hash_bytes` (Bob Jenkins' lookup3 `hashlittle`, PostgreSQL
//!   variant: the tail of the key is added so that "the lowest byte of c is reserved for
//!   the length") and `hash_bytes_uint32`. We implement the little-endian code path; on a
//!   little-endian machine PostgreSQL's aligned (word fetch) and unaligned (byte fetch)
//!   paths compute the same value, and so do we, on any host.
//! - `src/backend/access/hash/hashfunc.c`: `hashint4`, `hashint8`, `hashtext`
//!   (deterministic collations hash the raw bytes with `hash_any`).
//! - `src/backend/utils/adt/uuid.c`: `uuid_hash` = `hash_any(uuid->data, 16)`.
//!
//! PostgreSQL returns these hashes as `int4` (the `uint32` bit pattern reinterpreted),
//! and Citus compares that signed value against shard ranges, so the public functions
//! here return `i32`.

/// PostgreSQL's `rot(x, k)`.
#[inline(always)]
const fn rot(x: u32, k: u32) -> u32 {
    x.rotate_left(k)
}

/// `mix(a, b, c)` from hashfn.c.
#[inline(always)]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= rot(*c, 4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= rot(*a, 6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= rot(*b, 8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= rot(*c, 16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= rot(*a, 19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= rot(*b, 4);
    *b = b.wrapping_add(*a);
}

/// `final(a, b, c)` from hashfn.c; the result is left in `c`.
#[inline(always)]
fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(rot(*b, 14));
    *a ^= *c;
    *a = a.wrapping_sub(rot(*c, 11));
    *b ^= *a;
    *b = b.wrapping_sub(rot(*a, 25));
    *c ^= *b;
    *c = c.wrapping_sub(rot(*b, 16));
    *a ^= *c;
    *a = a.wrapping_sub(rot(*c, 4));
    *b ^= *a;
    *b = b.wrapping_sub(rot(*a, 14));
    *c ^= *b;
    *c = c.wrapping_sub(rot(*b, 24));
}

/// Little-endian load of up to 4 bytes (missing high bytes count as zero), which is
/// what the fall-through `switch` in hashfn.c adds for a partial word.
#[inline(always)]
fn le_partial(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .rev()
        .fold(0u32, |acc, &byte| (acc << 8) | u32::from(byte))
}

/// `hash_bytes(k, keylen)` (a.k.a. `hash_any`): the unsigned 32-bit Jenkins hash.
///
/// PostgreSQL's `keylen` is an `int`; values never exceed 1 GB there. Longer Rust slices
/// hash with the length truncated to 32 bits, exactly as a `uint32 len` would.
pub fn hash_bytes(key: &[u8]) -> u32 {
    // `len` is a uint32 in C; truncation is the specified behaviour.
    #[allow(clippy::cast_possible_truncation)]
    let len = key.len() as u32;
    let init = 0x9e37_79b9_u32.wrapping_add(len).wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (init, init, init);

    let mut blocks = key.chunks_exact(12);
    for block in &mut blocks {
        let (w0, rest) = block.split_at(4);
        let (w1, w2) = rest.split_at(4);
        a = a.wrapping_add(le_partial(w0));
        b = b.wrapping_add(le_partial(w1));
        c = c.wrapping_add(le_partial(w2));
        mix(&mut a, &mut b, &mut c);
    }

    // The last 0..=11 bytes: bytes 0..4 go to `a`, 4..8 to `b`, and 8..11 to `c`
    // shifted up by one byte ("the lowest byte of c is reserved for the length").
    let tail = blocks.remainder();
    let (ta, rest) = tail.split_at(tail.len().min(4));
    let (tb, tc) = rest.split_at(rest.len().min(4));
    a = a.wrapping_add(le_partial(ta));
    b = b.wrapping_add(le_partial(tb));
    c = c.wrapping_add(le_partial(tc) << 8);

    final_mix(&mut a, &mut b, &mut c);
    c
}

/// `hash_bytes_uint32(k)` (a.k.a. `hash_uint32`): same value as `hash_bytes` of the four
/// little-endian bytes of `k`.
#[inline]
pub fn hash_uint32(k: u32) -> u32 {
    let init = 0x9e37_79b9_u32.wrapping_add(4).wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (init.wrapping_add(k), init, init);
    final_mix(&mut a, &mut b, &mut c);
    c
}

/// Reinterpret PostgreSQL's `uint32` hash as the `int4` that SQL (and Citus) sees.
#[inline(always)]
#[allow(clippy::cast_possible_wrap)]
const fn as_int4(h: u32) -> i32 {
    h as i32
}

/// `hashint4(int4)`.
#[inline]
#[allow(clippy::cast_sign_loss)]
pub fn hashint4(value: i32) -> i32 {
    as_int4(hash_uint32(value as u32))
}

/// `hashint8(int8)`: folds the high half into the low half so that logically equal
/// int2/int4/int8 values hash alike: `lohalf ^= (val >= 0) ? hihalf : ~hihalf`.
#[inline]
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn hashint8(value: i64) -> i32 {
    let lohalf = value as u32;
    let hihalf = (value >> 32) as u32;
    let folded = lohalf ^ if value >= 0 { hihalf } else { !hihalf };
    as_int4(hash_uint32(folded))
}

/// `hashtext(text)` under a deterministic collation (the default, and what Citus
/// distribution columns use): `hash_any` of the string's bytes in the database encoding.
/// We assume a UTF-8 database.
#[inline]
pub fn hashtext(value: &str) -> i32 {
    as_int4(hash_bytes(value.as_bytes()))
}

/// `hashvarlena` / `hashbytea`: `hash_any` of the raw bytes, as `int4`.
#[inline]
pub fn hashbytes(value: &[u8]) -> i32 {
    as_int4(hash_bytes(value))
}

/// `uuid_hash(uuid)`: `hash_any` of the 16 bytes in network (RFC 4122) order, which is
/// how PostgreSQL stores a uuid and how Python's `uuid.UUID.bytes` lays it out.
#[inline]
pub fn uuid_hash(value: &[u8; 16]) -> i32 {
    as_int4(hash_bytes(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values observed from PostgreSQL 15 (`SELECT hashint4(0)` etc.); many more are
    /// checked in `tests/vectors.rs`.
    #[test]
    fn known_vectors_from_postgres() {
        assert_eq!(hashint4(0), -272_711_505);
        assert_eq!(hashint4(1), -1_905_060_026);
        assert_eq!(hashint4(-1), 385_747_274);
        assert_eq!(hashint4(i32::MIN), -1_524_351_049);
        assert_eq!(hashint8(0), -272_711_505);
        assert_eq!(hashint8(1), -1_905_060_026);
        assert_eq!(hashint8(i64::MAX), -1_524_351_049);
        assert_eq!(hashtext(""), -1_477_818_771);
    }

    #[test]
    fn hash_uint32_matches_hash_bytes_of_le_word() {
        for k in [0u32, 1, 2, 255, 256, 0xdead_beef, u32::MAX, 0x8000_0000] {
            assert_eq!(hash_uint32(k), hash_bytes(&k.to_le_bytes()), "k={k}");
        }
    }

    #[test]
    fn hashint8_agrees_with_hashint4_in_int4_range() {
        // PostgreSQL guarantees this for cross-type hash joins.
        for v in [0i32, 1, -1, 42, -42, i32::MAX, i32::MIN, 123_456_789] {
            assert_eq!(hashint8(i64::from(v)), hashint4(v), "v={v}");
        }
    }

    #[test]
    fn hashint8_folds_high_half() {
        // 2^32 folds to lohalf 0 ^ hihalf 1 = 1, so it collides with 1 by design.
        assert_eq!(hashint8(1 << 32), hashint4(1));
        // -2^32: lohalf 0, hihalf 0xFFFF_FFFF, negative => ~hihalf = 0.
        assert_eq!(hashint8(-(1 << 32)), hashint4(0));
    }

    #[test]
    fn every_tail_length_is_distinct_and_stable() {
        let data: Vec<u8> = (0u8..40).collect();
        let mut seen = std::collections::HashSet::new();
        for n in 0..=data.len() {
            let h = hash_bytes(data.get(..n).unwrap_or_default());
            assert!(seen.insert(h), "collision at len {n}");
        }
    }

    #[test]
    fn uuid_hash_is_hash_bytes() {
        let u = [0x12u8; 16];
        assert_eq!(uuid_hash(&u), hashbytes(&u));
    }
}
