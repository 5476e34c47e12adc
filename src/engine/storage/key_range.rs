//! The key range of `storage.list()` and `storage.kv.list()`, with workerd's rules.
//!
//! Keys compare as UTF-8 bytes (SQLite's BINARY collation on `_cf_KV.key`). `start` is
//! inclusive, `startAfter` exclusive, `end` exclusive; `prefix` is intersected with that
//! range; `reverse` walks the same range backwards; an empty range lists nothing.

use super::error::{Result, StorageError};

#[derive(Debug, Default, Clone)]
pub struct ListOptions<'a> {
    // Keys as stored: UTF-8, or WTF-8 when a key holds a lone surrogate (as workerd keeps them).
    pub start: Option<&'a [u8]>,
    pub start_after: Option<&'a [u8]>,
    pub end: Option<&'a [u8]>,
    pub prefix: Option<&'a [u8]>,
    pub reverse: bool,
    /// Must be positive when given.
    pub limit: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// Lower bound and whether it is included.
    pub lower: Option<(Vec<u8>, bool)>,
    /// Exclusive upper bound. Not always valid UTF-8 (a prefix's successor), which SQLite's
    /// byte-wise comparison does not mind.
    pub upper: Option<Vec<u8>>,
    pub reverse: bool,
    pub limit: Option<u64>,
}

impl KeyRange {
    /// Ok(None) means the range is empty.
    pub fn new(o: &ListOptions<'_>) -> Result<Option<KeyRange>> {
        if o.start.is_some() && o.start_after.is_some() {
            return Err(StorageError::type_error("list() cannot be called with both start and startAfter values."));
        }
        let limit = match o.limit {
            None => None,
            Some(l) if l.is_nan() || l < 1.0 => return Err(StorageError::type_error("List limit must be positive.")),
            Some(l) => Some(l.min(u64::MAX as f64) as u64),
        };
        let mut lower: Option<(Vec<u8>, bool)> = match (o.start, o.start_after) {
            (Some(s), _) => Some((s.to_vec(), true)),
            (None, Some(s)) => Some((s.to_vec(), false)),
            (None, None) => None,
        };
        let mut upper: Option<Vec<u8>> = o.end.map(<[u8]>::to_vec);

        if let Some(prefix) = o.prefix.filter(|p| !p.is_empty()) {
            match &lower {
                Some((start, _)) if start.as_slice() >= prefix => {
                    if !start.starts_with(prefix) {
                        return Ok(None); // start lies after every key with the prefix
                    }
                }
                _ => lower = Some((prefix.to_vec(), true)),
            }
            if let Some(after) = successor(prefix) {
                match &upper {
                    Some(end) if end.as_slice() <= prefix => return Ok(None),
                    Some(end) if end.starts_with(prefix) => {}
                    _ => upper = Some(after),
                }
            }
        }

        if let (Some((start, inclusive)), Some(end)) = (&lower, &upper) {
            let empty = if *inclusive { end <= start } else { end <= start || successor_is(end, start) };
            if empty {
                return Ok(None);
            }
        }
        Ok(Some(KeyRange { lower, upper, reverse: o.reverse, limit }))
    }
}

/// The first byte string after every string that starts with `prefix`, or None when the
/// prefix is all 0xFF bytes (then nothing sorts after its range).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while s.last() == Some(&0xff) {
        s.pop();
    }
    let last = s.last_mut()?;
    *last += 1;
    Some(s)
}

/// With an exclusive lower bound `start`, the smallest listable key is `start + "\0"`;
/// an `end` equal to that leaves nothing.
fn successor_is(end: &[u8], start: &[u8]) -> bool {
    end.len() == start.len() + 1 && end.starts_with(start) && end[start.len()] == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(o: ListOptions<'_>) -> Option<KeyRange> {
        KeyRange::new(&o).unwrap()
    }

    #[test]
    fn option_errors_are_workerds() {
        let both = ListOptions { start: Some(b"a"), start_after: Some(b"b"), ..Default::default() };
        assert_eq!(
            KeyRange::new(&both).unwrap_err(),
            StorageError::type_error("list() cannot be called with both start and startAfter values.")
        );
        for l in [0.0, -1.0, f64::NAN] {
            let o = ListOptions { limit: Some(l), ..Default::default() };
            assert_eq!(KeyRange::new(&o).unwrap_err().message, "List limit must be positive.");
        }
    }

    #[test]
    fn prefix_clamps_the_range() {
        let r = range(ListOptions { prefix: Some(b"ab"), ..Default::default() }).unwrap();
        assert_eq!(r.lower, Some((b"ab".to_vec(), true)));
        assert_eq!(r.upper, Some(b"ac".to_vec()));
        // start inside the prefix is kept; start after it empties the range
        let r = range(ListOptions { prefix: Some(b"ab"), start: Some(b"abc"), ..Default::default() }).unwrap();
        assert_eq!(r.lower, Some((b"abc".to_vec(), true)));
        assert!(range(ListOptions { prefix: Some(b"ab"), start: Some(b"b"), ..Default::default() }).is_none());
        // end before the prefix empties it, end inside is kept, end after is clamped
        assert!(range(ListOptions { prefix: Some(b"b"), end: Some(b"a"), ..Default::default() }).is_none());
        let r = range(ListOptions { prefix: Some(b"b"), end: Some(b"bb"), ..Default::default() }).unwrap();
        assert_eq!(r.upper, Some(b"bb".to_vec()));
        let r = range(ListOptions { prefix: Some(b"b"), end: Some(b"z"), ..Default::default() }).unwrap();
        assert_eq!(r.upper, Some(b"c".to_vec()));
    }

    #[test]
    fn prefix_successor_skips_ff_bytes() {
        assert_eq!(successor(&[0x61, 0xff]), Some(vec![0x62]));
        assert_eq!(successor(&[0xff, 0xff]), None);
        // U+FFFF is EF BF BF in UTF-8: the successor increments the last non-FF byte
        assert_eq!(successor("\u{ffff}".as_bytes()), Some(vec![0xef, 0xbf, 0xc0]));
    }

    #[test]
    fn empty_ranges_are_not_errors() {
        assert!(range(ListOptions { start: Some(b"b"), end: Some(b"a"), ..Default::default() }).is_none());
        assert!(range(ListOptions { start: Some(b"a"), end: Some(b"a"), ..Default::default() }).is_none());
        assert!(range(ListOptions { start_after: Some(b"a"), end: Some(b"a\0"), ..Default::default() }).is_none());
        assert!(range(ListOptions { start_after: Some(b"a"), end: Some(b"a\0\0"), ..Default::default() }).is_some());
    }
}
