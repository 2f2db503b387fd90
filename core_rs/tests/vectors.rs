//! Bit-exactness against the real servers: the vector files in `tests/data/` were
//! produced by PostgreSQL 15 (`hashint4`, `hashint8`, `hashtext`, `uuid_hash`) and by
//! Redis 7 (`CLUSTER KEYSLOT`); see `docs/shard-router.md` for how to regenerate them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use _core::shard::{hashint4, hashint8, hashtext, key_slot, uuid_hash};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn postgres_hash_functions() {
    let data = include_str!("data/pg15_hash_vectors.tsv");
    let mut counts = [0usize; 4];
    for line in data.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [kind, input, expected] = fields[..] else {
            panic!("bad line {line:?}");
        };
        let expected: i32 = expected.parse().unwrap();
        let (got, slot) = match kind {
            "int4" => (hashint4(input.parse().unwrap()), 0),
            "int8" => (hashint8(input.parse().unwrap()), 1),
            "text" => {
                let text = String::from_utf8(unhex(input)).unwrap();
                (hashtext(&text), 2)
            }
            "uuid" => {
                let bytes: [u8; 16] = unhex(input).try_into().unwrap();
                (uuid_hash(&bytes), 3)
            }
            other => panic!("unknown kind {other}"),
        };
        assert_eq!(got, expected, "{kind}({input})");
        counts[slot] += 1;
    }
    assert!(counts.iter().all(|&n| n > 100), "{counts:?}");
}

#[test]
fn redis_cluster_keyslot() {
    let data = include_str!("data/redis7_keyslot_vectors.tsv");
    let mut n = 0;
    for line in data.lines() {
        let (key, slot) = line.split_once('\t').unwrap();
        assert_eq!(
            key_slot(&unhex(key)),
            slot.parse::<u16>().unwrap(),
            "key {key}"
        );
        n += 1;
    }
    assert!(n > 300);
}
