//! # morgana-crunch: a directory compiled into the unikernel
//!
//! Mirage's `crunch` turns a directory into code, so a unikernel can serve files without any
//! disk: the bare-metal target serves its web pages this way. Here a build script calls
//! `build::embed` (feature `build`), which writes a sorted table of the directory's files, each
//! with `include_bytes!`, its SHA-256 and its modification time; the crate includes the table
//! and gets a [`Crunch`], a read-only [`KvRo`] store that needs no allocator for lookups, no
//! file system and no `std`.
//!
//! ```ignore
//! // build.rs (with morgana-crunch, feature "build", as a build-dependency)
//! fn main() {
//!     morgana_crunch::build::embed("htdocs", "htdocs.rs").expect("embed htdocs/");
//! }
//!
//! // src/lib.rs
//! pub static HTDOCS: morgana_crunch::Crunch = include!(concat!(env!("OUT_DIR"), "/htdocs.rs"));
//! ```
//!
//! (No crate on crates.io embeds a directory in `no_std` code: `include_dir`'s runtime needs
//! `std::path`, so the generator is this crate's own, as crunch is Mirage's.)
//!
//! The crate is `no_std` without the `build` feature.
#![cfg_attr(not(any(feature = "build", test)), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

#[cfg(any(feature = "build", test))]
pub mod build;

use alloc::vec::Vec;
use core::cmp::Ordering;
use core::time::Duration;

use morgana::kv::{Key, Kind, KvError, KvRo};
use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct File {
    /// Its key, `/dir/name`.
    pub path: &'static str,
    /// Its bytes.
    pub data: &'static [u8],
    /// SHA-256 of `data`, computed at build time (or on demand when `None`).
    pub digest: Option<[u8; 32]>,
    /// Modification time, POSIX seconds.
    pub modified: u64,
}

impl File {
    /// A file whose digest is computed when asked for.
    pub const fn new(path: &'static str, data: &'static [u8], modified: u64) -> Self {
        Self { path, data, digest: None, modified }
    }

    fn segments(&self) -> impl Iterator<Item = &str> + '_ {
        self.path.split('/').skip(1)
    }

    fn sha256(&self) -> [u8; 32] {
        self.digest.unwrap_or_else(|| Sha256::digest(self.data).into())
    }
}

/// A read-only store over files compiled into the program, sorted by key.
#[derive(Debug, Clone, Copy)]
pub struct Crunch {
    files: &'static [File],
}

fn cmp_key(file: &File, key: &Key) -> Ordering {
    file.segments().cmp(key.segments())
}

impl Crunch {
    /// A store over `files`, which must be sorted by key segments with valid, distinct keys,
    /// none a prefix of another (what `build::embed` generates).
    pub const fn new(files: &'static [File]) -> Self {
        Self { files }
    }

    /// Every file, in key order.
    pub fn files(&self) -> &'static [File] {
        self.files
    }

    /// The file bound to `key`.
    pub fn file(&self, key: &Key) -> Option<&'static File> {
        self.files.binary_search_by(|f| cmp_key(f, key)).ok().map(|i| &self.files[i])
    }

    /// The files strictly below `key`, contiguous in key order.
    fn below(&self, key: &Key) -> &'static [File] {
        let start = self.files.partition_point(|f| cmp_key(f, key) != Ordering::Greater);
        let depth = key.segments().len();
        let len = self.files[start..]
            .iter()
            .take_while(|f| {
                let mut segs = f.segments();
                key.segments().all(|k| segs.next() == Some(k)) && f.segments().count() > depth
            })
            .count();
        &self.files[start..start + len]
    }

    fn kind(&self, key: &Key) -> Option<Kind> {
        if key.is_root() {
            Some(Kind::Dictionary)
        } else if self.file(key).is_some() {
            Some(Kind::Value)
        } else if !self.below(key).is_empty() {
            Some(Kind::Dictionary)
        } else {
            None
        }
    }

    fn value(&self, key: &Key) -> Result<&'static File, KvError> {
        match self.kind(key) {
            Some(Kind::Value) => self.file(key).ok_or_else(|| KvError::NotFound(key.clone())),
            Some(Kind::Dictionary) => Err(KvError::ValueExpected(key.clone())),
            None => Err(KvError::NotFound(key.clone())),
        }
    }

    /// The children of the dictionary `key`, in order.
    fn children(&self, key: &Key) -> Vec<(Key, Kind)> {
        let depth = key.segments().len();
        let mut out: Vec<(Key, Kind)> = Vec::new();
        for f in self.below(key) {
            let Some(name) = f.segments().nth(depth) else { continue };
            if out.last().is_some_and(|(c, _)| c.basename() == name) {
                continue;
            }
            let kind = if f.segments().count() == depth + 1 { Kind::Value } else { Kind::Dictionary };
            if let Ok(child) = key.join(name) {
                out.push((child, kind));
            }
        }
        out
    }

    fn digest_of(&self, key: &Key) -> Result<[u8; 32], KvError> {
        match self.kind(key) {
            None => Err(KvError::NotFound(key.clone())),
            Some(Kind::Value) => Ok(self.value(key)?.sha256()),
            Some(Kind::Dictionary) => {
                // The scheme of morgana-mem's MemKv, so equal trees digest equally.
                let mut h = Sha256::new();
                for (child, kind) in self.children(key) {
                    h.update(child.basename().as_bytes());
                    h.update([0, kind as u8]);
                    h.update(self.digest_of(&child)?);
                }
                Ok(h.finalize().into())
            }
        }
    }
}

impl KvRo for Crunch {
    async fn exists(&self, key: &Key) -> Result<Option<Kind>, KvError> {
        Ok(self.kind(key))
    }

    async fn get(&self, key: &Key) -> Result<Vec<u8>, KvError> {
        Ok(self.value(key)?.data.to_vec())
    }

    async fn get_partial(&self, key: &Key, offset: u64, len: usize) -> Result<Vec<u8>, KvError> {
        let data = self.value(key)?.data;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        let end = start.saturating_add(len).min(data.len());
        Ok(data[start..end].to_vec())
    }

    async fn list(&self, key: &Key) -> Result<Vec<(Key, Kind)>, KvError> {
        match self.kind(key) {
            Some(Kind::Dictionary) => Ok(self.children(key)),
            Some(Kind::Value) => Err(KvError::DictionaryExpected(key.clone())),
            None => Err(KvError::NotFound(key.clone())),
        }
    }

    async fn size(&self, key: &Key) -> Result<u64, KvError> {
        Ok(self.value(key)?.data.len() as u64)
    }

    async fn last_modified(&self, key: &Key) -> Result<Duration, KvError> {
        match self.kind(key) {
            Some(Kind::Value) => Ok(Duration::from_secs(self.value(key)?.modified)),
            Some(Kind::Dictionary) => {
                let files = if key.is_root() { self.files } else { self.below(key) };
                Ok(Duration::from_secs(files.iter().map(|f| f.modified).max().unwrap_or(0)))
            }
            None => Err(KvError::NotFound(key.clone())),
        }
    }

    async fn digest(&self, key: &Key) -> Result<[u8; 32], KvError> {
        self.digest_of(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    static FILES: [File; 5] = [
        File::new("/a/b/c", b"deep", 10),
        File::new("/a/d", b"world!", 20),
        File::new("/css/site.css", b"body{}", 5),
        File::new("/index.html", b"<h1>hi</h1>", 30),
        File::new("/z", b"", 1),
    ];
    static STORE: Crunch = Crunch::new(&FILES);

    fn k(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    #[test]
    fn a_hand_made_table_passes_the_read_only_suite() {
        let contents: Vec<(&str, &[u8])> = FILES.iter().map(|f| (f.path, f.data)).collect();
        block_on(morgana_testkit::kv::check_ro(&STORE, &contents));
    }

    #[test]
    fn dictionaries_and_values() {
        block_on(async {
            assert_eq!(STORE.exists(&k("/a")).await, Ok(Some(Kind::Dictionary)));
            assert_eq!(STORE.exists(&k("/a/b/c/x")).await, Ok(None));
            assert_eq!(STORE.exists(&k("/a/b/x")).await, Ok(None));
            assert_eq!(
                STORE.list(&k("/a")).await,
                Ok(alloc::vec![(k("/a/b"), Kind::Dictionary), (k("/a/d"), Kind::Value)])
            );
            assert_eq!(STORE.get(&k("/a")).await, Err(KvError::ValueExpected(k("/a"))));
            assert_eq!(STORE.last_modified(&k("/a")).await, Ok(Duration::from_secs(20)));
            assert_eq!(STORE.last_modified(&Key::root()).await, Ok(Duration::from_secs(30)));
            assert_eq!(STORE.get_partial(&k("/a/d"), u64::MAX, 3).await, Ok(alloc::vec![]));
            assert_ne!(STORE.digest(&k("/a")).await, STORE.digest(&k("/css")).await);
        });
    }

    #[test]
    fn its_dictionary_digests_match_mem_kv() {
        // morgana-mem is not a dependency; the scheme is checked against a hand computation.
        let mut h = Sha256::new();
        h.update(b"site.css");
        h.update([0, Kind::Value as u8]);
        h.update(Sha256::digest(b"body{}"));
        let want: [u8; 32] = h.finalize().into();
        assert_eq!(block_on(STORE.digest(&k("/css"))), Ok(want));
    }
}
