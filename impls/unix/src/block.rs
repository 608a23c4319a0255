//! `FileBlock`: a file or a host block device as a Morgana `Block`.
//!
//! Sectors are read and written with `pread`/`pwrite` at `sector * sector_size`; `flush` is
//! `fdatasync`, a real barrier: what was written before it is on the disk when it returns. A file
//! made by [`FileBlockOptions::create`] is synced with its directory before it is used. The device is as large as the file, which must be a whole, non-zero number of
//! sectors. [`FileBlockOptions::create`] makes a sparse file of a given size when none exists.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use morgana::block::{Block, BlockError, BlockInfo};

/// Why a block file could not be opened or created.
#[derive(Debug)]
pub enum FileBlockError {
    /// The file does not exist (and creating it was not asked for).
    NotFound(PathBuf),
    /// The file exists with a size other than the one asked for.
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Its size.
        actual: u64,
        /// The size asked for.
        wanted: u64,
    },
    /// A size that is not a whole, non-zero number of sectors.
    BadSize {
        /// The file.
        path: PathBuf,
        /// The size in bytes.
        size: u64,
        /// The sector size.
        sector_size: u32,
    },
    /// The sector size is not a power of two of at least 512.
    BadSectorSize(u32),
    /// The host refused.
    Io(PathBuf, io::Error),
}

impl fmt::Display for FileBlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(p) => write!(f, "{}: no such file", p.display()),
            Self::SizeMismatch { path, actual, wanted } => {
                write!(f, "{}: the file has {actual} bytes, not the {wanted} asked for", path.display())
            }
            Self::BadSize { path, size: 0, .. } => {
                write!(f, "{}: the image is empty (0 bytes)", path.display())
            }
            Self::BadSize { path, size, sector_size } => write!(
                f,
                "{}: {size} bytes is not a whole number of {sector_size}-byte sectors",
                path.display()
            ),
            Self::BadSectorSize(s) => write!(f, "sector size {s} is not a power of two of at least 512"),
            Self::Io(p, e) if e.kind() == io::ErrorKind::PermissionDenied => {
                write!(f, "{}: permission denied", p.display())
            }
            Self::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for FileBlockError {}

/// How to open a [`FileBlock`], in the manner of `std::fs::OpenOptions`.
#[derive(Debug, Clone, Copy)]
pub struct FileBlockOptions {
    read_only: bool,
    sector_size: u32,
    create: Option<u64>,
}

impl Default for FileBlockOptions {
    fn default() -> Self {
        Self { read_only: false, sector_size: 512, create: None }
    }
}

impl FileBlockOptions {
    /// Refuse writes (and open the file read-only).
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// Bytes per sector (512 by default).
    pub fn sector_size(mut self, bytes: u32) -> Self {
        self.sector_size = bytes;
        self
    }

    /// Create the file as a sparse file of `bytes` if it does not exist; if it does, it must
    /// have exactly that size.
    pub fn create(mut self, bytes: u64) -> Self {
        self.create = Some(bytes);
        self
    }

    /// Open `path` as a block device.
    pub fn open(self, path: impl AsRef<Path>) -> Result<FileBlock, FileBlockError> {
        let path = path.as_ref();
        let ss = self.sector_size;
        if ss < 512 || !ss.is_power_of_two() {
            return Err(FileBlockError::BadSectorSize(ss));
        }
        let whole = |size: u64| size > 0 && size.is_multiple_of(u64::from(ss));
        if let Some(size) = self.create
            && !whole(size)
        {
            return Err(FileBlockError::BadSize { path: path.into(), size, sector_size: ss });
        }
        let io_err = |e: io::Error| FileBlockError::Io(path.into(), e);
        let opened = OpenOptions::new().read(true).write(!self.read_only).open(path);
        let mut file = match (opened, self.create) {
            (Ok(f), _) => f,
            (Err(e), Some(size)) if e.kind() == io::ErrorKind::NotFound => {
                let f =
                    OpenOptions::new().read(true).write(true).create_new(true).open(path).map_err(io_err)?;
                // set_len on a new file allocates nothing: the image is sparse.
                f.set_len(size).map_err(io_err)?;
                // The new name must survive a power cut too, or the first flush protects data
                // in a file that may not exist afterwards.
                f.sync_all().map_err(io_err)?;
                let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                File::open(parent).and_then(|d| d.sync_all()).map_err(io_err)?;
                if self.read_only {
                    drop(f);
                    File::open(path).map_err(io_err)?
                } else {
                    f
                }
            }
            (Err(e), None) if e.kind() == io::ErrorKind::NotFound => {
                return Err(FileBlockError::NotFound(path.into()));
            }
            (Err(e), _) => return Err(io_err(e)),
        };
        // A host block device reports its size by seeking, not in its metadata.
        let size = file.seek(SeekFrom::End(0)).map_err(io_err)?;
        if let Some(wanted) = self.create
            && size != wanted
        {
            return Err(FileBlockError::SizeMismatch { path: path.into(), actual: size, wanted });
        }
        if !whole(size) {
            return Err(FileBlockError::BadSize { path: path.into(), size, sector_size: ss });
        }
        let info = BlockInfo { sector_size: ss, sectors: size / u64::from(ss), read_only: self.read_only };
        Ok(FileBlock { file, info, path: path.into() })
    }
}

/// A file (or host block device) of sectors.
#[derive(Debug)]
pub struct FileBlock {
    file: File,
    info: BlockInfo,
    path: PathBuf,
}

impl FileBlock {
    /// Options for opening a file: read-write, 512-byte sectors, no creation.
    pub fn options() -> FileBlockOptions {
        FileBlockOptions::default()
    }

    /// Open an existing file read-write with 512-byte sectors.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FileBlockError> {
        Self::options().open(path)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn io_error(e: io::Error) -> BlockError {
    // A file shrunk under our feet reads short: report it as the I/O error it is.
    BlockError::Io(e.raw_os_error().unwrap_or(libc::EIO))
}

impl Block for FileBlock {
    fn info(&self) -> BlockInfo {
        self.info
    }

    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.info.check(sector, buf.len())?;
        self.file.read_exact_at(buf, sector * u64::from(self.info.sector_size)).map_err(io_error)
    }

    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.info.read_only {
            return Err(BlockError::ReadOnly);
        }
        self.info.check(sector, buf.len())?;
        self.file.write_all_at(buf, sector * u64::from(self.info.sector_size)).map_err(io_error)
    }

    async fn flush(&mut self) -> Result<(), BlockError> {
        if self.info.read_only {
            return Ok(());
        }
        self.file.sync_data().map_err(io_error)
    }
}
