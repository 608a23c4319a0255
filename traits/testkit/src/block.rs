//! Block devices: bounds, alignment, mode, and data that survives.

use alloc::vec;
use alloc::vec::Vec;

use morgana::block::{Block, BlockError};

/// A byte pattern unique to `(sector, round)`.
pub fn pattern(sector: u64, round: u8, size: usize) -> Vec<u8> {
    let seed = sector.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(round);
    (0..size).map(|i| (seed.rotate_left((i % 64) as u32) as u8) ^ (i as u8)).collect()
}

/// Check a writable device of at least 4 sectors. Its contents are overwritten.
pub async fn check_rw<B: Block>(dev: &mut B) {
    let info = dev.info();
    let ss = info.sector_size as usize;
    assert!(ss >= 512 && ss.is_power_of_two(), "sector size {ss} is a power of two >= 512");
    assert!(info.sectors >= 4, "the suite needs at least 4 sectors, got {}", info.sectors);
    assert!(!info.read_only, "check_rw needs a writable device");
    let last = info.sectors - 1;

    // Single sectors at both ends, then a multi-sector write across the middle.
    for (sector, round) in [(0, 1), (last, 2)] {
        let data = pattern(sector, round, ss);
        dev.write(sector, &data).await.expect("write one sector");
        let mut back = vec![0u8; ss];
        dev.read(sector, &mut back).await.expect("read one sector");
        assert!(back == data, "sector {sector} reads back what was written");
    }
    let mid = info.sectors / 2 - 1;
    let multi: Vec<u8> = (0..2).flat_map(|i| pattern(mid + i, 3, ss)).collect();
    dev.write(mid, &multi).await.expect("write two sectors");
    let mut back = vec![0u8; 2 * ss];
    dev.read(mid, &mut back).await.expect("read two sectors");
    assert!(back == multi, "a multi-sector write reads back");
    let mut one = vec![0u8; ss];
    dev.read(mid + 1, &mut one).await.expect("read the second of them");
    assert!(one[..] == multi[ss..], "sectors of a multi-sector write are in order");

    // Bounds.
    let mut buf = vec![0u8; ss];
    assert!(
        matches!(dev.read(info.sectors, &mut buf).await, Err(BlockError::OutOfRange { .. })),
        "a read past the end is OutOfRange"
    );
    assert!(
        matches!(dev.write(info.sectors, &buf).await, Err(BlockError::OutOfRange { .. })),
        "a write past the end is OutOfRange"
    );
    let mut two = vec![0u8; 2 * ss];
    assert!(
        matches!(dev.read(last, &mut two).await, Err(BlockError::OutOfRange { .. })),
        "a read that straddles the end is OutOfRange"
    );
    assert!(
        matches!(dev.write(u64::MAX, &buf).await, Err(BlockError::OutOfRange { .. })),
        "a sector index that overflows is OutOfRange"
    );
    let mut after = vec![0u8; ss];
    dev.read(last, &mut after).await.expect("read the last sector");
    assert!(after == pattern(last, 2, ss), "a refused write changes nothing");

    // Alignment.
    let mut odd = vec![0u8; ss + 1];
    assert!(
        matches!(dev.read(0, &mut odd).await, Err(BlockError::Misaligned { .. })),
        "a read of a partial sector is Misaligned"
    );
    assert!(
        matches!(dev.write(0, &odd[..ss / 2]).await, Err(BlockError::Misaligned { .. })),
        "a write of a partial sector is Misaligned"
    );

    // Durability barrier, and data that survives it.
    dev.flush().await.expect("flush");
    dev.read(0, &mut buf).await.expect("read after flush");
    assert!(buf == pattern(0, 1, ss), "data survives a flush");
}

/// Check a read-only device: reads work, writes are refused and change nothing.
pub async fn check_read_only<B: Block>(dev: &mut B) {
    let info = dev.info();
    assert!(info.read_only, "the device reports itself read-only");
    let ss = info.sector_size as usize;
    let mut before = vec![0u8; ss];
    dev.read(0, &mut before).await.expect("a read-only device reads");
    let junk = vec![0xa5u8; ss];
    assert_eq!(dev.write(0, &junk).await, Err(BlockError::ReadOnly), "a write is ReadOnly");
    let mut after = vec![0u8; ss];
    dev.read(0, &mut after).await.expect("read again");
    assert!(before == after, "a refused write changes nothing");
}
