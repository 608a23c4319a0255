//! # morgana-kvtool: host tools over a `morgana-store` image
//!
//! The image a unikernel keeps its store on (`--block FILE` on a host, the virtio-blk disk on
//! bare metal) is an ordinary file: these functions read and write it from the host, through
//! the same [`Store`] over a [`FileBlock`] (`fdatasync` after every change, so an image is
//! consistent whenever a command returns). `cargo xtask kv ...` is a thin front end over them,
//! and so is the installed tool.
//!
//! | function | command |
//! |---|---|
//! | [`mkfs`] | `kv mkfs IMAGE --size SIZE`: a new, empty store in a new (sparse) file |
//! | [`Image::put`] | `kv put IMAGE KEY FILE` |
//! | [`Image::get`] | `kv get IMAGE KEY` (to stdout, streamed) |
//! | [`Image::list`] | `kv ls IMAGE [DIR]` |
//! | [`Image::import`] | `kv import IMAGE DIR`: every file below `DIR`, as keys relative to it |
//! | [`Image::export`] | `kv export IMAGE DIR`: every value, as files below `DIR` |
//! | [`Image::check`] | `kv check IMAGE`: every checksum, index and data |
//!
//! [`cli::Command`] is the same as a clap subcommand, and [`cli::run`] runs it. Every error is
//! one line ([`Error`]) naming the image or the argument. Commands that only read open the
//! image read-only and never write to it (a blank file is refused, not formatted); only
//! `mkfs`, `put` and `import` write.

pub mod cli;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use futures::executor::block_on;
use morgana::kv::{Key, Kind, KvError, KvRo, KvRw};
use morgana::time::WallClock;
use morgana_store::{Batch, OpenReport, Store};
use morgana_unix::FileBlock;

/// Bytes read from the image at a time by `get`, `export` and `check`.
const CHUNK: usize = 1 << 20;

/// A value `import` commits in a batch of its own rather than with its neighbours.
const BATCH_BYTES: usize = 16 << 20;

/// A failed command: one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err(msg: impl Into<String>) -> Error {
    Error(msg.into())
}

/// The host's real-time clock, for the values' modification times.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wall;

impl WallClock for Wall {
    fn now_unix(&self) -> Duration {
        std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
    }
}

/// Parse a key given on the command line (`/a/b` or `a/b`).
pub fn key(s: &str) -> Result<Key, Error> {
    Key::parse(s).map_err(|e| err(format!("'{s}' is not a valid key: {e}")))
}

/// Make a new image of `size` bytes at `path` (sparse) holding an empty store. An existing file
/// is never overwritten.
pub fn mkfs(path: &Path, size: u64) -> Result<(), Error> {
    if path.exists() {
        return Err(err(format!("{}: exists; mkfs makes a new image (remove it first)", path.display())));
    }
    if size == 0 || !size.is_multiple_of(512) {
        return Err(err(format!("--size {size}: expected a whole number of 512-byte sectors, like 16M")));
    }
    let dev = FileBlock::options().create(size).open(path).map_err(|e| err(e.to_string()))?;
    match block_on(Store::open(dev, Wall)) {
        Ok(store) if store.report().formatted => Ok(()),
        Ok(_) => Err(err(format!("{}: was not formatted", path.display()))),
        Err(e) => {
            let _ = std::fs::remove_file(path);
            Err(err(format!("{}: {e}", path.display())))
        }
    }
}

/// What `check` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Check {
    /// Values read whole and intact.
    pub values: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Damage, one line each: pages of the index and the values or dictionaries they made
    /// unreadable.
    pub damaged: Vec<String>,
    /// What recovery repaired or rolled back on its own, which loses nothing acknowledged.
    pub notes: Vec<String>,
}

impl Check {
    /// Whether nothing is damaged.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// An open image.
pub struct Image {
    store: Store<FileBlock, Wall>,
    path: PathBuf,
}

impl Image {
    /// Open the store in the image at `path`, read-only unless `write`. A blank image is
    /// formatted only when opened for writing.
    pub fn open(path: &Path, write: bool) -> Result<Self, Error> {
        let dev = FileBlock::options().read_only(!write).open(path).map_err(|e| err(e.to_string()))?;
        let store = block_on(Store::open(dev, Wall)).map_err(|e| err(format!("{}: {e}", path.display())))?;
        Ok(Self { store, path: path.to_path_buf() })
    }

    /// What recovery found when the image was opened.
    pub fn report(&self) -> &OpenReport {
        self.store.report()
    }

    fn fail(&self, e: KvError) -> Error {
        err(format!("{}: {e}", self.path.display()))
    }

    /// Store the bytes of the file `file` under `key`, durably.
    pub fn put(&self, key: &Key, file: &Path) -> Result<(), Error> {
        let data = std::fs::read(file).map_err(|e| err(format!("{}: {e}", file.display())))?;
        block_on(self.store.set(key, &data)).map_err(|e| self.fail(e))
    }

    /// Write the value under `key` to `out`, a piece at a time.
    pub fn get(&self, key: &Key, out: &mut impl Write) -> Result<u64, Error> {
        let size = block_on(self.store.size(key)).map_err(|e| self.fail(e))?;
        let mut done = 0u64;
        while done < size {
            let piece = block_on(self.store.get_partial(key, done, CHUNK)).map_err(|e| self.fail(e))?;
            if piece.is_empty() {
                break;
            }
            out.write_all(&piece).map_err(|e| err(format!("writing {key}: {e}")))?;
            done += piece.len() as u64;
        }
        out.flush().map_err(|e| err(format!("writing {key}: {e}")))?;
        Ok(done)
    }

    /// The entries of the dictionary `dir` (every one below it when `recursive`), with the size
    /// of each value.
    pub fn list(&self, dir: &Key, recursive: bool) -> Result<Vec<(Key, Kind, u64)>, Error> {
        let mut out = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            let mut entries = block_on(self.store.list(&d)).map_err(|e| self.fail(e))?;
            let mut below = Vec::new();
            for (key, kind) in entries.drain(..) {
                let size = match kind {
                    Kind::Value => block_on(self.store.size(&key)).map_err(|e| self.fail(e))?,
                    Kind::Dictionary => 0,
                };
                if recursive && kind == Kind::Dictionary {
                    below.push(key.clone());
                }
                out.push((key, kind, size));
            }
            stack.extend(below.into_iter().rev());
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Store every regular file below `dir` under its path relative to `dir`, in batches (each
    /// all or nothing); the number of files.
    pub fn import(&self, dir: &Path) -> Result<u64, Error> {
        let mut files = Vec::new();
        walk(dir, &Key::root(), &mut files)?;
        files.sort();
        let (mut batch, mut bytes, mut count) = (Batch::new(), 0usize, 0u64);
        for (key, path) in files {
            let data = std::fs::read(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
            bytes += data.len();
            batch.set(key, data);
            count += 1;
            if bytes >= BATCH_BYTES || batch.len() >= 1000 {
                block_on(self.store.batch(&batch)).map_err(|e| self.fail(e))?;
                (batch, bytes) = (Batch::new(), 0);
            }
        }
        if !batch.is_empty() {
            block_on(self.store.batch(&batch)).map_err(|e| self.fail(e))?;
        }
        Ok(count)
    }

    /// Write every value as a file below `dir` (created if missing; files there are
    /// replaced); the number of files.
    pub fn export(&self, dir: &Path) -> Result<u64, Error> {
        let mut count = 0;
        for (key, kind, _) in self.list(&Key::root(), true)? {
            let path = key.segments().fold(dir.to_path_buf(), |p, s| p.join(s));
            let io = |e: std::io::Error| err(format!("{}: {e}", path.display()));
            match kind {
                Kind::Dictionary => std::fs::create_dir_all(&path).map_err(io)?,
                Kind::Value => {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(io)?;
                    }
                    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
                    self.get(&key, &mut f)?;
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    /// Verify every checksum: the index (read at open), then every byte of every value; what is
    /// damaged, and what is intact.
    pub fn check(&self) -> Check {
        let r = self.report();
        let mut c = Check::default();
        for page in &r.damaged {
            c.damaged.push(format!("page {page} of the index fails its checksum"));
        }
        if r.torn_tail {
            c.notes.push("the last commit was cut short (a power cut or a kill) and rolled back".into());
        }
        if !r.repaired.is_empty() {
            c.notes.push(format!(
                "{} page(s) of the last commit rebuilt from its parity (the next write to the image rewrites them)",
                r.repaired.len()
            ));
        }
        if r.damaged_records > 0 {
            c.notes.push(format!(
                "{} header or commit-record copy(ies) damaged, the other copy intact",
                r.damaged_records
            ));
        }
        let mut stack = vec![Key::root()];
        while let Some(dir) = stack.pop() {
            let entries = match block_on(self.store.list(&dir)) {
                Ok(e) => e,
                Err(e) => {
                    c.damaged.push(format!("{dir}/: cannot be listed: {e}"));
                    continue;
                }
            };
            for (key, kind) in entries {
                match kind {
                    Kind::Dictionary => stack.push(key),
                    Kind::Value => match self.read_whole(&key) {
                        Ok(n) => {
                            c.values += 1;
                            c.bytes += n;
                        }
                        Err(e) => c.damaged.push(e.to_string()),
                    },
                }
            }
        }
        c
    }

    fn read_whole(&self, key: &Key) -> Result<u64, KvError> {
        let size = block_on(self.store.size(key))?;
        let mut done = 0u64;
        while done < size {
            let n = block_on(self.store.get_partial(key, done, CHUNK))?.len();
            if n == 0 {
                break;
            }
            done += n as u64;
        }
        // The digest reads the value again, through the same checks, as a server's ETag does.
        block_on(self.store.digest(key))?;
        Ok(done)
    }
}

/// The regular files below `dir`, with their keys below `at`.
fn walk(dir: &Path, at: &Key, out: &mut Vec<(Key, PathBuf)>) -> Result<(), Error> {
    let io = |e: std::io::Error| err(format!("{}: {e}", dir.display()));
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(|| err(format!("{}: the name is not UTF-8", path.display())))?;
        let key = at.join(name).map_err(|e| err(format!("{}: not a valid key: {e}", path.display())))?;
        let ty = entry.file_type().map_err(io)?;
        if ty.is_dir() {
            walk(&path, &key, out)?;
        } else if ty.is_file() {
            out.push((key, path));
        }
    }
    Ok(())
}
