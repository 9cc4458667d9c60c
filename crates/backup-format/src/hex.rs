//! Lower-case hex for SHA-256 digests in object names and manifests. Strict on input: exactly
//! 64 lower-case digits, so one digest has exactly one spelling (keys are compared as strings).

/// Lower-case hex of a digest.
pub(crate) fn encode32(bytes: &[u8; 32]) -> String {
    encode(bytes)
}

/// Lower-case hex of any bytes.
pub(crate) fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

/// Parses exactly 64 lower-case hex digits.
pub(crate) fn decode32(s: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// Serde for `[u8; 32]` as 64 lower-case hex digits.
pub(crate) mod serde32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode32(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        super::decode32(&s)
            .ok_or_else(|| D::Error::custom("expected a SHA-256 as 64 lower-case hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let mut d = [0u8; 32];
        for (i, b) in d.iter_mut().enumerate() {
            *b = (i * 37) as u8;
        }
        let s = encode32(&d);
        assert_eq!(s.len(), 64);
        assert_eq!(decode32(&s), Some(d));
        assert_eq!(decode32(&s.to_uppercase()), None);
        assert_eq!(decode32(&s[..62]), None);
        assert_eq!(decode32(&format!("{s}00")), None);
        assert_eq!(decode32(&s.replace('0', "g")), None);
    }
}
