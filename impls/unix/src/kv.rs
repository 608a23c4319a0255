//! `DirKv`: a host directory as a Morgana key-value store.
//!
//! A value is a regular file, a dictionary a directory holding at least one value somewhere
//! below it (an empty directory is not part of the store, so a dictionary disappears with its
//! last value, as Mirage_kv says). `set` writes a temporary file, fsyncs it, renames it over the
//! value and fsyncs the directory: a reader sees the old value or the new one, never a mix, and
//! the new one survives a crash once `set` returns. `last_modified` is the file's mtime (for a
//! dictionary, its newest value's) and `digest` is SHA-256.
//!
//! A key can never reach outside the root. A [`Key`] has no `..`, `.`, `/` or NUL segment, and
//! every segment is resolved one at a time, relative to the directory opened for the previous
//! one, with `O_NOFOLLOW`: a symlink inside the store is never followed (it is not part of the
//! store at all), whatever it points at and however it is swapped in.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use morgana::kv::{Key, Kind, KvError, KvRo, KvRw};
use sha2::{Digest, Sha256};

/// A directory used as a key-value store.
#[derive(Debug)]
pub struct DirKv {
    root: File,
    path: PathBuf,
}

/// Open a directory relative to `dir` without following a symlink in `name`.
fn open_dir_in(dir: &File, name: &OsStr) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(at(dir, name))
}

/// The path of `name` inside the directory `dir` is open on. `/proc/self/fd/N` resolves to the
/// open directory itself, so only `name` is looked up, and it has no `/`.
fn at(dir: &File, name: &OsStr) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(name);
    p
}

fn this(dir: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()))
}

fn seg(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn io_err(e: io::Error) -> KvError {
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => KvError::NoSpace,
        Some(code) => KvError::Io(code),
        None => KvError::Io(libc::EIO),
    }
}

/// What a name in a directory is, as far as the store is concerned.
enum Entry {
    Missing,
    Value(Metadata),
    /// A directory; whether it holds a value (is a dictionary) is checked separately.
    Dir,
    /// A symlink, device, socket or fifo: never part of the store.
    Other,
}

fn entry(dir: &File, name: &OsStr) -> io::Result<Entry> {
    match fs::symlink_metadata(at(dir, name)) {
        Ok(m) if m.file_type().is_file() => Ok(Entry::Value(m)),
        Ok(m) if m.file_type().is_dir() => Ok(Entry::Dir),
        Ok(_) => Ok(Entry::Other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Entry::Missing),
        Err(e) => Err(e),
    }
}

/// The UTF-8 names in `dir` with what they are; other names (our temporary files, names no key
/// can spell) are skipped. Sorted, as keys sort.
fn children(dir: &File) -> io::Result<Vec<(String, fs::FileType)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(this(dir))? {
        let e = e?;
        if let Ok(name) = e.file_name().into_string() {
            out.push((name, e.file_type()?));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Whether `dir` holds a value anywhere below it.
fn has_value(dir: &File) -> io::Result<bool> {
    for (name, ty) in children(dir)? {
        if ty.is_file() {
            return Ok(true);
        }
        if ty.is_dir() {
            match open_dir_in(dir, seg(&name)) {
                Ok(sub) if has_value(&sub)? => return Ok(true),
                Ok(_) => {}
                // Removed or replaced meanwhile: it holds nothing we can see.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(false)
}

/// The resolution of a key's parent directory.
enum Parent {
    Dir(File),
    /// Some prefix is missing (or is not part of the store).
    Missing,
    /// This prefix is a value.
    Value(Key),
}

/// What a key is bound to, and the directory and entry holding it (`None` for the root, or
/// when a prefix is missing).
type Lookup = (Option<Kind>, Option<(File, Entry)>);

fn mtime(m: &Metadata) -> Duration {
    m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default()
}

impl DirKv {
    /// Use the existing directory `path` as a store.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let root =
            OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(path)?;
        Ok(Self { root, path: path.into() })
    }

    /// Use the directory `path` as a store, creating it (and its parents) if needed.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        fs::create_dir_all(path.as_ref())?;
        Self::open(path)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Walk the directories of `key`'s segments but the last.
    fn parent(&self, key: &Key) -> Result<Parent, KvError> {
        let mut dir = self.root.try_clone().map_err(io_err)?;
        let mut prefix = Key::root();
        let n = key.segments().len().saturating_sub(1);
        for s in key.segments().take(n) {
            prefix = prefix.join(s).map_err(|_| KvError::NotFound(key.clone()))?;
            dir = match open_dir_in(&dir, seg(s)) {
                Ok(d) => d,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Parent::Missing),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {
                    return Ok(match entry(&dir, seg(s)).map_err(io_err)? {
                        Entry::Value(_) => Parent::Value(prefix),
                        _ => Parent::Missing,
                    });
                }
                Err(e) => return Err(io_err(e)),
            };
        }
        Ok(Parent::Dir(dir))
    }

    /// What `key` is bound to, with the directory holding it.
    fn lookup(&self, key: &Key) -> Result<Lookup, KvError> {
        if key.is_root() {
            return Ok((Some(Kind::Dictionary), None));
        }
        let Parent::Dir(dir) = self.parent(key)? else { return Ok((None, None)) };
        let e = entry(&dir, seg(key.basename())).map_err(io_err)?;
        let kind = match &e {
            Entry::Value(_) => Some(Kind::Value),
            Entry::Dir => match open_dir_in(&dir, seg(key.basename())) {
                Ok(d) if has_value(&d).map_err(io_err)? => Some(Kind::Dictionary),
                _ => None,
            },
            Entry::Missing | Entry::Other => None,
        };
        Ok((kind, Some((dir, e))))
    }

    /// The open directory of the dictionary `key`.
    fn dict(&self, key: &Key) -> Result<File, KvError> {
        match self.lookup(key)? {
            (Some(Kind::Dictionary), None) => self.root.try_clone().map_err(io_err),
            (Some(Kind::Dictionary), Some((dir, _))) => {
                open_dir_in(&dir, seg(key.basename())).map_err(io_err)
            }
            (Some(Kind::Value), _) => Err(KvError::DictionaryExpected(key.clone())),
            (None, _) => Err(KvError::NotFound(key.clone())),
        }
    }

    /// The open file of the value `key`.
    fn value(&self, key: &Key) -> Result<File, KvError> {
        match self.lookup(key)? {
            (Some(Kind::Value), Some((dir, _))) => OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(at(&dir, seg(key.basename())))
                .map_err(io_err),
            (Some(_), _) => Err(KvError::ValueExpected(key.clone())),
            (None, _) => Err(KvError::NotFound(key.clone())),
        }
    }

    /// The directory that will hold `key`, creating missing dictionaries on the way.
    fn make_parent(&self, key: &Key) -> Result<File, KvError> {
        let mut dir = self.root.try_clone().map_err(io_err)?;
        let mut prefix = Key::root();
        let n = key.segments().len().saturating_sub(1);
        for s in key.segments().take(n) {
            prefix = prefix.join(s).map_err(|_| KvError::NotFound(key.clone()))?;
            let mut created = false;
            dir = loop {
                match open_dir_in(&dir, seg(s)) {
                    Ok(d) => break d,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) && !created => {
                        match fs::create_dir(at(&dir, seg(s))) {
                            Ok(()) => created = true,
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => created = true,
                            Err(e) => return Err(io_err(e)),
                        }
                    }
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {
                        return Err(match entry(&dir, seg(s)).map_err(io_err)? {
                            Entry::Value(_) => KvError::DictionaryExpected(prefix),
                            // A symlink where a dictionary should be: never followed.
                            _ => KvError::Io(libc::ELOOP),
                        });
                    }
                    Err(e) => return Err(io_err(e)),
                }
            };
        }
        Ok(dir)
    }

    /// The first prefix of `key` (root excluded, `key` excluded) that is a value.
    fn value_ancestor(&self, key: &Key) -> Result<Option<Key>, KvError> {
        match self.parent(key)? {
            Parent::Value(k) => Ok(Some(k)),
            _ => Ok(None),
        }
    }

    fn temp_name(&self) -> OsString {
        // Unique in the process (stores on the same directory may live in several threads).
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        // Not valid UTF-8, so no key can name it and listings skip it.
        let mut name = b".morgana-tmp-\xff".to_vec();
        name.extend_from_slice(format!("{}-{n}", std::process::id()).as_bytes());
        OsString::from_vec(name)
    }

    /// Bind `name` in `dir` to a new file that `fill` writes: temporary file, fsync, rename,
    /// fsync of the directory.
    fn replace(
        &self,
        dir: &File,
        name: &str,
        fill: impl FnOnce(&File) -> io::Result<()>,
    ) -> Result<(), KvError> {
        let temp = self.temp_name();
        let temp_path = at(dir, &temp);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp_path)
            .map_err(io_err)?;
        let written = fill(&file)
            .and_then(|()| file.sync_all())
            .and_then(|()| {
                // An empty directory in the way is not part of the store: clear it.
                if let Ok(Entry::Dir) = entry(dir, seg(name)) {
                    fs::remove_dir_all(at(dir, seg(name)))?;
                }
                fs::rename(&temp_path, at(dir, seg(name)))
            })
            .and_then(|()| dir.sync_all());
        if written.is_err() {
            let _ = fs::remove_file(&temp_path);
        }
        written.map_err(io_err)
    }

    /// Check that `key` may be bound to a value: no value above it, no dictionary at it.
    fn check_settable(&self, key: &Key) -> Result<(), KvError> {
        if key.is_root() {
            return Err(KvError::ValueExpected(key.clone()));
        }
        if let Some(a) = self.value_ancestor(key)? {
            return Err(KvError::DictionaryExpected(a));
        }
        if self.lookup(key)?.0 == Some(Kind::Dictionary) {
            return Err(KvError::ValueExpected(key.clone()));
        }
        Ok(())
    }

    /// Remove the ancestors of `key` (root excluded) that no longer hold a value.
    fn prune(&self, key: &Key) -> Result<(), KvError> {
        let mut k = key.parent();
        while !k.is_root() {
            match self.lookup(&k)? {
                (Some(_), _) => return Ok(()),
                (None, Some((dir, Entry::Dir))) => {
                    fs::remove_dir_all(at(&dir, seg(k.basename()))).map_err(io_err)?;
                }
                _ => {}
            }
            k = k.parent();
        }
        Ok(())
    }

    /// Remove whatever `name` is in `dir`.
    fn remove_in(dir: &File, name: &OsStr) -> io::Result<()> {
        match entry(dir, name)? {
            Entry::Dir => fs::remove_dir_all(at(dir, name)),
            Entry::Missing => Ok(()),
            _ => fs::remove_file(at(dir, name)),
        }
    }

    fn max_mtime(dir: &File) -> io::Result<Duration> {
        let mut latest = Duration::ZERO;
        for (name, ty) in children(dir)? {
            if ty.is_file() {
                if let Entry::Value(m) = entry(dir, seg(&name))? {
                    latest = latest.max(mtime(&m));
                }
            } else if ty.is_dir() {
                latest = latest.max(Self::max_mtime(&open_dir_in(dir, seg(&name))?)?);
            }
        }
        Ok(latest)
    }

    fn dict_digest(dir: &File) -> io::Result<[u8; 32]> {
        let mut h = Sha256::new();
        for (name, ty) in children(dir)? {
            let (kind, digest) = if ty.is_file() {
                let f = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(at(dir, seg(&name)))?;
                (Kind::Value, file_digest(f)?)
            } else if ty.is_dir() {
                let sub = open_dir_in(dir, seg(&name))?;
                if !has_value(&sub)? {
                    continue;
                }
                (Kind::Dictionary, Self::dict_digest(&sub)?)
            } else {
                continue;
            };
            h.update(name.as_bytes());
            h.update([0, kind as u8]);
            h.update(digest);
        }
        Ok(h.finalize().into())
    }
}

fn file_digest(mut f: File) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(h.finalize().into()),
            n => h.update(&buf[..n]),
        }
    }
}

impl KvRo for DirKv {
    async fn exists(&self, key: &Key) -> Result<Option<Kind>, KvError> {
        Ok(self.lookup(key)?.0)
    }

    async fn get(&self, key: &Key) -> Result<Vec<u8>, KvError> {
        let mut f = self.value(key)?;
        let mut out = Vec::new();
        f.read_to_end(&mut out).map_err(io_err)?;
        Ok(out)
    }

    async fn get_partial(&self, key: &Key, offset: u64, len: usize) -> Result<Vec<u8>, KvError> {
        let f = self.value(key)?;
        let size = f.metadata().map_err(io_err)?.len();
        let len = usize::try_from(size.saturating_sub(offset)).unwrap_or(usize::MAX).min(len);
        let mut out = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match f.read_at(&mut out[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        out.truncate(got);
        Ok(out)
    }

    async fn list(&self, key: &Key) -> Result<Vec<(Key, Kind)>, KvError> {
        let dir = self.dict(key)?;
        let mut out = Vec::new();
        for (name, ty) in children(&dir).map_err(io_err)? {
            let kind = if ty.is_file() {
                Kind::Value
            } else if ty.is_dir()
                && has_value(&open_dir_in(&dir, seg(&name)).map_err(io_err)?).map_err(io_err)?
            {
                Kind::Dictionary
            } else {
                continue;
            };
            if let Ok(child) = key.join(&name) {
                out.push((child, kind));
            }
        }
        Ok(out)
    }

    async fn size(&self, key: &Key) -> Result<u64, KvError> {
        Ok(self.value(key)?.metadata().map_err(io_err)?.len())
    }

    async fn last_modified(&self, key: &Key) -> Result<Duration, KvError> {
        match self.lookup(key)? {
            (Some(Kind::Value), Some((_, Entry::Value(m)))) => Ok(mtime(&m)),
            (Some(_), _) => Self::max_mtime(&self.dict(key)?).map_err(io_err),
            (None, _) => Err(KvError::NotFound(key.clone())),
        }
    }

    async fn digest(&self, key: &Key) -> Result<[u8; 32], KvError> {
        match self.lookup(key)?.0 {
            Some(Kind::Value) => file_digest(self.value(key)?).map_err(io_err),
            Some(Kind::Dictionary) => Self::dict_digest(&self.dict(key)?).map_err(io_err),
            None => Err(KvError::NotFound(key.clone())),
        }
    }
}

impl KvRw for DirKv {
    async fn set(&self, key: &Key, value: &[u8]) -> Result<(), KvError> {
        self.check_settable(key)?;
        let dir = self.make_parent(key)?;
        self.replace(&dir, key.basename(), |f| f.write_all_at(value, 0))
    }

    async fn set_partial(&self, key: &Key, offset: u64, data: &[u8]) -> Result<(), KvError> {
        self.check_settable(key)?;
        let old = match self.value(key) {
            Ok(f) => Some(f),
            Err(KvError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let dir = self.make_parent(key)?;
        // Copy, patch, then swap in: readers never see a half-patched value.
        self.replace(&dir, key.basename(), |f| {
            if let Some(mut old) = old {
                io::copy(&mut old, &mut &*f)?;
            }
            f.write_all_at(data, offset)
        })
    }

    async fn remove(&self, key: &Key) -> Result<(), KvError> {
        if key.is_root() {
            for (name, _) in children(&self.root).map_err(io_err)? {
                Self::remove_in(&self.root, seg(&name)).map_err(io_err)?;
            }
            return self.root.sync_all().map_err(io_err);
        }
        match self.lookup(key)? {
            (None, _) | (_, None) => return Err(KvError::NotFound(key.clone())),
            (Some(_), Some((dir, _))) => {
                Self::remove_in(&dir, seg(key.basename())).map_err(io_err)?;
                dir.sync_all().map_err(io_err)?;
            }
        }
        self.prune(key)
    }

    async fn rename(&self, source: &Key, dest: &Key) -> Result<(), KvError> {
        let (kind, held) = self.lookup(source)?;
        if kind.is_none() {
            return Err(KvError::NotFound(source.clone()));
        }
        if source == dest {
            return Ok(());
        }
        if source.is_prefix_of(dest) {
            return Err(KvError::RenameSourcePrefix { source: source.clone(), dest: dest.clone() });
        }
        if let Some(a) = self.value_ancestor(dest)? {
            return Err(KvError::DictionaryExpected(a));
        }
        if dest.is_root() && kind == Some(Kind::Value) {
            return Err(KvError::ValueExpected(Key::root()));
        }
        // The root is a prefix of everything, so `source` is not the root here.
        let Some((src_dir, _)) = held else { return Err(KvError::NotFound(source.clone())) };
        // Park the source under a name no key can spell, clear the destination (which may
        // contain the source's old place), then move it in.
        let parked = self.temp_name();
        fs::rename(at(&src_dir, seg(source.basename())), at(&self.root, &parked)).map_err(io_err)?;
        let moved = (|| {
            if dest.is_root() {
                // The dictionary becomes the whole store.
                for (name, _) in children(&self.root).map_err(io_err)? {
                    Self::remove_in(&self.root, seg(&name)).map_err(io_err)?;
                }
                let parked_dir = open_dir_in(&self.root, &parked).map_err(io_err)?;
                for (name, _) in children(&parked_dir).map_err(io_err)? {
                    fs::rename(at(&parked_dir, seg(&name)), at(&self.root, seg(&name))).map_err(io_err)?;
                }
                fs::remove_dir(at(&self.root, &parked)).map_err(io_err)?;
                return self.root.sync_all().map_err(io_err);
            }
            let dst_dir = self.make_parent(dest)?;
            Self::remove_in(&dst_dir, seg(dest.basename())).map_err(io_err)?;
            fs::rename(at(&self.root, &parked), at(&dst_dir, seg(dest.basename()))).map_err(io_err)?;
            dst_dir.sync_all().map_err(io_err)
        })();
        if moved.is_err() {
            // Put it back where it was; the store is as before the call.
            let _ = fs::rename(at(&self.root, &parked), at(&src_dir, seg(source.basename())));
        }
        moved?;
        self.prune(source)
    }

    async fn allocate(&self, key: &Key, size: u64) -> Result<(), KvError> {
        if let Some(a) = self.value_ancestor(key)? {
            return Err(KvError::DictionaryExpected(a));
        }
        if self.lookup(key)?.0.is_some() {
            return Err(KvError::AlreadyPresent(key.clone()));
        }
        let dir = self.make_parent(key)?;
        self.replace(&dir, key.basename(), |f| f.set_len(size))
    }
}
