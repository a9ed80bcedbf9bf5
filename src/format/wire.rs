//! Low-level encoding: LEB128 varints, length-prefixed bytes, and a bounds-checked cursor.

use super::FormatError;

/// Appends an unsigned LEB128 varint.
#[inline]
pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a signed value, zig-zag encoded so small negatives stay small.
#[inline]
pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Appends a length-prefixed byte string.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Reads values back out of a byte slice; every read is bounds-checked.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads a varint.
    #[inline]
    pub fn u64(&mut self) -> Result<u64, FormatError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let &b = self.buf.get(self.pos).ok_or(FormatError::Truncated)?;
            self.pos += 1;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(FormatError::Corrupt("varint overflows 64 bits"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(FormatError::Corrupt("varint longer than 10 bytes"))
    }

    /// Reads a zig-zag varint.
    pub fn i64(&mut self) -> Result<i64, FormatError> {
        let u = self.u64()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Reads a varint that must fit in `u32`.
    pub fn u32(&mut self) -> Result<u32, FormatError> {
        u32::try_from(self.u64()?).map_err(|_| FormatError::Corrupt("value does not fit 32 bits"))
    }

    /// Reads a count of items that each take at least `min_item_bytes`, rejecting counts
    /// the remaining bytes cannot hold (so a corrupt count never triggers a huge allocation).
    pub fn count(&mut self, min_item_bytes: usize) -> Result<usize, FormatError> {
        let n = self.u64()?;
        let max = self.remaining() / min_item_bytes.max(1);
        if n > max as u64 {
            return Err(FormatError::Corrupt(
                "count larger than the data that follows",
            ));
        }
        Ok(n as usize)
    }

    /// Reads exactly `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if n > self.remaining() {
            return Err(FormatError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads a length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], FormatError> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| FormatError::Truncated)?;
        self.take(n)
    }

    /// Reads a length-prefixed string, replacing invalid UTF-8 (the target's text is not
    /// guaranteed to be UTF-8, and a profile must still open).
    pub fn string(&mut self) -> Result<String, FormatError> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        let values = [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX - 1, u64::MAX];
        let mut buf = Vec::new();
        for &v in &values {
            put_u64(&mut buf, v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            put_i64(&mut buf, v);
        }
        let mut c = Cursor::new(&buf);
        for &v in &values {
            assert_eq!(c.u64().unwrap(), v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(c.i64().unwrap(), v);
        }
        assert_eq!(c.remaining(), 0);
        assert_eq!(c.u64(), Err(FormatError::Truncated));
    }

    #[test]
    fn overlong_and_overflowing_varints_are_corrupt() {
        let mut c = Cursor::new(&[0xff; 11]);
        assert!(matches!(c.u64(), Err(FormatError::Corrupt(_))));
        let mut c = Cursor::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        assert!(matches!(c.u64(), Err(FormatError::Corrupt(_))));
    }
}
