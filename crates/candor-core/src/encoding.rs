//! The one canonical binary encoding used for everything Candor signs, hashes or sends.
//!
//! Integers are big-endian and fixed-width; byte strings carry a length prefix whose width is
//! fixed per field, and every variable field has an explicit maximum. Decoding is strict: a
//! value has exactly one encoding, trailing bytes are an error, and no input can make the
//! decoder panic or allocate more than the field's limit.

use thiserror::Error;

/// Why a byte string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("input truncated while reading {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes were left after the structure ended.
    #[error("{count} trailing byte(s) after {what}")]
    TrailingBytes {
        /// The structure that was decoded.
        what: &'static str,
        /// How many bytes were left over.
        count: usize,
    },
    /// A variable-length field is longer than its limit.
    #[error("field {field} is {len} bytes long, over its limit of {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The structure carries a version this build does not know.
    #[error("{what} has unknown version {version}")]
    UnknownVersion {
        /// The structure.
        what: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// A tag byte selects no known variant.
    #[error("{what} has unknown kind {kind}")]
    UnknownKind {
        /// The structure.
        what: &'static str,
        /// The kind byte found.
        kind: u8,
    },
    /// A field holds a value outside its domain.
    #[error("field {field} is invalid: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why it is invalid.
        reason: &'static str,
    },
}

/// Appends canonical encodings to a byte buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    /// Writes one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Writes a big-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Writes a big-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Writes a big-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Writes an unsigned LEB128 varint: seven bits per byte, low bits first, the high bit set
    /// on every byte but the last (1 byte below 128, at most 10).
    pub fn varint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.buf.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }

    /// Writes fixed-width bytes with no prefix.
    pub fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Writes bytes with a one-byte length prefix. The caller guarantees `v.len() <= 255`
    /// (types enforce it at construction); a longer slice is truncated to keep the encoding
    /// well-formed, which a round-trip test would reveal.
    pub fn bytes8(&mut self, v: &[u8]) -> &mut Self {
        let n = v.len().min(u8::MAX as usize);
        self.buf.push(n as u8);
        self.buf.extend_from_slice(v.get(..n).unwrap_or_default());
        self
    }

    /// Writes bytes with a two-byte length prefix (at most 65,535 bytes).
    pub fn bytes16(&mut self, v: &[u8]) -> &mut Self {
        let n = v.len().min(u16::MAX as usize);
        self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        self.buf.extend_from_slice(v.get(..n).unwrap_or_default());
        self
    }

    /// Writes bytes with a four-byte length prefix.
    pub fn bytes32(&mut self, v: &[u8]) -> &mut Self {
        let n = v.len().min(u32::MAX as usize);
        self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        self.buf.extend_from_slice(v.get(..n).unwrap_or_default());
        self
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads a canonical encoding from a byte slice, never past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated { field });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Reads one byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Reads a big-endian u16.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian u64.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// Reads a varint written by [`Writer::varint`]; a non-minimal encoding (a trailing zero
    /// byte) or one beyond 64 bits is invalid, so every value has exactly one encoding.
    pub fn varint(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10u32 {
            let b = self.u8(field)?;
            let low = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(DecodeError::Invalid {
                    field,
                    reason: "varint beyond 64 bits",
                });
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(DecodeError::Invalid {
                        field,
                        reason: "varint not in its shortest form",
                    });
                }
                return Ok(v);
            }
        }
        Err(DecodeError::Invalid {
            field,
            reason: "varint beyond 64 bits",
        })
    }

    /// Reads a varint that must be at most `max` (a count or a length).
    pub fn varint_max(&mut self, max: usize, field: &'static str) -> Result<usize, DecodeError> {
        let v = self.varint(field)?;
        match usize::try_from(v) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(DecodeError::TooLong {
                field,
                len: usize::try_from(v).unwrap_or(usize::MAX),
                max,
            }),
        }
    }

    /// Reads `N` bytes.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    fn limited(
        &mut self,
        len: usize,
        max: usize,
        field: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        if len > max {
            return Err(DecodeError::TooLong { field, len, max });
        }
        self.take(len, field)
    }

    /// Reads bytes with a one-byte length prefix, at most `max` long.
    pub fn bytes8(&mut self, max: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u8(field)? as usize;
        self.limited(len, max, field)
    }

    /// Reads bytes with a two-byte length prefix, at most `max` long.
    pub fn bytes16(&mut self, max: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u16(field)? as usize;
        self.limited(len, max, field)
    }

    /// Reads bytes with a four-byte length prefix, at most `max` long.
    pub fn bytes32(&mut self, max: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(field)? as usize;
        self.limited(len, max, field)
    }

    /// Reads a version byte and checks it equals `expected`.
    pub fn version(&mut self, expected: u8, what: &'static str) -> Result<(), DecodeError> {
        let version = self.u8("version")?;
        if version != expected {
            return Err(DecodeError::UnknownVersion { what, version });
        }
        Ok(())
    }

    /// Ends decoding: any byte left over is an error.
    pub fn finish(self, what: &'static str) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                what,
                count: self.rest.len(),
            })
        }
    }
}

/// A type with one canonical encoding.
pub trait Encode {
    /// Appends the encoding to `w`.
    fn encode_to(&self, w: &mut Writer);

    /// The encoding as a fresh byte vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_to(&mut w);
        w.into_bytes()
    }
}

/// A type that decodes strictly from its canonical encoding.
pub trait Decode: Sized {
    /// What the type is called in errors.
    const WHAT: &'static str;

    /// Reads one value from `r`, leaving the rest.
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes a whole byte string; trailing bytes are an error.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::decode_from(&mut r)?;
        r.finish(Self::WHAT)?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_have_one_encoding() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut w = Writer::new();
            w.varint(v);
            let bytes = w.into_bytes();
            let mut r = Reader::new(&bytes);
            assert_eq!(r.varint("v").unwrap(), v);
            r.finish("v").unwrap();
        }
        let mut w = Writer::new();
        w.varint(127).varint(128).varint(u64::MAX);
        assert_eq!(w.as_slice().len(), 1 + 2 + 10);
        // 0x80 0x00 spells 0 in two bytes: not the shortest form.
        assert!(Reader::new(&[0x80, 0x00]).varint("v").is_err());
        // Eleven bytes, or a tenth byte above 1, overflow 64 bits.
        assert!(Reader::new(&[0xff; 11]).varint("v").is_err());
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert!(Reader::new(&over).varint("v").is_err());
        assert!(Reader::new(&[0x80]).varint("v").is_err());
        assert!(Reader::new(&[0x05]).varint_max(4, "v").is_err());
        assert_eq!(Reader::new(&[0x04]).varint_max(4, "v").unwrap(), 4);
    }

    #[test]
    fn integers_round_trip_big_endian() {
        let mut w = Writer::new();
        w.u8(1)
            .u16(0x0203)
            .u32(0x0405_0607)
            .u64(0x0809_0a0b_0c0d_0e0f);
        let bytes = w.into_bytes();
        assert_eq!(bytes, (1u8..=15).collect::<Vec<_>>());
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 0x0203);
        assert_eq!(r.u32("c").unwrap(), 0x0405_0607);
        assert_eq!(r.u64("d").unwrap(), 0x0809_0a0b_0c0d_0e0f);
        r.finish("t").unwrap();
    }

    #[test]
    fn over_long_field_is_rejected_before_reading() {
        let mut w = Writer::new();
        w.bytes16(&[7u8; 40]);
        let bytes = w.into_bytes();
        let err = Reader::new(&bytes).bytes16(39, "f").unwrap_err();
        assert_eq!(
            err,
            DecodeError::TooLong {
                field: "f",
                len: 40,
                max: 39
            }
        );
    }

    #[test]
    fn truncation_and_trailing_bytes_are_typed() {
        assert_eq!(
            Reader::new(&[0, 0, 0]).u32("x").unwrap_err(),
            DecodeError::Truncated { field: "x" }
        );
        let mut r = Reader::new(&[1, 2]);
        r.u8("x").unwrap();
        assert_eq!(
            r.finish("thing").unwrap_err(),
            DecodeError::TrailingBytes {
                what: "thing",
                count: 1
            }
        );
    }

    #[test]
    fn length_prefix_beyond_input_is_truncation() {
        let bytes = [0u8, 0, 0, 200, 1, 2, 3];
        assert!(matches!(
            Reader::new(&bytes).bytes32(1000, "f"),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
