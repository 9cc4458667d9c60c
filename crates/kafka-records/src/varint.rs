//! Kafka's zig-zag varints (the record v2 encoding of lengths, deltas and counts) and a
//! checked cursor over untrusted bytes. Every read is bounds-checked: a short or hostile buffer
//! is an error, never a panic.

use std::ops::Range;

/// Why a read from the cursor failed; the record decoder adds where (batch, record, field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The buffer ended: `need` bytes were wanted, `have` were left.
    Eof { need: usize, have: usize },
    /// A varint ran past 5 bytes or a varlong past 10, as Java's `ByteUtils` rejects.
    VarintTooLong,
}

/// A forward-only reader over a byte slice.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn byte(&mut self) -> Result<u8, ReadError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(ReadError::Eof { need: 1, have: 0 })?;
        self.pos += 1;
        Ok(b)
    }

    /// Claims the next `n` bytes and returns their range in the buffer, so that the caller can
    /// slice a shared buffer (zero-copy) instead of copying.
    pub(crate) fn take(&mut self, n: usize) -> Result<Range<usize>, ReadError> {
        let have = self.remaining();
        if n > have {
            return Err(ReadError::Eof { need: n, have });
        }
        let start = self.pos;
        self.pos += n;
        Ok(start..self.pos)
    }

    pub(crate) fn i8(&mut self) -> Result<i8, ReadError> {
        Ok(self.byte()? as i8)
    }

    /// A zig-zag varint of at most 5 bytes. Like Java's `ByteUtils.readVarint`, bits of the
    /// fifth byte beyond 32 are dropped rather than rejected, so that anything a Kafka broker
    /// accepted decodes here the same way.
    pub(crate) fn varint(&mut self) -> Result<i32, ReadError> {
        let raw = self.unsigned_varint(5)? as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// A zig-zag varlong of at most 10 bytes (Java's `ByteUtils.readVarlong`).
    pub(crate) fn varlong(&mut self) -> Result<i64, ReadError> {
        let raw = self.unsigned_varint(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn unsigned_varint(&mut self, max_bytes: usize) -> Result<u64, ReadError> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let b = self.byte()?;
            // Shifts stay below 64 (at most 9 * 7 = 63); high bits of the last byte fall off.
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ReadError::VarintTooLong)
    }
}

/// Appends `v` as a zig-zag varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_unsigned(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
}

/// Appends `v` as a zig-zag varlong.
pub(crate) fn put_varlong(out: &mut Vec<u8>, v: i64) {
    put_unsigned(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encoded size of `v` as a zig-zag varint.
#[cfg(test)]
pub(crate) fn varint_len(v: i32) -> usize {
    let mut z = ((v << 1) ^ (v >> 31)) as u32;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_bytes(v: i32) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    fn varlong_bytes(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varlong(&mut out, v);
        out
    }

    #[test]
    fn varint_encodings_match_kafka() {
        // Reference values from Kafka's ByteUtilsTest (zig-zag: 0, -1, 1, -2, ...).
        assert_eq!(varint_bytes(0), [0x00]);
        assert_eq!(varint_bytes(-1), [0x01]);
        assert_eq!(varint_bytes(1), [0x02]);
        assert_eq!(varint_bytes(63), [0x7e]);
        assert_eq!(varint_bytes(-64), [0x7f]);
        assert_eq!(varint_bytes(64), [0x80, 0x01]);
        assert_eq!(varint_bytes(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(varint_bytes(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(
            varlong_bytes(i64::MIN),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        assert_eq!(varlong_bytes(-1), [0x01]);
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [
            0,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            8191,
            8192,
            i32::MAX,
            i32::MIN,
            i32::MAX - 1,
            i32::MIN + 1,
        ] {
            let b = varint_bytes(v);
            assert_eq!(b.len(), varint_len(v), "{v}");
            let mut c = Cursor::new(&b);
            assert_eq!(c.varint(), Ok(v));
            assert_eq!(c.remaining(), 0);
            // A varint is also a valid varlong of the same value.
            assert_eq!(Cursor::new(&b).varlong(), Ok(i64::from(v)));
        }
        for v in [
            0,
            -1,
            1,
            i64::MAX,
            i64::MIN,
            1 << 35,
            -(1 << 35),
            30 * 86_400_000,
        ] {
            let b = varlong_bytes(v);
            let mut c = Cursor::new(&b);
            assert_eq!(c.varlong(), Ok(v), "{v}");
            assert_eq!(c.remaining(), 0);
        }
    }

    #[test]
    fn overlong_and_truncated_varints_are_errors() {
        // Six continuation bytes: longer than any varint.
        let long = [0x80u8, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert_eq!(Cursor::new(&long).varint(), Err(ReadError::VarintTooLong));
        let long = [0xffu8; 11];
        assert_eq!(Cursor::new(&long).varlong(), Err(ReadError::VarintTooLong));
        // Continuation bit set on the last byte present.
        assert!(matches!(
            Cursor::new(&[0x80, 0x80]).varint(),
            Err(ReadError::Eof { .. })
        ));
        assert!(matches!(
            Cursor::new(&[]).varlong(),
            Err(ReadError::Eof { .. })
        ));
        // A fifth byte with high bits set is accepted and truncated, as Java does.
        let mut c = Cursor::new(&[0xfe, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(c.varint(), Ok(i32::MAX));
    }

    #[test]
    fn take_is_bounded_by_what_is_left() {
        let data = [1u8, 2, 3];
        let mut c = Cursor::new(&data);
        assert_eq!(c.take(2), Ok(0..2));
        assert_eq!(c.take(2), Err(ReadError::Eof { need: 2, have: 1 }));
        assert_eq!(
            c.take(usize::MAX),
            Err(ReadError::Eof {
                need: usize::MAX,
                have: 1
            })
        );
        assert_eq!(c.i8(), Ok(3));
        assert_eq!(c.i8(), Err(ReadError::Eof { need: 1, have: 0 }));
        assert_eq!(c.position(), 3);
    }
}
