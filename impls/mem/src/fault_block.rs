//! A `Block` that fails the way real disks do, around any `Block`.
//!
//! It models TigerBeetle's storage fault model on a disk with a volatile write cache:
//!
//! - **Power cuts.** Writes since the last flush are pending: at [`FaultyBlock::power_cut`] each
//!   pending sector independently survives, is lost (reverts to what it held before), or tears
//!   (a prefix new, the rest old). Independent choices mean pending writes persist in any order
//!   and any subset: a later write may survive where an earlier one was lost.
//! - **Read faults.** A read may return a sector with a flipped bit, or another sector's data (a
//!   misdirected read); nothing on the disk changes.
//! - **Misdirected writes.** A write may land on other sectors than asked, leaving the intended
//!   ones untouched.
//! - **Rot.** [`FaultyBlock::rot`] flips a bit at rest, durably.
//! - **Dying disks.** Every write after the first `n` fails.

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

#[derive(Clone)]
struct Undo {
    sector: u64,
    old: Vec<u8>,
}

/// Faults injected so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockFaults {
    /// Sectors read back with a flipped bit.
    pub flipped: u64,
    /// Sectors read back with another sector's data.
    pub misdirected_reads: u64,
    /// Writes that landed elsewhere.
    pub misdirected_writes: u64,
}

/// A `Block` with seeded faults (see the module docs): failing, lost, torn and misdirected
/// writes, flipped and misdirected reads.
///
/// Writes go through to `inner` at once and are remembered until the next flush; a
/// [`power_cut`](Self::power_cut) rolls each unflushed sector back (lost), keeps it, or keeps a
/// prefix of it (torn), as drawn from the seed. Clone it (with a `Clone` inner device) to cut
/// the power on a copy and carry on with the original.
#[derive(Clone)]
pub struct FaultyBlock<B> {
    inner: B,
    rng: ChaCha8Rng,
    undo: Vec<Undo>,
    writes: u64,
    flushes: u64,
    fail_after: Option<u64>,
    lose: f64,
    tear: f64,
    flip: f64,
    misread: f64,
    miswrite: f64,
    misdirect_at: Option<u64>,
    faults: BlockFaults,
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
            flushes: 0,
            fail_after: None,
            lose: 1.0,
            tear: 0.0,
            flip: 0.0,
            misread: 0.0,
            miswrite: 0.0,
            misdirect_at: None,
            faults: BlockFaults::default(),
        }
    }

    /// Return each sector read with one bit flipped with probability `flip`, and with another
    /// sector's contents with probability `misdirect`.
    pub fn read_faults(mut self, flip: f64, misdirect: f64) -> Self {
        self.flip = flip;
        self.misread = misdirect;
        self
    }

    /// Send each write to other sectors (of the same count) with probability `p`.
    pub fn misdirected_writes(mut self, p: f64) -> Self {
        self.miswrite = p;
        self
    }

    /// Change the power-cut faults on an existing device (see
    /// [`power_cut_faults`](Self::power_cut_faults)).
    pub fn set_power_cut_faults(&mut self, lose: f64, tear: f64) {
        self.lose = lose;
        self.tear = tear;
    }

    /// Reseed the fault generator (a copy made to be cut can draw its own faults).
    pub fn reseed(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// Turn the read and write faults on or off on an existing device.
    pub fn set_io_faults(&mut self, flip: f64, misread: f64, miswrite: f64) {
        self.flip = flip;
        self.misread = misread;
        self.miswrite = miswrite;
    }

    /// Flip bit `bit` (0..8 * sector size) of `sector` at rest, durably.
    pub async fn rot(&mut self, sector: u64, bit: usize) -> Result<(), BlockError> {
        let mut s = vec![0u8; self.inner.info().sector_size as usize];
        self.inner.read(sector, &mut s).await?;
        s[bit / 8] ^= 1 << (bit % 8);
        self.inner.write(sector, &s).await?;
        self.inner.flush().await
    }

    /// The faults injected so far.
    pub fn faults(&self) -> BlockFaults {
        self.faults
    }

    /// Flushes so far.
    pub fn flushes(&self) -> u64 {
        self.flushes
    }

    /// Sectors written since the last flush.
    pub fn unflushed(&self) -> u64 {
        self.undo.len() as u64
    }

    /// The wrapped device.
    pub fn inner(&self) -> &B {
        &self.inner
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

    /// Send the write that comes when [`writes`](Self::writes) is `n` to other sectors, for a
    /// test that tries a misdirected write at each write of an operation in turn.
    pub fn misdirect_write(&mut self, n: u64) {
        self.misdirect_at = Some(n);
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
        self.inner.read(sector, buf).await?;
        if self.flip == 0.0 && self.misread == 0.0 {
            return Ok(());
        }
        let info = self.inner.info();
        let ss = info.sector_size as usize;
        for s in buf.chunks_mut(ss) {
            if self.chance(self.misread) {
                let other = self.rng.next_u64() % info.sectors;
                self.inner.read(other, s).await?;
                self.faults.misdirected_reads += 1;
            }
            if self.chance(self.flip) {
                let bit = self.rng.next_u64() as usize % (ss * 8);
                s[bit / 8] ^= 1 << (bit % 8);
                self.faults.flipped += 1;
            }
        }
        Ok(())
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
        let mut sector = sector;
        let chosen = self.misdirect_at == Some(self.writes);
        if (chosen || self.chance(self.miswrite)) && info.sectors > count {
            sector = self.rng.next_u64() % (info.sectors - count + 1);
            self.faults.misdirected_writes += 1;
        }
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
        self.flushes += 1;
        Ok(())
    }
}
