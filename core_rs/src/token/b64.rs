//! Strict base64url without padding (RFC 7515 §2, RFC 4648 §5).
//!
//! Only the canonical encoding of a byte string is accepted: the alphabet
//! `A-Z a-z 0-9 - _`, no `=` padding, no whitespace, a length that is not 1 more than a
//! multiple of 4, and zero bits in the unused low bits of the last character. So every
//! byte string has exactly one accepted encoding (no malleable signatures).

/// Why a segment is not canonical base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

const INVALID: u8 = 0xFF;
/// Bits set in [`INVALID`] and in no valid sextet (0..=63).
const INVALID_BITS: u32 = 0xC0;

/// Value of each ASCII byte in the base64url alphabet, [`INVALID`] for everything else.
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Number of bytes `encoded_len` base64url characters decode to, if that length is
/// possible at all.
#[inline]
pub fn decoded_len(encoded_len: usize) -> Result<usize, DecodeError> {
    match encoded_len % 4 {
        1 => Err(DecodeError),
        0 => Ok(encoded_len / 4 * 3),
        rem => Ok(encoded_len / 4 * 3 + rem - 1),
    }
}

/// Decode `seg` into `out`, which must be exactly [`decoded_len`] bytes long.
///
/// Branch-free per character: invalid characters map to 0xFF; valid ones are below 64,
/// so OR-ing everything into `seen` and checking it once at the end finds any invalid
/// character.
pub fn decode_to_slice(seg: &[u8], out: &mut [u8]) -> Result<(), DecodeError> {
    if decoded_len(seg.len()) != Ok(out.len()) {
        return Err(DecodeError);
    }
    let sextet = |c: u8| u32::from(DECODE[usize::from(c)]);
    let mut seen = 0u32;
    let mut quads = seg.chunks_exact(4);
    let mut triples = out.chunks_exact_mut(3);
    for (quad, triple) in quads.by_ref().zip(triples.by_ref()) {
        let (a, b, c, d) = (
            sextet(quad[0]),
            sextet(quad[1]),
            sextet(quad[2]),
            sextet(quad[3]),
        );
        seen |= a | b | c | d;
        let n = a << 18 | b << 12 | c << 6 | d;
        triple.copy_from_slice(&n.to_be_bytes()[1..]);
    }
    let tail = triples.into_remainder();
    match *quads.remainder() {
        [] => {}
        [a, b] => {
            let (a, b) = (sextet(a), sextet(b));
            // The 4 unused low bits must be zero.
            seen |= a | b | if b & 0x0F == 0 { 0 } else { INVALID_BITS };
            tail[0] = (a << 2 | b >> 4) as u8;
        }
        [a, b, c] => {
            let (a, b, c) = (sextet(a), sextet(b), sextet(c));
            // The 2 unused low bits must be zero.
            seen |= a | b | c | if c & 0x03 == 0 { 0 } else { INVALID_BITS };
            let n = a << 18 | b << 12 | c << 6;
            tail.copy_from_slice(&n.to_be_bytes()[1..3]);
        }
        _ => return Err(DecodeError),
    }
    if seen & INVALID_BITS == 0 {
        Ok(())
    } else {
        Err(DecodeError)
    }
}

/// Decode `seg`, appending the bytes to `out` (which is unchanged on error).
pub fn decode_into(seg: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let start = out.len();
    out.resize(start + decoded_len(seg.len())?, 0);
    let result = decode_to_slice(seg, &mut out[start..]);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Decode `seg` into a new buffer.
pub fn decode(seg: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    decode_into(seg, &mut out)?;
    Ok(out)
}

/// Encode `raw` (for tests and for minting tokens in Rust tests and benches).
pub fn encode(raw: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(raw.len().div_ceil(3) * 4);
    for chunk in raw.chunks(3) {
        let mut buf = [0u8; 3];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from(buf[0]) << 16 | u32::from(buf[1]) << 8 | u32::from(buf[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors_without_padding() {
        let cases: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"fooba", "Zm9vYmE"),
            (b"foobar", "Zm9vYmFy"),
        ];
        for (raw, enc) in cases {
            assert_eq!(encode(raw), enc);
            assert_eq!(decode(enc.as_bytes()).as_deref(), Ok(raw));
        }
    }

    #[test]
    fn url_safe_alphabet() {
        assert_eq!(encode(&[0xFB, 0xFF, 0xBF]), "-_-_");
        assert_eq!(decode(b"-_-_"), Ok(vec![0xFB, 0xFF, 0xBF]));
    }

    #[test]
    fn round_trips_every_length_and_byte() {
        let raw: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for len in 0..raw.len() {
            let enc = encode(&raw[..len]);
            assert_eq!(decode(enc.as_bytes()).as_deref(), Ok(&raw[..len]), "{len}");
        }
    }

    #[test]
    fn rejects_non_canonical_input() {
        for bad in [
            "Z",         // length 1 mod 4
            "Zm9vY",     // length 1 mod 4
            "Zg==",      // padding
            "Zm8=",      // padding
            "Zh",        // non-zero unused bits (4 low bits of 'h')
            "Zm9",       // non-zero unused bits (2 low bits of '9')
            "Zm+v",      // standard alphabet
            "Zm/v",      // standard alphabet
            "Zm9 v",     // whitespace
            "Zm9v\n",    // whitespace
            "Zm9\u{e9}", // non-ASCII
        ] {
            assert_eq!(decode(bad.as_bytes()), Err(DecodeError), "{bad:?}");
        }
    }

    /// Decoding accepts exactly the strings that are the encoding of what they decode to.
    fn canonical(s: &[u8]) -> bool {
        decode(s).is_ok_and(|raw| encode(&raw).as_bytes() == s)
    }

    #[test]
    fn short_strings_exhaustively() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let s = [a, b];
                let valid = s.iter().all(|&c| DECODE[usize::from(c)] != INVALID)
                    && DECODE[usize::from(b)] & 0x0F == 0;
                assert_eq!(decode(&s).is_ok(), valid, "{s:?}");
                assert_eq!(canonical(&s), valid, "{s:?}");
            }
        }
        let chars: Vec<u8> =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .\0\xff".to_vec();
        for &a in &chars {
            for &b in &chars {
                for &c in &chars {
                    let s = [a, b, c];
                    assert_eq!(decode(&s).is_ok(), canonical(&s), "{s:?}");
                    for pos in 0..4 {
                        let mut q = [b'Q'; 4];
                        q[pos] = a;
                        q[(pos + 1) % 4] = b;
                        assert_eq!(decode(&q).is_ok(), canonical(&q), "{q:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn decode_into_leaves_the_buffer_on_error() {
        let mut out = b"keep".to_vec();
        assert_eq!(decode_into(b"Zm9v", &mut out), Ok(()));
        assert_eq!(out, b"keepfoo");
        assert_eq!(decode_into(b"Zm9!", &mut out), Err(DecodeError));
        assert_eq!(out, b"keepfoo");
        let mut wrong = [0u8; 2];
        assert_eq!(decode_to_slice(b"Zm9v", &mut wrong), Err(DecodeError));
    }

    #[test]
    fn decoded_len_matches() {
        for len in 0..40 {
            let enc = encode(&vec![7u8; len]);
            assert_eq!(decoded_len(enc.len()), Ok(len));
        }
    }
}
