//! A RAM disk.

use alloc::vec;
use alloc::vec::Vec;

use morgana::block::{Block, BlockError, BlockInfo};

/// A block device in memory.
#[derive(Debug, Clone)]
pub struct MemBlock {
    info: BlockInfo,
    data: Vec<u8>,
}

impl MemBlock {
    /// A zeroed device of `sectors` sectors of `sector_size` bytes.
    pub fn new(sector_size: u32, sectors: u64) -> Self {
        let len = usize::try_from(u64::from(sector_size) * sectors).expect("fits in memory");
        Self { info: BlockInfo { sector_size, sectors, read_only: false }, data: vec![0; len] }
    }

    /// The same contents, refusing writes.
    pub fn read_only(mut self) -> Self {
        self.info.read_only = true;
        self
    }

    /// The raw contents.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    fn range(&self, sector: u64, len: usize) -> Result<core::ops::Range<usize>, BlockError> {
        self.info.check(sector, len)?;
        let start = sector as usize * self.info.sector_size as usize;
        Ok(start..start + len)
    }
}

impl Block for MemBlock {
    fn info(&self) -> BlockInfo {
        self.info
    }

    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let r = self.range(sector, buf.len())?;
        buf.copy_from_slice(&self.data[r]);
        Ok(())
    }

    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.info.read_only {
            return Err(BlockError::ReadOnly);
        }
        let r = self.range(sector, buf.len())?;
        self.data[r].copy_from_slice(buf);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BlockError> {
        Ok(())
    }
}
