//! # morgana-tar: a read-only store over a tar image on any `Block`
//!
//! Mirage's tar store, for Morgana: [`TarKv`] is a [`KvRo`] whose contents are a tar archive
//! written to a block device as it is (`tar -cf site.tar -C site .`, then the file is the disk),
//! so a user ships a data disk built with the standard tool. `no_std` + `alloc`, no unsafe code.
//!
//! ```
//! use morgana::{Block, Key, KvRo};
//! use morgana_tar::TarKv;
//!
//! # futures::executor::block_on(async {
//! # let mut disk = morgana_mem::MemBlock::new(512, 4);
//! # disk.write(0, &include_bytes!("../tests/data/hello.tar")[..2048]).await.unwrap();
//! // `disk` holds a tar image with the member `./hello.txt`.
//! let store = TarKv::open(disk).await.expect("a tar image");
//! let hello = Key::parse("/hello.txt").unwrap();
//! assert_eq!(store.get(&hello).await.unwrap(), b"hello, tar\n");
//! # });
//! ```
//!
//! ## What is read
//!
//! - **Formats:** POSIX ustar (with its 155-byte name prefix), pax (`x` headers: `path`, `size`,
//!   `mtime` with fractions, `linkpath`; `g` global headers are read past), GNU (`L` long names,
//!   `K` long link names, base-256 sizes and times for files of 8 GiB and more), and the old
//!   v7 format. GNU `tar`'s default, `--format=gnu`, `--format=ustar`, `--format=pax` and
//!   `--format=posix` all work.
//! - **Members:** regular files are values; a hard link is a value with its target's data (the
//!   target must come earlier, as `tar` writes them); directories are implied by the paths below
//!   them (a directory member with nothing below it is no dictionary, as Mirage_kv has no empty
//!   ones); symbolic links, devices, FIFOs and volume labels are not values and are read past.
//!   A name is the member's path with a leading `/` and `./` taken off (`tar -C dir .` writes
//!   `./a/b`) and a trailing `/` for directories: `./a/b` is the key `/a/b`. A later member of
//!   the same name replaces an earlier one, as `tar -x` would.
//! - **Refused, in one line ([`TarError`]), never a panic:** a header whose checksum fails (so
//!   a random image is refused, not served), a numeric field that is not a number, a malformed
//!   pax header, a member whose data runs past the end of the device, a name that is not UTF-8
//!   or not a valid [`Key`] (`..`, `a//b`), a name that is both a file and a directory, an
//!   extended header over 1 MiB, a hard link to nothing earlier, and GNU sparse files and
//!   multi-volume parts (whose data is not laid out as a value).
//! - **The end:** two zero records, as `tar` writes them (one is enough), or the end of the
//!   device at a header boundary. An all-zero device is an empty store.
//!
//! ## Memory and I/O
//!
//! [`TarKv::open`] reads every header once (one record each, and the extended headers' data)
//! and keeps an index in RAM: per value its key, size, data offset, time and, once asked for,
//! its digest (about 90 bytes plus the key's segments). No data is read at open. A value is
//! read from the blocks that hold it when asked for: `get_partial` reads only the sectors that
//! cover the range, at most 64 KiB at a time, never the whole archive; `digest` streams the
//! value through SHA-256 64 KiB at a time and keeps the result (the image is read-only), so an
//! HTTP server's `ETag` costs one pass per file. Readers take turns at the device (first come,
//! first served), a read at a time.
//!
//! `digest` is SHA-256 of a value's bytes, and for a dictionary the scheme of the project's
//! other stores (`morgana-mem`'s `MemKv`, `morgana-crunch`): for each entry in order, its name,
//! a zero byte, its kind (0 value, 1 dictionary) and its digest; so the same tree digests the
//! same in any of them. Tar stores no checksum of its data: what the device returns for a
//! value's blocks is served as it is.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod header;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;
use core::time::Duration;

use morgana::block::{Block, BlockError, BlockInfo};
use morgana::kv::{Key, KeyError, Kind, KvError, KvRo};
use sha2::{Digest, Sha256};

use header::{Bad, Pax, RECORD, Type, shown};
use morgana::sync::Lock;

/// Largest extended header (pax records, a GNU long name) read at open.
pub const MAX_EXTENDED: u64 = 1 << 20;

/// Largest single read from the device.
const CHUNK: usize = 64 * 1024;

/// Why a device is not a tar image this store can serve. Each is one line saying where.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TarError {
    /// The device failed.
    Io(BlockError),
    /// The device reports 0-byte sectors.
    SectorSize,
    /// The header at this byte offset fails its checksum: not a tar image, or a damaged one.
    Checksum {
        /// Byte offset of the header.
        offset: u64,
    },
    /// A numeric field of the header at `offset` is not a number.
    Field {
        /// Byte offset of the header.
        offset: u64,
        /// The field (`size`, `mtime`).
        field: &'static str,
    },
    /// The pax extended header at `offset` is not a list of `LEN KEY=VALUE` records.
    Pax {
        /// Byte offset of the header.
        offset: u64,
    },
    /// An extended header holds more than [`MAX_EXTENDED`] bytes.
    ExtendedTooLarge {
        /// Byte offset of the header.
        offset: u64,
        /// Bytes it holds.
        size: u64,
    },
    /// A member's data runs past the end of the device.
    Truncated {
        /// The member's name.
        name: String,
        /// Byte offset of its header.
        offset: u64,
        /// Bytes missing past the end.
        missing: u64,
    },
    /// A member's name is not UTF-8.
    NotUtf8 {
        /// The name, lossily.
        name: String,
        /// Byte offset of its header.
        offset: u64,
    },
    /// A member's name is not a valid [`Key`].
    BadName {
        /// The name.
        name: String,
        /// Byte offset of its header.
        offset: u64,
        /// What is wrong with it.
        why: KeyError,
    },
    /// A member whose data is not laid out as a value (a GNU sparse file, a multi-volume part).
    Unsupported {
        /// The member's name.
        name: String,
        /// Byte offset of its header.
        offset: u64,
        /// What it is.
        what: &'static str,
    },
    /// A hard link whose target is not an earlier file of the archive.
    HardLink {
        /// The link's name.
        name: String,
        /// Byte offset of its header.
        offset: u64,
        /// Its target.
        target: String,
    },
    /// A key that is a file and also has members below it (or is also a directory member).
    Conflict {
        /// The key.
        key: Key,
    },
}

impl fmt::Display for TarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot read the tar image: {e}"),
            Self::SectorSize => f.write_str("the device reports 0-byte sectors"),
            Self::Checksum { offset } => {
                write!(f, "not a tar image, or a damaged one: the header at byte {offset} fails its checksum")
            }
            Self::Field { offset, field } => {
                write!(f, "damaged tar image: the header at byte {offset} has a malformed {field} field")
            }
            Self::Pax { offset } => {
                write!(f, "damaged tar image: the pax extended header at byte {offset} is malformed")
            }
            Self::ExtendedTooLarge { offset, size } => write!(
                f,
                "the extended header at byte {offset} holds {size} bytes; at most {MAX_EXTENDED} are read"
            ),
            Self::Truncated { name, offset, missing } => write!(
                f,
                "truncated tar image: '{name}' (header at byte {offset}) ends {missing} bytes past the end of the device"
            ),
            Self::NotUtf8 { name, offset } => {
                write!(f, "the member '{name}' (header at byte {offset}) has a name that is not UTF-8")
            }
            Self::BadName { name, offset, why } => {
                write!(f, "the member '{name}' (header at byte {offset}) is not a valid key: {why}")
            }
            Self::Unsupported { name, offset, what } => write!(
                f,
                "'{name}' (header at byte {offset}) is {what}, which this store cannot serve (archive it as a plain file)"
            ),
            Self::HardLink { name, offset, target } => write!(
                f,
                "'{name}' (header at byte {offset}) is a hard link to '{target}', which is no earlier file of the archive"
            ),
            Self::Conflict { key } => write!(f, "{key} is both a file and a directory in the tar image"),
        }
    }
}

impl core::error::Error for TarError {}

/// A value of the archive.
#[derive(Debug)]
struct Entry {
    key: Key,
    size: u64,
    /// Byte offset of its data on the device.
    offset: u64,
    mtime_ns: u64,
    /// SHA-256 of the data, once computed.
    digest: Cell<Option<[u8; 32]>>,
}

/// A read-only store over a tar image on a [`Block`]; see the crate docs.
pub struct TarKv<B> {
    dev: Lock<B>,
    info: BlockInfo,
    /// The values, sorted by key.
    entries: Vec<Entry>,
}

/// Read `out.len()` bytes at byte `offset`, a bounded number of sectors at a time.
async fn read_at<B: Block>(
    dev: &mut B,
    info: &BlockInfo,
    offset: u64,
    out: &mut [u8],
) -> Result<(), BlockError> {
    let ss = u64::from(info.sector_size);
    let mut scratch = Vec::new();
    let mut done = 0usize;
    while done < out.len() {
        let pos = offset + done as u64;
        let (sector, skip) = (pos / ss, (pos % ss) as usize);
        let want = out.len() - done;
        let max = (CHUNK as u64 / ss).max(1);
        let sectors = ((skip + want) as u64).div_ceil(ss).min(max);
        scratch.resize((sectors * ss) as usize, 0);
        dev.read(sector, &mut scratch).await?;
        let n = want.min(scratch.len() - skip);
        out[done..done + n].copy_from_slice(&scratch[skip..skip + n]);
        done += n;
    }
    Ok(())
}

fn io(e: BlockError) -> KvError {
    match e {
        BlockError::Io(code) => KvError::Io(code),
        _ => KvError::Io(5),
    }
}

/// The key a member's name stands for (`None`: the root, as `./` is), or why it has none.
fn member_key(name: &[u8], offset: u64) -> Result<Option<Key>, TarError> {
    let text = core::str::from_utf8(name).map_err(|_| TarError::NotUtf8 { name: shown(name), offset })?;
    let mut s = text.trim_start_matches('/');
    while let Some(rest) = s.strip_prefix("./") {
        s = rest.trim_start_matches('/');
    }
    if s == "." {
        s = "";
    }
    let s = s.trim_end_matches('/');
    if s.is_empty() {
        return Ok(None);
    }
    Key::parse(s).map(Some).map_err(|why| TarError::BadName { name: shown(name), offset, why })
}

/// What extended headers said about the member that follows them.
#[derive(Default)]
struct Pending {
    pax: Pax,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

/// A file found at open, before the index is sorted.
#[derive(Clone, Copy)]
struct Member {
    size: u64,
    offset: u64,
    mtime_ns: u64,
}

fn bad(offset: u64, b: Bad) -> TarError {
    match b {
        Bad::Checksum => TarError::Checksum { offset },
        Bad::Field(field) => TarError::Field { offset, field },
        Bad::Pax => TarError::Pax { offset },
    }
}

impl<B: Block> TarKv<B> {
    /// Index the tar image on `dev`: every header is read and checked, no data.
    pub async fn open(mut dev: B) -> Result<Self, TarError> {
        let info = dev.info();
        if info.sector_size == 0 {
            return Err(TarError::SectorSize);
        }
        let end = info.size_bytes();
        let mut files: BTreeMap<Key, Member> = BTreeMap::new();
        let mut dirs: Vec<Key> = Vec::new();
        let mut pending = Pending::default();
        let mut record = [0u8; RECORD as usize];
        let mut pos = 0u64;
        while pos + RECORD <= end {
            read_at(&mut dev, &info, pos, &mut record).await.map_err(TarError::Io)?;
            if header::is_zero(&record) {
                break;
            }
            let h = header::parse(&record).map_err(|b| bad(pos, b))?;
            let extended =
                matches!(h.kind, Type::PaxLocal | Type::PaxGlobal | Type::GnuLongName | Type::GnuLongLink);
            let size = if extended { h.size } else { pending.pax.size.unwrap_or(h.size) };
            let data = pos + RECORD;
            let next = size.div_ceil(RECORD).checked_mul(RECORD).and_then(|n| n.checked_add(data));
            let name_now =
                || shown(pending.pax.path.as_deref().or(pending.long_name.as_deref()).unwrap_or(&h.name));
            match next {
                Some(n) if n <= end => {}
                _ => {
                    let missing = next.map_or(u64::MAX, |n| n - end);
                    return Err(TarError::Truncated { name: name_now(), offset: pos, missing });
                }
            }
            if extended {
                if size > MAX_EXTENDED {
                    return Err(TarError::ExtendedTooLarge { offset: pos, size });
                }
                let mut buf = vec![0u8; size as usize];
                read_at(&mut dev, &info, data, &mut buf).await.map_err(TarError::Io)?;
                let cstr = |b: &[u8]| b[..b.iter().position(|c| *c == 0).unwrap_or(b.len())].to_vec();
                match h.kind {
                    Type::PaxLocal => header::pax(&buf, &mut pending.pax).map_err(|b| bad(pos, b))?,
                    Type::GnuLongName => pending.long_name = Some(cstr(&buf)),
                    Type::GnuLongLink => pending.long_link = Some(cstr(&buf)),
                    _ => {}
                }
            } else {
                let p = core::mem::take(&mut pending);
                let name = p.pax.path.or(p.long_name).unwrap_or(h.name);
                let link = p.pax.linkpath.or(p.long_link).unwrap_or(h.link);
                let mtime_ns = p.pax.mtime_ns.unwrap_or(h.mtime_ns);
                let kind = match h.kind {
                    _ if p.pax.sparse => Type::Unsupported("a GNU sparse file"),
                    // The v7 format had no directory type: a name ending in `/` was one.
                    Type::File if name.ends_with(b"/") => Type::Directory,
                    k => k,
                };
                match kind {
                    Type::File => match member_key(&name, pos)? {
                        Some(key) => {
                            files.insert(key, Member { size, offset: data, mtime_ns });
                        }
                        None => {
                            let why = KeyError::EmptySegment;
                            return Err(TarError::BadName { name: shown(&name), offset: pos, why });
                        }
                    },
                    Type::HardLink => {
                        let target = member_key(&link, pos)?.and_then(|t| files.get(&t).copied());
                        let (Some(key), Some(t)) = (member_key(&name, pos)?, target) else {
                            return Err(TarError::HardLink {
                                name: shown(&name),
                                offset: pos,
                                target: shown(&link),
                            });
                        };
                        files.insert(key, Member { mtime_ns, ..t });
                    }
                    Type::Directory => dirs.extend(member_key(&name, pos)?),
                    Type::Unsupported(what) => {
                        return Err(TarError::Unsupported { name: shown(&name), offset: pos, what });
                    }
                    _ => log::debug!("tar: '{}' is not a file or a directory: not a value", shown(&name)),
                }
            }
            pos = next.unwrap_or(end);
        }
        if let Some(key) = dirs.into_iter().find(|d| files.contains_key(d)) {
            return Err(TarError::Conflict { key });
        }
        let entries: Vec<Entry> = files
            .into_iter()
            .map(|(key, m)| Entry {
                key,
                size: m.size,
                offset: m.offset,
                mtime_ns: m.mtime_ns,
                digest: Cell::new(None),
            })
            .collect();
        // Sorted, a file's descendants would follow it at once.
        if let Some(w) = entries.windows(2).find(|w| w[0].key.is_prefix_of(&w[1].key)) {
            return Err(TarError::Conflict { key: w[0].key.clone() });
        }
        Ok(Self { dev: Lock::new(dev), info, entries })
    }

    /// Number of values in the archive.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the archive holds no value.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Give the device back.
    pub fn into_inner(self) -> B {
        self.dev.into_inner()
    }

    async fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), KvError> {
        let mut dev = self.dev.lock().await;
        read_at(&mut *dev, &self.info, offset, out).await.map_err(io)
    }

    /// The values strictly below `key`, contiguous in key order.
    fn below(&self, key: &Key) -> &[Entry] {
        let start = self.entries.partition_point(|e| e.key <= *key);
        let rest = &self.entries[start..];
        &rest[..rest.partition_point(|e| key.is_prefix_of(&e.key))]
    }

    fn kind(&self, key: &Key) -> Option<Kind> {
        if key.is_root() {
            Some(Kind::Dictionary)
        } else if self.entries.binary_search_by(|e| e.key.cmp(key)).is_ok() {
            Some(Kind::Value)
        } else if !self.below(key).is_empty() {
            Some(Kind::Dictionary)
        } else {
            None
        }
    }

    fn value(&self, key: &Key) -> Result<&Entry, KvError> {
        match self.entries.binary_search_by(|e| e.key.cmp(key)) {
            Ok(i) => Ok(&self.entries[i]),
            Err(_) if self.kind(key).is_some() => Err(KvError::ValueExpected(key.clone())),
            Err(_) => Err(KvError::NotFound(key.clone())),
        }
    }

    async fn value_digest(&self, e: &Entry) -> Result<[u8; 32], KvError> {
        if let Some(d) = e.digest.get() {
            return Ok(d);
        }
        let mut h = Sha256::new();
        let mut buf = vec![0u8; usize::try_from(e.size).unwrap_or(CHUNK).min(CHUNK)];
        let mut done = 0u64;
        while done < e.size {
            let n = buf.len().min(usize::try_from(e.size - done).unwrap_or(usize::MAX));
            self.read(e.offset + done, &mut buf[..n]).await?;
            h.update(&buf[..n]);
            done += n as u64;
        }
        let d: [u8; 32] = h.finalize().into();
        e.digest.set(Some(d));
        Ok(d)
    }

    /// A dictionary's digest, over its subtree in one pass: a hasher per open dictionary, each
    /// folded into its parent's when the walk leaves it (no recursion, however deep the keys).
    async fn dict_digest(&self, key: &Key) -> Result<[u8; 32], KvError> {
        let depth = key.segments().len();
        let mut open: Vec<(Sha256, &str)> = vec![(Sha256::new(), "")];
        fn close(open: &mut Vec<(Sha256, &str)>) {
            if let Some((h, name)) = open.pop()
                && let Some((parent, _)) = open.last_mut()
            {
                parent.update(name.as_bytes());
                parent.update([0, Kind::Dictionary as u8]);
                parent.update(h.finalize());
            }
        }
        for e in self.below(key) {
            let segs: Vec<&str> = e.key.segments().skip(depth).collect();
            let Some((name, dirs)) = segs.split_last() else { continue };
            let common = open[1..].iter().zip(dirs).take_while(|((_, a), b)| a == *b).count();
            while open.len() > common + 1 {
                close(&mut open);
            }
            open.extend(dirs[common..].iter().map(|d| (Sha256::new(), *d)));
            let digest = self.value_digest(e).await?;
            if let Some((h, _)) = open.last_mut() {
                h.update(name.as_bytes());
                h.update([0, Kind::Value as u8]);
                h.update(digest);
            }
        }
        while open.len() > 1 {
            close(&mut open);
        }
        Ok(open.pop().map(|(h, _)| h.finalize().into()).unwrap_or_default())
    }
}

impl<B: Block> KvRo for TarKv<B> {
    async fn exists(&self, key: &Key) -> Result<Option<Kind>, KvError> {
        Ok(self.kind(key))
    }

    async fn get(&self, key: &Key) -> Result<Vec<u8>, KvError> {
        self.get_partial(key, 0, usize::MAX).await
    }

    async fn get_partial(&self, key: &Key, offset: u64, len: usize) -> Result<Vec<u8>, KvError> {
        let e = self.value(key)?;
        let start = offset.min(e.size);
        let n = (e.size - start).min(len as u64);
        let mut out = vec![0u8; usize::try_from(n).map_err(|_| KvError::NoSpace)?];
        self.read(e.offset + start, &mut out).await?;
        Ok(out)
    }

    async fn list(&self, key: &Key) -> Result<Vec<(Key, Kind)>, KvError> {
        match self.kind(key) {
            Some(Kind::Dictionary) => {}
            Some(Kind::Value) => return Err(KvError::DictionaryExpected(key.clone())),
            None => return Err(KvError::NotFound(key.clone())),
        }
        let depth = key.segments().len();
        let mut out: Vec<(Key, Kind)> = Vec::new();
        for e in self.below(key) {
            let Some(name) = e.key.segments().nth(depth) else { continue };
            if out.last().is_some_and(|(c, _)| c.basename() == name) {
                continue;
            }
            let kind = if e.key.segments().len() == depth + 1 { Kind::Value } else { Kind::Dictionary };
            if let Ok(child) = key.join(name) {
                out.push((child, kind));
            }
        }
        Ok(out)
    }

    async fn size(&self, key: &Key) -> Result<u64, KvError> {
        Ok(self.value(key)?.size)
    }

    async fn last_modified(&self, key: &Key) -> Result<Duration, KvError> {
        let ns = match self.kind(key) {
            Some(Kind::Value) => self.value(key)?.mtime_ns,
            Some(Kind::Dictionary) => self.below(key).iter().map(|e| e.mtime_ns).max().unwrap_or(0),
            None => return Err(KvError::NotFound(key.clone())),
        };
        Ok(Duration::from_nanos(ns))
    }

    async fn digest(&self, key: &Key) -> Result<[u8; 32], KvError> {
        match self.kind(key) {
            Some(Kind::Value) => self.value_digest(self.value(key)?).await,
            Some(Kind::Dictionary) => self.dict_digest(key).await,
            None => Err(KvError::NotFound(key.clone())),
        }
    }
}
