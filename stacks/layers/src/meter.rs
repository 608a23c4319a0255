//! A block device that counts what passes through it.
//!
//! [`Metered`] wraps any [`Block`] and counts the reads, writes and flushes that reach it and
//! their bytes, for an app or a bench that wants to know what a store above costs the disk
//! (write amplification: [`BlockCounts::bytes_written`] over the bytes of value stored). The
//! store takes the device by value, so the counts are read through a [`Meter`], a handle kept
//! beside it.
//!
//! ```
//! use morgana::Block;
//! use morgana_layers::Metered;
//! use morgana_mem::MemBlock;
//!
//! # futures_lite(async {
//! let (mut disk, meter) = Metered::new(MemBlock::new(512, 64));
//! disk.write(3, &[7; 1024]).await.unwrap();
//! disk.flush().await.unwrap();
//! let counts = meter.counts();
//! assert_eq!((counts.writes, counts.bytes_written, counts.flushes), (1, 1024, 1));
//! # });
//! # fn futures_lite<F: core::future::Future>(f: F) -> F::Output {
//! #     let time = morgana_rt::VirtualTime::new();
//! #     morgana_rt::Executor::new(time.clone()).block_on(&mut time.park(), f).unwrap()
//! # }
//! ```

use alloc::rc::Rc;
use core::cell::Cell;

use morgana::block::{Block, BlockError, BlockInfo};

/// What has reached a [`Metered`] device's inner device. A call is counted when it returns;
/// one that failed is counted in [`BlockCounts::errors`] only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockCounts {
    /// Reads that succeeded.
    pub reads: u64,
    /// Bytes those reads returned.
    pub bytes_read: u64,
    /// Writes that succeeded.
    pub writes: u64,
    /// Bytes those writes took.
    pub bytes_written: u64,
    /// Flushes that succeeded.
    pub flushes: u64,
    /// Reads, writes and flushes that returned an error.
    pub errors: u64,
}

/// A handle on a [`Metered`] device's counts, for whoever gave the device away.
#[derive(Clone, Debug, Default)]
pub struct Meter(Rc<Cell<BlockCounts>>);

impl Meter {
    /// The counts so far.
    pub fn counts(&self) -> BlockCounts {
        self.0.get()
    }

    fn add(&self, ok: bool, count: impl FnOnce(&mut BlockCounts)) {
        let mut counts = self.0.get();
        if ok {
            count(&mut counts);
        } else {
            counts.errors += 1;
        }
        self.0.set(counts);
    }
}

/// Any [`Block`], counting what passes through it (see the [module docs](self)).
pub struct Metered<B> {
    inner: B,
    meter: Meter,
}

impl<B: Block> Metered<B> {
    /// Wrap `inner`; the [`Meter`] reads the counts wherever the device goes.
    pub fn new(inner: B) -> (Self, Meter) {
        let meter = Meter::default();
        (Self { inner, meter: meter.clone() }, meter)
    }

    /// The counts so far.
    pub fn counts(&self) -> BlockCounts {
        self.meter.counts()
    }

    /// The device inside.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Block> Block for Metered<B> {
    fn info(&self) -> BlockInfo {
        self.inner.info()
    }

    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let result = self.inner.read(sector, buf).await;
        self.meter.add(result.is_ok(), |c| {
            c.reads += 1;
            c.bytes_read += buf.len() as u64;
        });
        result
    }

    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        let result = self.inner.write(sector, buf).await;
        self.meter.add(result.is_ok(), |c| {
            c.writes += 1;
            c.bytes_written += buf.len() as u64;
        });
        result
    }

    async fn flush(&mut self) -> Result<(), BlockError> {
        let result = self.inner.flush().await;
        self.meter.add(result.is_ok(), |c| c.flushes += 1);
        result
    }
}
