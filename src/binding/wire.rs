//! Byte layouts shared with `lib/native.ts`: SQL parameters in, rows and KV entries out.
//! All integers are little-endian.
//!
//! Parameters: per value a tag byte, then 0 null | 1 f64 | 2 u32 length + UTF-8 text |
//! 3 u32 length + blob bytes.
//! Row values: the same tags and layouts, INTEGER and REAL both as f64 (a JS number).
//! KV entries: u32 key length, key bytes, u32 value length, value bytes.
//! Lists of keys: u32 length + bytes, repeated. Optional strings: a presence byte, then
//! u32 length + bytes. Keys are WTF-8 (see lib/wire.ts).

use crate::engine::storage::{RowSink, SqlParam, SqlValue};

pub const NULL: u8 = 0;
pub const NUMBER: u8 = 1;
pub const TEXT: u8 = 2;
pub const BLOB: u8 = 3;

pub fn decode_params(mut bytes: &[u8]) -> Result<Vec<SqlParam<'_>>, &'static str> {
    let mut params = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        bytes = rest;
        let param = match tag {
            NULL => SqlParam::Null,
            NUMBER => {
                let (n, rest) = bytes.split_first_chunk::<8>().ok_or("truncated parameters")?;
                bytes = rest;
                SqlParam::Real(f64::from_le_bytes(*n))
            }
            TEXT | BLOB => {
                let (len, rest) = bytes.split_first_chunk::<4>().ok_or("truncated parameters")?;
                let len = u32::from_le_bytes(*len) as usize;
                if rest.len() < len {
                    return Err("truncated parameters");
                }
                let (data, rest) = rest.split_at(len);
                bytes = rest;
                if tag == TEXT { SqlParam::Text(data) } else { SqlParam::Blob(data) }
            }
            _ => return Err("bad parameter tag"),
        };
        params.push(param);
    }
    Ok(params)
}

/// Splits u32-length-prefixed byte strings.
pub fn decode_strings(mut bytes: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut strings = Vec::new();
    while !bytes.is_empty() {
        let (s, rest) = take_string(bytes)?;
        strings.push(s);
        bytes = rest;
    }
    Ok(strings)
}

fn take_string(bytes: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    let (len, rest) = bytes.split_first_chunk::<4>().ok_or("truncated string")?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err("truncated string");
    }
    Ok(rest.split_at(len))
}

/// Reads `N` optional strings (presence byte, then a length-prefixed string).
pub fn decode_optional_strings<const N: usize>(mut bytes: &[u8]) -> Result<[Option<&[u8]>; N], &'static str> {
    let mut out = [None; N];
    for slot in &mut out {
        let (&present, rest) = bytes.split_first().ok_or("truncated options")?;
        bytes = rest;
        if present != 0 {
            let (s, rest) = take_string(bytes)?;
            *slot = Some(s);
            bytes = rest;
        }
    }
    Ok(out)
}

pub fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}

pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

/// Writes rows after a header that the caller fills in once the cursor state is known.
pub struct RowWriter<'a> {
    pub out: &'a mut Vec<u8>,
    pub rows: u32,
    /// Stop adding rows once this many bytes are written (the caller's buffer size), so a
    /// batch usually fits without an overflow.
    pub soft_limit: usize,
}

impl RowSink for RowWriter<'_> {
    fn row(&mut self, values: &mut dyn Iterator<Item = SqlValue<'_>>) {
        for v in values {
            match v {
                SqlValue::Null => self.out.push(NULL),
                SqlValue::Integer(i) => {
                    self.out.push(NUMBER);
                    self.out.extend_from_slice(&(i as f64).to_le_bytes());
                }
                SqlValue::Real(f) => {
                    self.out.push(NUMBER);
                    self.out.extend_from_slice(&f.to_le_bytes());
                }
                SqlValue::Text(t) => {
                    self.out.push(TEXT);
                    put_bytes(self.out, t);
                }
                SqlValue::Blob(b) => {
                    self.out.push(BLOB);
                    put_bytes(self.out, b);
                }
            }
        }
        self.rows += 1;
    }

    fn full(&self) -> bool {
        self.out.len() >= self.soft_limit || self.rows >= 4096
    }
}
