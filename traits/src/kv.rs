//! `KvRo` and `KvRw`: key-value stores with Mirage_kv semantics.
//!
//! A store is a tree of nested dictionaries whose leaves are values. A [`Key`] is a validated
//! path (`/a/b`); a dictionary exists exactly while some value lives under it, and the root
//! always exists. `KvRw` extends `KvRo`, as Mirage's RW includes RO.
//!
//! ```
//! use morgana::kv::{Key, KvError, KvRw};
//!
//! /// Count visits in `/stats/visits`, starting at 0.
//! async fn visit<K: KvRw>(kv: &K) -> Result<u64, KvError> {
//!     let key = Key::parse("/stats/visits").expect("valid key");
//!     let n = match kv.get(&key).await {
//!         Ok(bytes) => u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])) + 1,
//!         Err(KvError::NotFound(_)) => 0,
//!         Err(e) => return Err(e),
//!     };
//!     kv.set(&key, &n.to_le_bytes()).await?;
//!     Ok(n)
//! }
//! ```

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

/// A validated path of segments; the empty path is the root dictionary.
///
/// A segment is never empty, never `.` or `..`, and contains neither `/` nor NUL, so a key can
/// be mapped onto a file system without escaping its root.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Key {
    segments: Vec<String>,
}

/// Why a string is not a valid key or segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Two slashes in a row, or a trailing slash.
    EmptySegment,
    /// A `.` or `..` segment.
    DotSegment,
    /// A NUL byte.
    Nul,
    /// A `/` inside a single segment.
    Slash,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptySegment => "a key segment is empty (double or trailing '/')",
            Self::DotSegment => "a key segment is '.' or '..'",
            Self::Nul => "a key contains a NUL byte",
            Self::Slash => "a key segment contains '/'",
        })
    }
}

impl core::error::Error for KeyError {}

fn check_segment(s: &str) -> Result<(), KeyError> {
    if s.is_empty() {
        Err(KeyError::EmptySegment)
    } else if s == "." || s == ".." {
        Err(KeyError::DotSegment)
    } else if s.contains('\0') {
        Err(KeyError::Nul)
    } else if s.contains('/') {
        Err(KeyError::Slash)
    } else {
        Ok(())
    }
}

impl Key {
    /// The root dictionary.
    pub const fn root() -> Self {
        Self { segments: Vec::new() }
    }

    /// Parse `/a/b` (the leading `/` is optional; `/` and `""` are the root).
    pub fn parse(path: &str) -> Result<Self, KeyError> {
        let path = path.strip_prefix('/').unwrap_or(path);
        if path.is_empty() {
            return Ok(Self::root());
        }
        let segments =
            path.split('/').map(|s| check_segment(s).map(|()| String::from(s))).collect::<Result<_, _>>()?;
        Ok(Self { segments })
    }

    /// This key with one more segment.
    pub fn join(&self, segment: &str) -> Result<Self, KeyError> {
        check_segment(segment)?;
        let mut k = self.clone();
        k.segments.push(String::from(segment));
        Ok(k)
    }

    /// The segments, root first.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &str> + DoubleEndedIterator {
        self.segments.iter().map(String::as_str)
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The last segment (`""` for the root).
    pub fn basename(&self) -> &str {
        self.segments.last().map_or("", String::as_str)
    }

    /// The key without its last segment (the root is its own parent).
    pub fn parent(&self) -> Self {
        let mut k = self.clone();
        k.segments.pop();
        k
    }

    /// Whether `self` is `other` or one of its ancestors.
    pub fn is_prefix_of(&self, other: &Key) -> bool {
        other.segments.starts_with(&self.segments)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for s in &self.segments {
            write!(f, "/{s}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

impl core::str::FromStr for Key {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::parse(s)
    }
}

/// What a key is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A value (a leaf).
    Value,
    /// A dictionary (an inner node).
    Dictionary,
}

/// Why a key-value operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KvError {
    /// Nothing is bound to the key.
    NotFound(Key),
    /// The key (or one of its ancestors) is a value where a dictionary is needed.
    DictionaryExpected(Key),
    /// The key is a dictionary where a value is needed.
    ValueExpected(Key),
    /// The store is full.
    NoSpace,
    /// Something is already bound to the key.
    AlreadyPresent(Key),
    /// A rename would move a dictionary into its own subtree.
    RenameSourcePrefix {
        /// What was to be moved.
        source: Key,
        /// Where it was to go.
        dest: Key,
    },
    /// The store refuses writes.
    ReadOnly,
    /// The storage below failed; the code is the implementation's (an errno on unix).
    Io(i32),
    /// What is stored for the key failed its checksum (bit rot, a misdirected write): the store
    /// refuses to return it as data.
    Corrupt(Key),
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(k) => write!(f, "{k}: not found"),
            Self::DictionaryExpected(k) => write!(f, "{k}: a dictionary was expected"),
            Self::ValueExpected(k) => write!(f, "{k}: a value was expected"),
            Self::NoSpace => f.write_str("no space left in the store"),
            Self::AlreadyPresent(k) => write!(f, "{k}: already present"),
            Self::RenameSourcePrefix { source, dest } => {
                write!(f, "cannot rename {source} into its own subtree {dest}")
            }
            Self::ReadOnly => f.write_str("the store is read-only"),
            Self::Io(code) => write!(f, "storage I/O error (code {code})"),
            Self::Corrupt(k) => write!(f, "{k}: stored data failed its checksum (the device is damaged)"),
        }
    }
}

impl core::error::Error for KvError {}

/// A read-only key-value store.
pub trait KvRo {
    /// `Some(Value)`, `Some(Dictionary)` (the root always is one) or `None`.
    async fn exists(&self, key: &Key) -> Result<Option<Kind>, KvError>;

    /// The whole value bound to `key`.
    async fn get(&self, key: &Key) -> Result<Vec<u8>, KvError>;

    /// Up to `len` bytes of the value from `offset`; shorter at the end, empty at or past it.
    async fn get_partial(&self, key: &Key, offset: u64, len: usize) -> Result<Vec<u8>, KvError>;

    /// The entries of the dictionary `key` as full keys, sorted.
    async fn list(&self, key: &Key) -> Result<Vec<(Key, Kind)>, KvError>;

    /// Length in bytes of the value bound to `key`.
    async fn size(&self, key: &Key) -> Result<u64, KvError>;

    /// When the value was last written (for a dictionary: the latest of its entries), as POSIX
    /// time.
    async fn last_modified(&self, key: &Key) -> Result<Duration, KvError>;

    /// A deterministic 32-byte digest of the value (SHA-256 of its bytes in this project's
    /// stores) or of a dictionary's entries.
    async fn digest(&self, key: &Key) -> Result<[u8; 32], KvError>;
}

/// A read-write key-value store.
pub trait KvRw: KvRo {
    /// Bind `key` to `value`, creating parent dictionaries; a dictionary at `key` is refused.
    async fn set(&self, key: &Key, value: &[u8]) -> Result<(), KvError>;

    /// Write `data` at `offset` in the value, extending it (with zeros) or creating it.
    async fn set_partial(&self, key: &Key, offset: u64, data: &[u8]) -> Result<(), KvError>;

    /// Remove the value or the whole dictionary bound to `key`.
    async fn remove(&self, key: &Key) -> Result<(), KvError>;

    /// Move what is bound to `source` to `dest`, replacing what `dest` held.
    async fn rename(&self, source: &Key, dest: &Key) -> Result<(), KvError>;

    /// Bind `key` to `size` zero bytes; refused if `key` is bound.
    async fn allocate(&self, key: &Key, size: u64) -> Result<(), KvError>;
}

macro_rules! forward_kv {
    ($($ptr:ty),*) => {$(
        impl<T: KvRo + ?Sized> KvRo for $ptr {
            async fn exists(&self, key: &Key) -> Result<Option<Kind>, KvError> {
                T::exists(self, key).await
            }
            async fn get(&self, key: &Key) -> Result<Vec<u8>, KvError> {
                T::get(self, key).await
            }
            async fn get_partial(&self, key: &Key, offset: u64, len: usize) -> Result<Vec<u8>, KvError> {
                T::get_partial(self, key, offset, len).await
            }
            async fn list(&self, key: &Key) -> Result<Vec<(Key, Kind)>, KvError> {
                T::list(self, key).await
            }
            async fn size(&self, key: &Key) -> Result<u64, KvError> {
                T::size(self, key).await
            }
            async fn last_modified(&self, key: &Key) -> Result<Duration, KvError> {
                T::last_modified(self, key).await
            }
            async fn digest(&self, key: &Key) -> Result<[u8; 32], KvError> {
                T::digest(self, key).await
            }
        }
        impl<T: KvRw + ?Sized> KvRw for $ptr {
            async fn set(&self, key: &Key, value: &[u8]) -> Result<(), KvError> {
                T::set(self, key, value).await
            }
            async fn set_partial(&self, key: &Key, offset: u64, data: &[u8]) -> Result<(), KvError> {
                T::set_partial(self, key, offset, data).await
            }
            async fn remove(&self, key: &Key) -> Result<(), KvError> {
                T::remove(self, key).await
            }
            async fn rename(&self, source: &Key, dest: &Key) -> Result<(), KvError> {
                T::rename(self, source, dest).await
            }
            async fn allocate(&self, key: &Key, size: u64) -> Result<(), KvError> {
                T::allocate(self, key, size).await
            }
        }
    )*};
}

forward_kv!(&T, Rc<T>);

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn keys_parse_and_print() {
        assert_eq!(Key::parse("/a/b").unwrap().to_string(), "/a/b");
        assert_eq!(Key::parse("a/b").unwrap(), Key::parse("/a/b").unwrap());
        assert_eq!(Key::parse("/").unwrap(), Key::root());
        assert_eq!(Key::root().to_string(), "/");
        assert_eq!(Key::parse("/a/b").unwrap().parent().to_string(), "/a");
        assert_eq!(Key::parse("/a/b").unwrap().basename(), "b");
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(Key::parse("/a//b"), Err(KeyError::EmptySegment));
        assert_eq!(Key::parse("/a/"), Err(KeyError::EmptySegment));
        assert_eq!(Key::parse("/../etc/passwd"), Err(KeyError::DotSegment));
        assert_eq!(Key::parse("/a/./b"), Err(KeyError::DotSegment));
        assert_eq!(Key::parse("/a\0b"), Err(KeyError::Nul));
        assert_eq!(Key::root().join("x/y"), Err(KeyError::Slash));
        assert_eq!(Key::root().join(".."), Err(KeyError::DotSegment));
    }

    #[test]
    fn prefixes() {
        let a = Key::parse("/a").unwrap();
        let ab = Key::parse("/a/b").unwrap();
        assert!(a.is_prefix_of(&ab) && a.is_prefix_of(&a) && !ab.is_prefix_of(&a));
        assert!(Key::root().is_prefix_of(&a));
        assert!(!Key::parse("/ab").unwrap().is_prefix_of(&ab));
    }
}
