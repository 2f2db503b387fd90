//! The JOSE header and the claims of a buyer token, decoded from JSON.
//!
//! Decoding follows the Python reference (`tests/token_reference.py`, msgspec):
//!
//! - the document is one JSON object (RFC 8259; surrounding JSON whitespace allowed);
//! - members other than the ones below are skipped, but must still be valid JSON;
//! - a member that appears twice takes its last value (serde's derive would reject it);
//! - header: `alg` (string, required), `typ` (string or null);
//! - claims: `sub` (string, required), `exp` (number, required), `iat` (number,
//!   required), `iss` (string or null), `nbf` (number or null), `roles` (any JSON value;
//!   see [`Roles`]). Numbers are JSON integers or floats, not booleans.
//!
//! Strings are borrowed from the input when they contain no escapes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

/// A JSON number claim (`exp`, `nbf`), compared exactly with an `f64` clock like Python
/// compares `int` and `float`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NumericDate {
    /// A JSON integer that fits `i64` (negative ones).
    Int(i64),
    /// A JSON integer that fits `u64`.
    UInt(u64),
    /// A JSON float, or an integer too large for 64 bits (parsed as the nearest float).
    Float(f64),
}

impl NumericDate {
    fn as_int(self) -> Option<i128> {
        match self {
            Self::Int(i) => Some(i128::from(i)),
            Self::UInt(u) => Some(i128::from(u)),
            Self::Float(_) => None,
        }
    }

    /// `now >= self`, exactly (false when `now` is NaN).
    #[inline]
    pub fn is_reached_at(self, now: f64) -> bool {
        match self.as_int() {
            None => matches!(self, Self::Float(x) if now >= x),
            // For an integer n: now >= n <=> floor(now) >= n. `as` saturates, which keeps
            // the comparison right for infinities and huge values; NaN is never >= .
            Some(n) => !now.is_nan() && (now.floor() as i128) >= n,
        }
    }

    /// `now < self`, exactly (false when `now` is NaN).
    #[inline]
    pub fn is_after(self, now: f64) -> bool {
        !now.is_nan() && !self.is_reached_at(now)
    }

    /// The value as a float, rounded to nearest like Python's `float(int)`.
    #[inline]
    pub fn as_f64(self) -> f64 {
        match self {
            Self::Int(i) => i as f64,
            Self::UInt(u) => u as f64,
            Self::Float(x) => x,
        }
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                Ok(NumericDate::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate::UInt(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                Ok(NumericDate::Float(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Str<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The member names we read; anything else is skipped.
enum Field {
    Alg,
    Typ,
    Sub,
    Exp,
    Iss,
    Nbf,
    Iat,
    Roles,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Field, E> {
                Ok(match v {
                    b"alg" => Field::Alg,
                    b"typ" => Field::Typ,
                    b"sub" => Field::Sub,
                    b"exp" => Field::Exp,
                    b"iss" => Field::Iss,
                    b"nbf" => Field::Nbf,
                    b"iat" => Field::Iat,
                    b"roles" => Field::Roles,
                    _ => Field::Other,
                })
            }
        }
        // As bytes: like msgspec, names are matched without UTF-8 validation (so an
        // unknown name with invalid UTF-8 is skipped, not an error).
        d.deserialize_bytes(V)
    }
}

/// The JOSE header: only `alg` matters (`typ` is checked to be a string or null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// The signing algorithm.
    pub alg: Cow<'a, str>,
}

impl<'de> Deserialize<'de> for Header<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Header<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JOSE header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header<'de>, A::Error> {
                let mut alg = None;
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Alg => alg = Some(map.next_value::<Str<'de>>()?.0),
                        Field::Typ => {
                            map.next_value::<Option<Str<'de>>>()?;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Header {
                    alg: alg.ok_or_else(|| de::Error::missing_field("alg"))?,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// The claims a buyer token must or may carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims<'a> {
    /// Subject: the user id, as a decimal string.
    pub sub: Cow<'a, str>,
    /// Expiry (seconds since the epoch).
    pub exp: NumericDate,
    /// Issuer.
    pub iss: Option<Cow<'a, str>>,
    /// Not before (seconds since the epoch).
    pub nbf: Option<NumericDate>,
    /// Issued at (seconds since the epoch).
    pub iat: NumericDate,
    /// The `roles` claim; [`Roles::Bits`] of 0 when absent.
    pub roles: Roles,
}

impl<'de> Deserialize<'de> for Claims<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Claims<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JWT claims object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims<'de>, A::Error> {
                let (mut sub, mut exp, mut iss, mut nbf) = (None, None, None, None);
                let (mut iat, mut roles) = (None, Roles::Bits(0));
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Sub => sub = Some(map.next_value::<Str<'de>>()?.0),
                        Field::Exp => exp = Some(map.next_value::<NumericDate>()?),
                        Field::Iss => iss = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0),
                        Field::Nbf => nbf = map.next_value::<Option<NumericDate>>()?,
                        Field::Iat => iat = Some(map.next_value::<NumericDate>()?),
                        Field::Roles => roles = map.next_value::<Roles>()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Claims {
                    sub: sub.ok_or_else(|| de::Error::missing_field("sub"))?,
                    exp: exp.ok_or_else(|| de::Error::missing_field("exp"))?,
                    iss,
                    nbf,
                    iat: iat.ok_or_else(|| de::Error::missing_field("iat"))?,
                    roles,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// Role bit of `customer`.
pub const ROLE_CUSTOMER: u8 = 1;
/// Role bit of `seller`.
pub const ROLE_SELLER: u8 = 2;
/// Role bit of `admin`.
pub const ROLE_ADMIN: u8 = 4;

/// The bit of a role name; unknown names have none (a newer issuer may add roles this
/// verifier does not know: they grant nothing here).
pub fn role_bit(name: &str) -> u8 {
    match name {
        "customer" => ROLE_CUSTOMER,
        "seller" => ROLE_SELLER,
        "admin" => ROLE_ADMIN,
        _ => 0,
    }
}

/// The `roles` claim: an array of strings gives the OR of their bits; any other JSON
/// value (null included) is [`Roles::Bad`], reported after the signature and the other
/// claims are checked ("bad roles"), not as malformed claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roles {
    /// An array of strings (or no claim: 0).
    Bits(u8),
    /// Not an array of strings.
    Bad,
}

/// One element of the `roles` array: a role bit, or not a string.
struct RoleElem(Option<u8>);

/// Any JSON value, read in full like msgspec decodes `Any` (numbers range-checked,
/// strings UTF-8-checked, at any depth), unlike [`IgnoredAny`], which only checks syntax:
/// the reference reads the whole `roles` value.
struct Checked;

/// A visitor of any JSON value: `Some(f(s))` for a string `s`, else None.
struct AnyValue<F>(F);

impl<'de, T, F: FnOnce(&str) -> T> Visitor<'de> for AnyValue<F> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<T>, E> {
        Ok(Some((self.0)(v)))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(None)
    }
}

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyValue(|_: &str| ())).map(|_| Checked)
    }
}

impl<'de> Deserialize<'de> for RoleElem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyValue(role_bit)).map(RoleElem)
    }
}

impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Roles;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Roles, A::Error> {
                let mut roles = Roles::Bits(0);
                // every element is consumed (the document must still be valid JSON)
                while let Some(RoleElem(bit)) = seq.next_element()? {
                    roles = match (roles, bit) {
                        (Roles::Bits(bits), Some(bit)) => Roles::Bits(bits | bit),
                        _ => Roles::Bad,
                    };
                }
                Ok(roles)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Roles, E> {
                Ok(Roles::Bad)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Roles, E> {
                Ok(Roles::Bad)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Roles, E> {
                Ok(Roles::Bad)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Roles, E> {
                Ok(Roles::Bad)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Roles, E> {
                Ok(Roles::Bad)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Roles, E> {
                Ok(Roles::Bad)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Roles, A::Error> {
                while map.next_entry::<Checked, Checked>()?.is_some() {}
                Ok(Roles::Bad)
            }
        }
        d.deserialize_any(V)
    }
}

/// Why a header or claims document was rejected.
#[derive(Debug)]
pub enum ParseError {
    /// Not valid JSON, or not the expected object.
    Json(serde_json::Error),
    /// A string with a raw control character, or a `\u` escape that is a lone UTF-16
    /// surrogate (see [`strings_well_formed`]).
    BadString,
}

/// Parse a header from its decoded JSON bytes.
pub fn parse_header(json: &[u8]) -> Result<Header<'_>, ParseError> {
    parse(json)
}

/// Parse claims from their decoded JSON bytes.
pub fn parse_claims(json: &[u8]) -> Result<Claims<'_>, ParseError> {
    parse(json)
}

fn parse<'a, T: Deserialize<'a>>(json: &'a [u8]) -> Result<T, ParseError> {
    if !strings_well_formed(json) {
        return Err(ParseError::BadString);
    }
    serde_json::from_slice(json).map_err(ParseError::Json)
}

fn hex4(b: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(b.get(..4)?).ok()?;
    if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(s, 16).ok()
}

/// Whether no string in the document has a raw control character or a `\u` escape of
/// a lone UTF-16 surrogate.
///
/// serde_json checks both only in the strings it decodes as text, and member names are
/// decoded here as bytes (like msgspec does); msgspec (the reference) checks them in every
/// string, names and skipped members included. The scan tracks string boundaries, which
/// is exact for valid JSON; for invalid JSON the answer does not matter, as the parse
/// fails anyway.
pub fn strings_well_formed(json: &[u8]) -> bool {
    // Compact JSON without escapes (the usual token) needs no scan.
    if json.iter().all(|&b| b >= 0x20 && b != b'\\') {
        return true;
    }
    let mut in_string = false;
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        if !in_string {
            in_string = b == b'"';
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = false;
                i += 1;
            }
            0..0x20 => return false,
            b'\\' if json.get(i + 1) == Some(&b'u') => match json.get(i + 2..).and_then(hex4) {
                Some(0xD800..=0xDBFF) => {
                    let low = json
                        .get(i + 6..i + 8)
                        .filter(|esc| *esc == b"\\u")
                        .and_then(|_| json.get(i + 8..))
                        .and_then(hex4);
                    if !matches!(low, Some(0xDC00..=0xDFFF)) {
                        return false;
                    }
                    i += 12;
                }
                Some(0xDC00..=0xDFFF) | None => return false,
                Some(_) => i += 6,
            },
            b'\\' => i += 2, // a one-character escape (validated by the parser)
            _ => i += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Option<Claims<'_>> {
        parse_claims(json.as_bytes()).ok()
    }

    fn header(json: &str) -> Option<String> {
        parse_header(json.as_bytes())
            .ok()
            .map(|h| h.alg.into_owned())
    }

    #[test]
    fn header_alg_and_typ() {
        assert_eq!(
            header(r#"{"alg":"HS256","typ":"JWT"}"#).as_deref(),
            Some("HS256")
        );
        assert_eq!(
            header(r#"{"typ":null,"alg":"none"}"#).as_deref(),
            Some("none")
        );
        assert_eq!(
            header(r#" {"alg":"HS\u0032\u00356"} "#).as_deref(),
            Some("HS256")
        );
        assert_eq!(header(r#"{"typ":"JWT"}"#), None);
        assert_eq!(header(r#"{"alg":null}"#), None);
        assert_eq!(header(r#"{"alg":256}"#), None);
        assert_eq!(header(r#"{"alg":"HS256","typ":1}"#), None);
        assert_eq!(header(r#"["HS256"]"#), None);
        assert_eq!(header(""), None);
    }

    #[test]
    fn last_duplicate_wins_like_msgspec() {
        assert_eq!(
            header(r#"{"alg":"none","alg":"HS256"}"#).as_deref(),
            Some("HS256")
        );
        let c = claims(r#"{"sub":"1","iat":0,"exp":1,"iat":0,"exp":2,"\u0073ub":"2"}"#).unwrap();
        assert_eq!((c.sub.as_ref(), c.exp), ("2", NumericDate::UInt(2)));
        // A bad first value is still an error.
        assert_eq!(header(r#"{"alg":1,"alg":"HS256"}"#), None);
    }

    #[test]
    fn claims_required_optional_and_extra() {
        let c = claims(r#"{"sub":"42","iat":0,"exp":1700000000,"iat":1,"x":{"y":[1,2.5e999]}}"#);
        // 2.5e999 is out of range but skipped members are only checked for syntax.
        let c = c.unwrap();
        assert_eq!(c.sub, "42");
        assert_eq!(c.exp, NumericDate::UInt(1_700_000_000));
        assert_eq!((c.iss, c.nbf), (None, None));
        let c = claims(r#"{"sub":"1","iat":0,"exp":-5,"nbf":1.5,"iss":null}"#).unwrap();
        assert_eq!((c.iat, c.roles), (NumericDate::UInt(0), Roles::Bits(0)));
        assert!(
            claims(r#"{"sub":"1","exp":1}"#).is_none(),
            "iat is required"
        );
        let c = claims(r#"{"sub":"1","iat":2.5,"exp":1,"roles":["admin","seller","x"]}"#);
        let c = c.unwrap();
        assert_eq!(c.iat, NumericDate::Float(2.5));
        assert_eq!(c.roles, Roles::Bits(ROLE_ADMIN | ROLE_SELLER));
        let c = claims(r#"{"sub":"1","iat":2,"exp":1,"roles":[1,{"a":[null]}]}"#);
        assert_eq!(c.unwrap().roles, Roles::Bad);
        let c = claims(r#"{"sub":"1","iat":0,"exp":-5,"nbf":1.5,"iss":null}"#).unwrap();
        assert_eq!(c.exp, NumericDate::Int(-5));
        assert_eq!(c.nbf, Some(NumericDate::Float(1.5)));
        assert_eq!(c.iss, None);
        assert!(
            claims(r#"{"sub":"1","iat":0,"exp":1,"iss":"nexuscart"}"#)
                .unwrap()
                .iss
                == Some("nexuscart".into())
        );
        for bad in [
            r#"{"iat":0,"exp":1}"#,
            r#"{"sub":"1"}"#,
            r#"{"sub":1,"iat":0,"exp":1}"#,
            r#"{"sub":"1","iat":0,"exp":"1"}"#,
            r#"{"sub":"1","iat":0,"exp":true}"#,
            r#"{"sub":"1","iat":0,"exp":null}"#,
            r#"{"sub":"1","iat":0,"exp":1e400}"#,
            r#"{"sub":"1","iat":0,"exp":01}"#,
            r#"{"sub":"1","iat":0,"exp":1.}"#,
            r#"{"sub":"1","iat":0,"exp":NaN}"#,
            r#"{"sub":"1","iat":0,"exp":1,"iss":2}"#,
            r#"{"sub":"1","iat":0,"exp":1,"nbf":"2"}"#,
            r#"{"sub":"1","iat":0,"exp":1,}"#,
            r#"{"sub":"1","iat":0,"exp":1} x"#,
            "{\"sub\":\"1\",\"exp\":1}\x0c",
            "\u{feff}{\"sub\":\"1\",\"exp\":1}",
        ] {
            assert!(claims(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn skipped_members_must_still_be_valid_json() {
        for bad in [
            r#"{"sub":"1","iat":0,"exp":1,"x":"\ud800"}"#,
            r#"{"sub":"1","iat":0,"exp":1,"x":"\udc00"}"#,
            r#"{"sub":"1","iat":0,"exp":1,"x":"\ud800\u0041"}"#,
            "{\"sub\":\"1\",\"exp\":1,\"x\":\"\x01\"}",
            r#"{"sub":"1","iat":0,"exp":1,"x":[1,]}"#,
            r#"{"sub":"1","iat":0,"exp":1,"x":tru}"#,
        ] {
            assert!(claims(bad).is_none(), "{bad}");
        }
        assert!(claims(r#"{"sub":"1","iat":0,"exp":1,"x":"\ud83d\ude00"}"#).is_some());
        assert!(claims(r#"{"sub":"1","iat":0,"exp":1,"x":"\uDBFF\uDFFF\\ud800"}"#).is_some());
        for bad in [
            r#"{"sub":"1","iat":0,"exp":1,"x":"\ud800\ud800"}"#,
            r#"{"sub":"1","iat":0,"exp":1,"x":"\udc00\ud800"}"#,
            r#"{"sub":"1","iat":0,"exp":1,"x":"\ud800x"}"#,
            r#"{"sub":"1","iat":0,"exp":1,"x":{"\ud800":1}}"#,
            r#"{"\ud800":1,"sub":"1","iat":0,"exp":1}"#,
            r#"{"sub":"\ud800","iat":0,"exp":1}"#,
            r#"{"sub":"1","iat":0,"exp":1,"x":"\ud8"}"#,
        ] {
            assert!(claims(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn utf8_is_checked_only_in_values_read_like_msgspec() {
        let with = |head: &[u8], tail: &[u8]| [head, tail].concat();
        // Skipped strings and member names: not validated (msgspec skips them as bytes).
        assert!(parse_claims(&with(br#"{"sub":"1","iat":0,"exp":1,"x":""#, b"\xff\"}")).is_ok());
        assert!(
            parse_claims(&with(
                b"{\"\xed\xa0\x80\":1,",
                br#""sub":"1","iat":0,"exp":1}"#
            ))
            .is_ok()
        );
        assert!(parse_header(&with(b"{\"\xff\":[\"\xc0\x80\"],", br#""alg":"x"}"#)).is_ok());
        // Strings that are read: validated.
        assert!(parse_claims(&with(br#"{"iat":0,"exp":1,"sub":""#, b"1\xff\"}")).is_err());
        assert!(parse_header(&with(br#"{"alg":""#, b"HS256\xff\"}")).is_err());
        assert!(parse_header(&with(br#"{"alg":"a","typ":""#, b"\xff\"}")).is_err());
        // Raw control characters: rejected in every string, names included.
        assert!(parse_header(b"{\"t\x01p\":\"JWT\",\"alg\":\"HS256\"}").is_err());
        assert!(parse_header(b"{\"alg\":\"HS256\",\"x\":\"\t\"}").is_err());
        assert!(parse_header(b"{\"alg\":\"HS256\",\"x\\u0001\":\"\\t\"}").is_ok());
        assert!(parse_header(b"{\n\t\"alg\" :\r\n\"HS256\"}").is_ok());
        // Escaped names still match.
        assert_eq!(header(r#"{"al\u0067":"HS256"}"#).as_deref(), Some("HS256"));
    }

    #[test]
    fn numbers() {
        let exp = |json: &str| claims(json).map(|c| c.exp);
        assert_eq!(
            exp(r#"{"sub":"1","iat":0,"exp":1e3}"#),
            Some(NumericDate::Float(1000.0))
        );
        assert_eq!(
            exp(r#"{"sub":"1","iat":0,"exp":18446744073709551615}"#),
            Some(NumericDate::UInt(u64::MAX))
        );
        assert_eq!(
            exp(r#"{"sub":"1","iat":0,"exp":-9223372036854775808}"#),
            Some(NumericDate::Int(i64::MIN))
        );
        assert_eq!(
            exp(r#"{"sub":"1","iat":0,"exp":18446744073709551616}"#),
            Some(NumericDate::Float(18446744073709551616.0))
        );
        assert_eq!(
            exp(r#"{"sub":"1","iat":0,"exp":2.5e-400}"#),
            Some(NumericDate::Float(0.0))
        );
    }

    #[test]
    fn exact_comparisons() {
        let big = NumericDate::UInt(9_007_199_254_740_993); // 2^53 + 1, not a float
        let below = 9_007_199_254_740_992.0; // 2^53
        assert!(!big.is_reached_at(below));
        assert!(big.is_after(below));
        assert!(big.is_reached_at(9_007_199_254_740_994.0));
        let n = NumericDate::Int(10);
        assert!(n.is_reached_at(10.0) && !n.is_after(10.0));
        assert!(!n.is_reached_at(9.999) && n.is_after(9.999));
        assert!(n.is_reached_at(f64::INFINITY) && !n.is_reached_at(f64::NEG_INFINITY));
        assert!(!n.is_reached_at(f64::NAN) && !n.is_after(f64::NAN));
        let f = NumericDate::Float(10.5);
        assert!(f.is_reached_at(10.5) && !f.is_reached_at(10.4));
        assert!(!f.is_reached_at(f64::NAN) && !f.is_after(f64::NAN));
        assert_eq!(NumericDate::UInt(u64::MAX).as_f64(), 18446744073709551616.0);
    }
}
