//! `FileBlock`: the block suites on real files, sparse creation, and images it must refuse.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{TempDir, run};
use morgana::block::{Block, BlockError};
use morgana_testkit as suite;
use morgana_unix::{FileBlock, FileBlockError};

#[test]
fn file_block_passes_the_block_suites() {
    let dir = TempDir::new("block-suite");
    let path = dir.join("disk.img");
    std::fs::write(&path, vec![0u8; 64 * 512]).unwrap();
    run(|_| async {
        let mut dev = FileBlock::open(&path).unwrap();
        assert_eq!(dev.info().sectors, 64);
        suite::block::check_rw(&mut dev).await;
        let mut big =
            FileBlock::options().sector_size(4096).create(8 * 4096).open(dir.join("4k.img")).unwrap();
        suite::block::check_rw(&mut big).await;
        let mut ro = FileBlock::options().read_only(true).open(&path).unwrap();
        suite::block::check_read_only(&mut ro).await;
    });
}

#[test]
fn writes_reach_the_file_at_their_sector() {
    let dir = TempDir::new("block-offsets");
    let path = dir.join("disk.img");
    run(|_| async {
        let mut dev = FileBlock::options().create(16 * 512).open(&path).unwrap();
        dev.write(3, &[0xab; 1024]).await.unwrap();
        dev.flush().await.unwrap();
    });
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 16 * 512);
    assert!(bytes[..3 * 512].iter().all(|b| *b == 0));
    assert!(bytes[3 * 512..5 * 512].iter().all(|b| *b == 0xab));
    assert!(bytes[5 * 512..].iter().all(|b| *b == 0));
}

#[test]
fn creation_is_sparse_and_checked() {
    let dir = TempDir::new("block-create");
    let path = dir.join("sparse.img");
    let dev = FileBlock::options().create(64 << 20).open(&path).unwrap();
    assert_eq!(dev.info().sectors, (64 << 20) / 512);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), 64 << 20);
    assert!(meta.blocks() < 128, "64 MiB created sparse, {} blocks allocated", meta.blocks());
    // Opening again with the same size is fine; with another size it is refused.
    FileBlock::options().create(64 << 20).open(&path).unwrap();
    let e = FileBlock::options().create(1 << 20).open(&path).unwrap_err();
    assert!(
        matches!(e, FileBlockError::SizeMismatch { actual, wanted, .. } if actual == 64 << 20 && wanted == 1 << 20)
    );
    let e = FileBlock::options().create(1000).open(dir.join("odd.img")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: 1000 bytes is not a whole number of 512-byte sectors", dir.join("odd.img").display())
    );
    assert!(!dir.join("odd.img").exists(), "a refused size creates nothing");
}

#[test]
fn bad_images_are_refused_with_a_clear_error() {
    let dir = TempDir::new("block-bad");
    let odd = dir.join("odd.img");
    std::fs::write(&odd, vec![0u8; 1000]).unwrap();
    let e = FileBlock::open(&odd).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: 1000 bytes is not a whole number of 512-byte sectors", odd.display())
    );
    let empty = dir.join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(
        FileBlock::open(&empty).unwrap_err().to_string(),
        format!("{}: the image is empty (0 bytes)", empty.display())
    );
    let missing = dir.join("missing.img");
    assert!(matches!(FileBlock::open(&missing), Err(FileBlockError::NotFound(_))));
    assert!(matches!(
        FileBlock::options().sector_size(1000).open(&odd),
        Err(FileBlockError::BadSectorSize(1000))
    ));
    assert!(
        matches!(FileBlock::open(dir.path()), Err(FileBlockError::Io(..))),
        "a directory is not an image"
    );
}

#[test]
fn a_file_truncated_underneath_reads_as_an_io_error() {
    let dir = TempDir::new("block-shrunk");
    let path = dir.join("disk.img");
    std::fs::write(&path, vec![0u8; 8 * 512]).unwrap();
    run(|_| async {
        let mut dev = FileBlock::open(&path).unwrap();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(512).unwrap();
        let mut buf = [0u8; 512];
        assert!(matches!(dev.read(5, &mut buf).await, Err(BlockError::Io(_))));
        dev.read(0, &mut buf).await.unwrap();
    });
}
