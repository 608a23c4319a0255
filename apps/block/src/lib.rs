//! `block`: check a block device end to end (mirage-skeleton device-usage/block).
//!
//! Writes a pattern unique to each sector (its index and a seed drawn for this run, so stale
//! data from an earlier run cannot pass) to every sector, flushes, reads everything back and
//! compares. Reports how many sectors were checked and how many failed.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::BTreeSet;
use alloc::vec;
use core::fmt;

use morgana::rand_core::RngCore;
use morgana::{Block, BlockError, Platform};
use morgana_args::ArgSpec;

/// `block` has no arguments of its own: the device is `--block`.
pub const ARGS: &[ArgSpec] = &[];

/// Bytes moved per request.
const CHUNK_BYTES: usize = 64 * 1024;
/// Mismatching sectors reported one by one before going quiet.
const REPORTED: u64 = 10;

/// What a run found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Sectors written and read back.
    pub sectors: u64,
    /// Sectors that failed to write, failed to read, or read back wrong.
    pub errors: u64,
}

/// Why the check did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The device refuses writes.
    ReadOnly,
    /// The device has no sectors.
    Empty,
    /// The flush failed: nothing written can be trusted.
    Flush(BlockError),
    /// Some sectors failed.
    Failed(Report),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadOnly => f.write_str("the block device is read-only; this check writes every sector"),
            Self::Empty => f.write_str("the block device has no sectors"),
            Self::Flush(e) => write!(f, "flush failed: {e}"),
            Self::Failed(r) => write!(f, "{} of {} sectors failed verification", r.errors, r.sectors),
        }
    }
}

/// The contents of `sector` for this run.
pub fn fill(buf: &mut [u8], seed: u64, sector: u64) {
    let mut header = [0u8; 16];
    header[..8].copy_from_slice(&sector.to_le_bytes());
    header[8..].copy_from_slice(&seed.to_le_bytes());
    let n = buf.len().min(16);
    buf[..n].copy_from_slice(&header[..n]);
    let mut x = seed ^ sector.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for word in buf[n..].chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
    }
}

/// Write, flush, read back and verify every sector of `dev`.
pub async fn start<P: Platform, B: Block>(platform: P, mut dev: B) -> Result<Report, Error> {
    let info = dev.info();
    let ss = info.sector_size as usize;
    log::info!(
        "block device: {} sectors of {} bytes ({} KiB){}",
        info.sectors,
        ss,
        info.size_bytes() / 1024,
        if info.read_only { ", read-only" } else { "" }
    );
    if info.read_only {
        return Err(Error::ReadOnly);
    }
    if info.sectors == 0 {
        return Err(Error::Empty);
    }
    let seed = platform.rng().next_u64();
    let per_chunk = (CHUNK_BYTES / ss).max(1) as u64;
    let mut buf = vec![0u8; per_chunk as usize * ss];
    let mut errors = 0u64;
    // Chunks whose write failed: their sectors are counted once, not again when verifying.
    let mut unwritten = BTreeSet::new();

    let mut start = 0;
    while start < info.sectors {
        let n = per_chunk.min(info.sectors - start);
        let chunk = &mut buf[..n as usize * ss];
        for (i, sector) in chunk.chunks_mut(ss).enumerate() {
            fill(sector, seed, start + i as u64);
        }
        if let Err(e) = dev.write(start, chunk).await {
            log::warn!("write of sectors {start}..{} failed: {e}", start + n);
            errors += n;
            unwritten.insert(start);
        }
        start += n;
    }
    dev.flush().await.map_err(Error::Flush)?;

    let mut expected = vec![0u8; ss];
    let mut start = 0;
    while start < info.sectors {
        let n = per_chunk.min(info.sectors - start);
        if !unwritten.contains(&start) {
            let chunk = &mut buf[..n as usize * ss];
            match dev.read(start, chunk).await {
                Err(e) => {
                    log::warn!("read of sectors {start}..{} failed: {e}", start + n);
                    errors += n;
                }
                Ok(()) => {
                    for (i, got) in chunk.chunks(ss).enumerate() {
                        let sector = start + i as u64;
                        fill(&mut expected, seed, sector);
                        if got != &expected[..] {
                            errors += 1;
                            if errors <= REPORTED {
                                log::warn!("sector {sector}: read back differs from what was written");
                            }
                        }
                    }
                }
            }
        }
        start += n;
    }
    let report = Report { sectors: info.sectors, errors };
    log::info!("checked {} sectors: {} errors", report.sectors, report.errors);
    if errors == 0 { Ok(report) } else { Err(Error::Failed(report)) }
}
