//! How keys and values become tree entries.
//!
//! A path `/a/b` is the tree key `a 0x00 b` (segments never hold NUL, so byte order is the
//! `Key` order and a dictionary's entries are one key range). Each value has a *meta* entry under
//! its path; a value larger than [`INLINE`] keeps its bytes in 4 KiB chunks, each a *chunk*
//! entry under `path 0x00 0x00 index(u64 BE)`, which sorts right after the meta entry and before
//! any sibling. A chunk that is all zeros is not stored (values are sparse).

use alloc::vec::Vec;

use morgana::kv::Key;

use crate::format::{Ptr, le64};
use crate::pager::Fail;

/// The longest encoded path (segments and separators), so that any two entries fit in a node.
pub const MAX_PATH: usize = 480;
/// Values up to this many bytes live inside their meta entry.
pub const INLINE: usize = 512;

const TAG_INLINE: u8 = 0;
const TAG_CHUNKED: u8 = 1;
const TAG_CHUNK: u8 = 2;

/// The tree key of `key`'s meta entry.
pub fn path(key: &Key) -> Result<Vec<u8>, Fail> {
    let mut p = Vec::with_capacity(key.segments().map(|s| s.len() + 1).sum());
    for (i, s) in key.segments().enumerate() {
        if i > 0 {
            p.push(0);
        }
        p.extend_from_slice(s.as_bytes());
    }
    if p.len() > MAX_PATH {
        return Err(Fail::TooLong);
    }
    Ok(p)
}

/// The prefix every entry inside the dictionary at `path` starts with.
pub fn dir_prefix(path: &[u8]) -> Vec<u8> {
    let mut p = path.to_vec();
    if !p.is_empty() {
        p.push(0);
    }
    p
}

/// The first key after every key that starts with `prefix` (`None`: no such key, the end).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xff {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

/// The key of chunk `index` of the value at `path`.
pub fn chunk_key(path: &[u8], index: u64) -> Vec<u8> {
    let mut k = path.to_vec();
    k.extend_from_slice(&[0, 0]);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// The chunk index in a chunk key of `path`.
pub fn chunk_index(path: &[u8], key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(path)?.strip_prefix(&[0, 0])?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// A value's size, time and (if small) bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Bytes in the value.
    pub size: u64,
    /// Last write, nanoseconds since the POSIX epoch.
    pub mtime: u64,
    /// The bytes, for an inline value; `None` when they live in chunks.
    pub inline: Option<Vec<u8>>,
}

impl Meta {
    /// The entry value.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(17 + self.inline.as_ref().map_or(0, Vec::len));
        v.push(if self.inline.is_some() { TAG_INLINE } else { TAG_CHUNKED });
        v.extend_from_slice(&self.size.to_le_bytes());
        v.extend_from_slice(&self.mtime.to_le_bytes());
        if let Some(d) = &self.inline {
            v.extend_from_slice(d);
        }
        v
    }

    /// The meta entry of an inline value, without copying the value twice.
    pub fn encode_inline(mtime: u64, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(17 + value.len());
        v.push(TAG_INLINE);
        v.extend_from_slice(&(value.len() as u64).to_le_bytes());
        v.extend_from_slice(&mtime.to_le_bytes());
        v.extend_from_slice(value);
        v
    }

    /// Parse a meta entry; `None` if it is not one (the caller reports corruption).
    pub fn decode(v: &[u8]) -> Option<Self> {
        if v.len() < 17 {
            return None;
        }
        let size = le64(&v[1..9]);
        let mtime = le64(&v[9..17]);
        match v[0] {
            TAG_INLINE if (v.len() - 17) as u64 == size => {
                Some(Self { size, mtime, inline: Some(v[17..].to_vec()) })
            }
            TAG_CHUNKED if v.len() == 17 => Some(Self { size, mtime, inline: None }),
            _ => None,
        }
    }
}

/// The entry value of a chunk written by commit `seq`.
pub fn chunk_entry(ptr: Ptr, seq: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(CHUNK_ENTRY);
    v.push(TAG_CHUNK);
    let mut b = [0u8; Ptr::LEN];
    ptr.encode(&mut b);
    v.extend_from_slice(&b);
    v.extend_from_slice(&seq.to_le_bytes());
    v
}

const CHUNK_ENTRY: usize = 1 + Ptr::LEN + 8;

/// The page a chunk entry points at, if `v` is one.
pub fn chunk_ptr(v: &[u8]) -> Option<Ptr> {
    (v.len() == CHUNK_ENTRY && v[0] == TAG_CHUNK).then(|| Ptr::decode(&v[1..]))
}

/// The commit that wrote the chunk of a chunk entry.
pub fn chunk_seq(v: &[u8]) -> Option<u64> {
    (v.len() == CHUNK_ENTRY && v[0] == TAG_CHUNK).then(|| le64(&v[1 + Ptr::LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn k(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    #[test]
    fn paths_sort_as_keys_and_chunks_sort_with_their_value() {
        let mut keys = [k("/a/b"), k("/a"), k("/ab"), k("/a\u{1}"), k("/b"), k("/a/b/c")];
        keys.sort();
        let mut enc: Vec<_> = keys.iter().map(|x| path(x).unwrap()).collect();
        let sorted = enc.clone();
        enc.sort();
        assert_eq!(enc, sorted, "byte order is key order");
        let a = path(&k("/a")).unwrap();
        let c = chunk_key(&a, 3);
        assert!(c > a && c < path(&k("/a\u{1}")).unwrap() && c < path(&k("/a/\u{1}")).unwrap());
        assert_eq!(chunk_index(&a, &c), Some(3));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert!(path(&k(&"/x".repeat(300))).is_err(), "a path past MAX_PATH is refused");
        let m = Meta { size: 3, mtime: 9, inline: Some(vec![1, 2, 3]) };
        assert_eq!(Meta::decode(&m.encode()), Some(m));
    }
}
