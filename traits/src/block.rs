//! `Block`: a device of fixed-size sectors.
//!
//! Reads and writes cover a whole number of sectors starting at a sector index; `flush` is the
//! durability barrier (what was written before it survives a power cut once it returns).
//!
//! ```
//! use morgana::block::{Block, BlockError};
//!
//! /// Copy sector 0 to sector 1 and make it durable.
//! async fn copy_first<B: Block>(dev: &mut B) -> Result<(), BlockError> {
//!     let mut buf = vec![0u8; dev.info().sector_size as usize];
//!     dev.read(0, &mut buf).await?;
//!     dev.write(1, &buf).await?;
//!     dev.flush().await
//! }
//! ```

use core::fmt;

/// Geometry and mode of a block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// Bytes per sector (512 unless the device says otherwise).
    pub sector_size: u32,
    /// Number of sectors.
    pub sectors: u64,
    /// Whether writes are refused.
    pub read_only: bool,
}

impl BlockInfo {
    /// Capacity in bytes.
    pub const fn size_bytes(&self) -> u64 {
        self.sector_size as u64 * self.sectors
    }

    /// Check that `len` bytes at `sector` are whole sectors inside the device.
    pub fn check(&self, sector: u64, len: usize) -> Result<u64, BlockError> {
        let size = self.sector_size as usize;
        if size == 0 || !len.is_multiple_of(size) {
            return Err(BlockError::Misaligned { len, sector_size: self.sector_size });
        }
        let count = (len / size) as u64;
        match sector.checked_add(count) {
            Some(end) if end <= self.sectors => Ok(count),
            _ => Err(BlockError::OutOfRange { sector, count, sectors: self.sectors }),
        }
    }
}

/// Why a block operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockError {
    /// The request reaches past the last sector.
    OutOfRange {
        /// First sector asked for.
        sector: u64,
        /// Number of sectors asked for.
        count: u64,
        /// Sectors on the device.
        sectors: u64,
    },
    /// The buffer is not a whole number of sectors.
    Misaligned {
        /// Buffer length.
        len: usize,
        /// Sector size of the device.
        sector_size: u32,
    },
    /// The device is read-only.
    ReadOnly,
    /// The device failed; the code is the implementation's (an errno on unix, a virtio status).
    Io(i32),
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange { sector, count, sectors } => write!(
                f,
                "sectors {sector}..{} are out of range (device has {sectors})",
                sector.saturating_add(*count)
            ),
            Self::Misaligned { len, sector_size } => {
                write!(f, "{len} bytes is not a whole number of {sector_size}-byte sectors")
            }
            Self::ReadOnly => f.write_str("the block device is read-only"),
            Self::Io(code) => write!(f, "block device I/O error (code {code})"),
        }
    }
}

impl core::error::Error for BlockError {}

/// A block device.
pub trait Block {
    /// Sector size, sector count and mode.
    fn info(&self) -> BlockInfo;

    /// Read whole sectors starting at `sector` into `buf`.
    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError>;

    /// Write whole sectors from `buf` starting at `sector`.
    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError>;

    /// Make every completed write durable.
    async fn flush(&mut self) -> Result<(), BlockError>;
}

impl<T: Block + ?Sized> Block for &mut T {
    fn info(&self) -> BlockInfo {
        T::info(self)
    }
    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        T::read(self, sector, buf).await
    }
    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        T::write(self, sector, buf).await
    }
    async fn flush(&mut self) -> Result<(), BlockError> {
        T::flush(self).await
    }
}
