//! Failing, torn and lost writes around any `Block`.

use alloc::vec;
use alloc::vec::Vec;

use morgana::block::{Block, BlockError, BlockInfo};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// The errno a failed write reports (EIO).
const EIO: i32 = 5;

/// What a simulated power cut did to the writes that were not flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PowerCut {
    /// Sectors written since the last flush.
    pub unflushed: u64,
    /// Of those, sectors that reverted to their old contents.
    pub lost: u64,
    /// Of those, sectors left half old and half new.
    pub torn: u64,
}

struct Undo {
    sector: u64,
    old: Vec<u8>,
}

/// A `Block` that fails after a number of writes and, on a simulated power cut, loses or tears
/// the writes that were not flushed.
///
/// Writes go through to `inner` at once and are remembered until the next flush; a
/// [`power_cut`](Self::power_cut) rolls each unflushed sector back (lost), keeps it, or keeps a
/// prefix of it (torn), as drawn from the seed.
pub struct FaultyBlock<B> {
    inner: B,
    rng: ChaCha8Rng,
    undo: Vec<Undo>,
    writes: u64,
    fail_after: Option<u64>,
    lose: f64,
    tear: f64,
}

impl<B: Block> FaultyBlock<B> {
    /// Wrap `inner` with faults drawn from `seed`. By default nothing fails and a power cut loses
    /// every unflushed write.
    pub fn new(inner: B, seed: u64) -> Self {
        Self {
            inner,
            rng: ChaCha8Rng::seed_from_u64(seed),
            undo: Vec::new(),
            writes: 0,
            fail_after: None,
            lose: 1.0,
            tear: 0.0,
        }
    }

    /// Fail every write after the first `n` (with an I/O error), as a dying disk does.
    pub fn fail_after_writes(mut self, n: u64) -> Self {
        self.fail_after = Some(n);
        self
    }

    /// On a power cut, lose each unflushed sector with probability `lose` and tear each one that
    /// is not lost with probability `tear`.
    pub fn power_cut_faults(mut self, lose: f64, tear: f64) -> Self {
        self.lose = lose;
        self.tear = tear;
        self
    }

    /// Successful writes so far.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Simulate losing power: apply the configured faults to every unflushed sector.
    pub async fn power_cut(&mut self) -> Result<PowerCut, BlockError> {
        let mut report = PowerCut { unflushed: self.undo.len() as u64, ..PowerCut::default() };
        let undo = core::mem::take(&mut self.undo);
        // Newest first, so a sector written twice ends at its oldest unflushed contents.
        for u in undo.into_iter().rev() {
            if self.chance(self.lose) {
                self.inner.write(u.sector, &u.old).await?;
                report.lost += 1;
            } else if self.chance(self.tear) {
                let mut now = vec![0u8; u.old.len()];
                self.inner.read(u.sector, &mut now).await?;
                let cut = 1 + (self.rng.next_u64() as usize % (u.old.len() - 1));
                now[cut..].copy_from_slice(&u.old[cut..]);
                self.inner.write(u.sector, &now).await?;
                report.torn += 1;
            }
        }
        self.inner.flush().await?;
        Ok(report)
    }

    /// The wrapped device.
    pub fn into_inner(self) -> B {
        self.inner
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

impl<B: Block> Block for FaultyBlock<B> {
    fn info(&self) -> BlockInfo {
        self.inner.info()
    }

    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.inner.read(sector, buf).await
    }

    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        let info = self.inner.info();
        if info.read_only {
            return Err(BlockError::ReadOnly);
        }
        let count = info.check(sector, buf.len())?;
        if self.fail_after.is_some_and(|n| self.writes >= n) {
            return Err(BlockError::Io(EIO));
        }
        let ss = info.sector_size as usize;
        for i in 0..count {
            let mut old = vec![0u8; ss];
            self.inner.read(sector + i, &mut old).await?;
            self.undo.push(Undo { sector: sector + i, old });
        }
        self.inner.write(sector, buf).await?;
        self.writes += 1;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BlockError> {
        self.inner.flush().await?;
        self.undo.clear();
        Ok(())
    }
}
