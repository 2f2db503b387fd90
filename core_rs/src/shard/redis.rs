//! Redis Cluster key → hash slot, as `CLUSTER KEYSLOT` computes it.
//!
//! Followed: the Redis Cluster specification ("Keys distribution model" and "Hash tags")
//! and `keyHashSlot` in Redis' `src/cluster.c`: `CRC16(key) mod 16384`, with CRC16 the
//! XMODEM variant (poly 0x1021, init 0, no reflection, no final xor). If the key contains
//! a `{`, and after that first `{` a `}`, and the bytes between them are not empty, only
//! those bytes are hashed. An empty tag (`{}`) means the whole key is hashed; there is no
//! search for a later `{`.

/// Number of hash slots in a Redis Cluster.
pub const SLOT_COUNT: u16 = 16_384;

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        #[allow(clippy::cast_possible_truncation)]
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC16_TABLE: [u16; 256] = crc16_table();

/// CRC16/XMODEM of `data`.
#[inline]
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &byte| {
        let idx = usize::from((crc >> 8) as u8 ^ byte);
        // idx < 256 by construction; the table has 256 entries.
        (crc << 8) ^ CRC16_TABLE.get(idx).copied().unwrap_or(0)
    })
}

/// The part of `key` that decides its slot: the first non-empty `{...}` tag, else the key.
#[inline]
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let after = key.get(open + 1..).unwrap_or_default();
    match after.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => after.get(..close).unwrap_or(key),
        _ => key,
    }
}

/// Hash slot (0..16384) of a key.
#[inline]
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOT_COUNT - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_xmodem_check_value() {
        // The catalogue check value of CRC-16/XMODEM, also the one in Redis' crc16.c.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn known_slots() {
        // Values from `redis-cli CLUSTER KEYSLOT` (see docs/shard-router.md).
        assert_eq!(key_slot(b"foo"), 12_182);
        assert_eq!(key_slot(b"bar"), 5_061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn hash_tags() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"{user1000}.x"), key_slot(b"user1000"));
        // Only the first '{' counts, then the first '}' after it.
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        // Empty tag: the whole key is hashed, no later tag is looked for.
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        // Unclosed tag.
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
        assert_eq!(hash_tag(b"}{"), b"}{");
    }

    #[test]
    fn slots_are_in_range() {
        for i in 0..10_000u32 {
            assert!(key_slot(format!("key:{i}").as_bytes()) < SLOT_COUNT);
        }
    }
}
