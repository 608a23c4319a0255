//! `block` on in-memory devices: a good disk, a disk that corrupts, one that dies, one that
//! refuses writes.

use morgana::block::{Block, BlockError, BlockInfo};
use morgana_mem::sim::Sim;
use morgana_mem::{FaultyBlock, MemBlock};

#[test]
fn every_sector_of_a_good_disk_verifies() {
    let out = Sim::new(1).run(|p| block::start(p, MemBlock::new(512, 2048)));
    assert_eq!(out.result.unwrap(), Ok(block::Report { sectors: 2048, errors: 0 }));
    assert_eq!(
        out.messages(),
        ["block device: 2048 sectors of 512 bytes (1024 KiB)", "checked 2048 sectors: 0 errors"]
    );
    let out = Sim::new(2).run(|p| block::start(p, MemBlock::new(4096, 3)));
    assert_eq!(out.result.unwrap(), Ok(block::Report { sectors: 3, errors: 0 }), "a last, partial chunk too");
}

#[test]
fn the_pattern_differs_per_sector_and_per_run() {
    let mut dev = MemBlock::new(512, 200);
    let out = Sim::new(1).run(|p| block::start(p, &mut dev));
    assert!(out.result.unwrap().is_ok());
    let bytes = dev.as_bytes();
    let sectors: std::collections::HashSet<&[u8]> = bytes.chunks(512).collect();
    assert_eq!(sectors.len(), 200, "every sector holds distinct data");
    let mut again = MemBlock::new(512, 200);
    Sim::new(2).run(|p| block::start(p, &mut again)).result.unwrap().unwrap();
    assert_ne!(dev.as_bytes()[..512], again.as_bytes()[..512], "another run writes another pattern");
}

/// A disk that flips a bit in some sectors when they are read.
struct Corrupting {
    inner: MemBlock,
    bad: Vec<u64>,
}

impl Block for Corrupting {
    fn info(&self) -> BlockInfo {
        self.inner.info()
    }
    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.inner.read(sector, buf).await?;
        let ss = self.info().sector_size as u64;
        for &bad in &self.bad {
            if (sector..sector + buf.len() as u64 / ss).contains(&bad) {
                buf[((bad - sector) * ss + 100) as usize] ^= 1;
            }
        }
        Ok(())
    }
    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.inner.write(sector, buf).await
    }
    async fn flush(&mut self) -> Result<(), BlockError> {
        self.inner.flush().await
    }
}

#[test]
fn corrupted_sectors_are_found_and_named() {
    let dev = Corrupting { inner: MemBlock::new(512, 1000), bad: vec![0, 127, 128, 999] };
    let out = Sim::new(3).run(|p| block::start(p, dev));
    let err = out.result.unwrap().unwrap_err();
    assert_eq!(err, block::Error::Failed(block::Report { sectors: 1000, errors: 4 }));
    assert_eq!(err.to_string(), "4 of 1000 sectors failed verification");
    for s in [0, 127, 128, 999] {
        let line = format!("sector {s}: read back differs from what was written");
        assert!(out.messages().contains(&line.as_str()), "{line}");
    }
}

#[test]
fn a_dying_disk_counts_unwritten_sectors_once() {
    // 128 sectors per 64 KiB request: the first two requests succeed, the rest fail.
    let dev = FaultyBlock::new(MemBlock::new(512, 1000), 1).fail_after_writes(2);
    let out = Sim::new(4).run(|p| block::start(p, dev));
    assert_eq!(
        out.result.unwrap(),
        Err(block::Error::Failed(block::Report { sectors: 1000, errors: 1000 - 256 }))
    );
    assert!(out.messages().iter().any(|m| m.starts_with("write of sectors 256..384 failed")));
}

#[test]
fn a_read_only_disk_is_refused() {
    let out = Sim::new(5).run(|p| block::start(p, MemBlock::new(512, 8).read_only()));
    let err = out.result.unwrap().unwrap_err();
    assert_eq!(err, block::Error::ReadOnly);
    assert_eq!(err.to_string(), "the block device is read-only; this check writes every sector");
}
