//! [`Block`] on a virtio-blk device.

use core::future::poll_fn;
use core::task::Poll;

use morgana::block::{Block, BlockError, BlockInfo};

use crate::irq::IrqLine;
use crate::sys::virtio::{BLK_CHUNK, BlkQueue, Error};

/// Sector size virtio-blk addresses in.
const SECTOR: usize = 512;

/// A virtio-blk disk (over virtio-mmio or virtio-pci). One request is in flight at a time; a
/// larger read or write goes in chunks of 64 KiB.
pub struct VirtioBlock {
    q: BlkQueue,
    line: IrqLine,
    info: BlockInfo,
}

fn io(e: Error) -> BlockError {
    // Small stable codes for the virtio-drivers error kinds (errno-like where one fits).
    BlockError::Io(match e {
        Error::IoError => 5,
        Error::NotReady => 11,
        Error::InvalidParam => 22,
        Error::Unsupported => 95,
        Error::QueueFull => 105,
        _ => 1,
    })
}

impl VirtioBlock {
    pub(crate) fn new(q: BlkQueue, line: IrqLine) -> Self {
        let info = BlockInfo { sector_size: SECTOR as u32, sectors: q.sectors(), read_only: q.read_only() };
        Self { q, line, info }
    }

    /// Wait for the request in flight (a cancelled call may have left one) and return its result.
    async fn wait(&mut self) -> Result<(), Error> {
        let (q, line) = (&mut self.q, &self.line);
        poll_fn(|cx| {
            line.service(cx.waker(), || q.ack());
            match q.poll() {
                Some(r) => Poll::Ready(r),
                None if !q.busy() => Poll::Ready(Ok(())),
                None => Poll::Pending,
            }
        })
        .await
    }
}

impl Block for VirtioBlock {
    fn info(&self) -> BlockInfo {
        self.info
    }

    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.info.check(sector, buf.len())?;
        let _ = self.wait().await;
        let mut at = sector;
        for chunk in buf.chunks_mut(BLK_CHUNK) {
            self.q.start_read(at, chunk.len()).map_err(io)?;
            self.wait().await.map_err(io)?;
            chunk.copy_from_slice(self.q.data(chunk.len()));
            at += (chunk.len() / SECTOR) as u64;
        }
        Ok(())
    }

    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.info.read_only {
            return Err(BlockError::ReadOnly);
        }
        self.info.check(sector, buf.len())?;
        let _ = self.wait().await;
        let mut at = sector;
        for chunk in buf.chunks(BLK_CHUNK) {
            self.q.start_write(at, chunk).map_err(io)?;
            self.wait().await.map_err(io)?;
            at += (chunk.len() / SECTOR) as u64;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BlockError> {
        let _ = self.wait().await;
        self.q.flush().map_err(io)
    }
}
