//! [`Block`] on a virtio-blk device.

use core::future::poll_fn;
use core::task::Poll;

use morgana::block::{Block, BlockError, BlockInfo};
use virtio_drivers::transport::Transport;
use virtio_drivers::{Error, Hal};

use crate::Interrupt;
use crate::sys::blk::{BlkQueue, CHUNK, F_FLUSH, F_RO, Op, SECTOR};

/// A virtio-blk disk. One request is in flight at a time; a larger read or write goes in chunks
/// of 64 KiB. Every request, `flush` included, completes by interrupt: the task sleeps until the
/// device answers.
///
/// `flush` is `VIRTIO_BLK_T_FLUSH`: when it returns, every write completed before it is on
/// stable storage. A device without `VIRTIO_BLK_F_FLUSH` has no such command;
/// [`missing`](Self::missing) says so (the platform prints it at start), and `flush` there only
/// waits for the writes in flight.
pub struct VirtioBlock<H: Hal, T: Transport, I: Interrupt> {
    q: BlkQueue<H, T>,
    line: I,
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

impl<H: Hal, T: Transport, I: Interrupt> VirtioBlock<H, T, I> {
    /// Initialise the virtio-blk device behind `transport`, which interrupts on `line`.
    pub fn new(transport: T, line: I) -> Result<Self, Error> {
        let q = BlkQueue::new(transport)?;
        let read_only = q.features().has(F_RO);
        let info = BlockInfo { sector_size: SECTOR as u32, sectors: q.sectors(), read_only };
        Ok(Self { q, line, info })
    }

    /// What this device lacks that a user should know, in one line; `None` if nothing.
    pub fn missing(&self) -> Option<&'static str> {
        (!self.q.features().has(F_FLUSH) && !self.info.read_only).then_some(
            "offers no flush (VIRTIO_BLK_F_FLUSH): writes cannot be made durable, flush only waits for them",
        )
    }

    /// Whether `flush` reaches the device as a cache flush.
    pub fn flushes(&self) -> bool {
        self.q.features().has(F_FLUSH)
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

    /// Hand the device one request and wait for its answer.
    async fn request(&mut self, op: Op, sector: u64, len: usize) -> Result<(), BlockError> {
        self.q.start(op, sector, len).map_err(io)?;
        self.wait().await.map_err(io)
    }
}

impl<H: Hal, T: Transport, I: Interrupt> Block for VirtioBlock<H, T, I> {
    fn info(&self) -> BlockInfo {
        self.info
    }

    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.info.check(sector, buf.len())?;
        let _ = self.wait().await;
        let mut at = sector;
        for chunk in buf.chunks_mut(CHUNK) {
            self.request(Op::Read, at, chunk.len()).await?;
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
        for chunk in buf.chunks(CHUNK) {
            self.q.data_mut(chunk.len()).copy_from_slice(chunk);
            self.request(Op::Write, at, chunk.len()).await?;
            at += (chunk.len() / SECTOR) as u64;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BlockError> {
        // Writes complete one at a time, so once the one in flight is done every write is in the
        // device's cache; the flush then asks for all of them to reach the disk.
        let _ = self.wait().await;
        if self.flushes() { self.request(Op::Flush, 0, 0).await } else { Ok(()) }
    }
}
