//! `block` as a process on image files: `cargo xtask run block -- --block FILE`.

use std::path::PathBuf;
use std::process::{Command, Output};

struct Image(PathBuf);

impl Image {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("morgana-block-{tag}-{}.img", std::process::id()));
        let _ = std::fs::remove_file(&p);
        Self(p)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn block(args: &[&str]) -> (Output, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_block")).args(args).output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into());
    (out, stdout, stderr)
}

fn one_line(stderr: &str) -> &str {
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr.trim_end()
}

#[test]
fn verifies_every_sector_of_a_1_mib_image() {
    let img = Image::new("1m");
    std::fs::write(&img.0, vec![0u8; 1 << 20]).unwrap();
    let (out, stdout, stderr) = block(&["--block", img.0.to_str().unwrap()]);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("block device: 2048 sectors of 512 bytes (1024 KiB)"), "{stdout}");
    assert!(stdout.contains("checked 2048 sectors: 0 errors"), "{stdout}");
    // The pattern really is on the disk: sector 5 starts with its own index.
    let bytes = std::fs::read(&img.0).unwrap();
    assert_eq!(bytes[5 * 512..5 * 512 + 8], 5u64.to_le_bytes());
}

#[test]
fn creates_a_sparse_image_when_given_a_size() {
    let img = Image::new("create");
    let path = img.0.to_str().unwrap();
    let (out, stdout, stderr) = block(&["--block", path, "--block-size", "1M"]);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("checked 2048 sectors: 0 errors"), "{stdout}");
    assert_eq!(std::fs::metadata(&img.0).unwrap().len(), 1 << 20);
    let (out, _, stderr) = block(&["--block", path, "--block-size", "2M"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line(&stderr).ends_with("the file has 1048576 bytes, not the 2097152 asked for; drop --block-size to use the file as it is"), "{stderr}");
}

#[test]
fn misaligned_or_empty_images_get_a_clear_error() {
    let img = Image::new("odd");
    let path = img.0.to_str().unwrap();
    std::fs::write(&img.0, vec![0u8; 1000]).unwrap();
    let (out, _, stderr) = block(&["--block", path]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        one_line(&stderr),
        format!(
            "block: --block {path}: 1000 bytes is not a whole number of 512-byte sectors; resize it to whole sectors (e.g. truncate -s 1M FILE)"
        )
    );
    std::fs::write(&img.0, b"").unwrap();
    let (out, _, stderr) = block(&["--block", path]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        one_line(&stderr),
        format!("block: --block {path}: the image is empty (0 bytes); it needs at least one 512-byte sector")
    );
    assert_eq!(std::fs::read(&img.0).unwrap(), b"", "a refused image is not touched");
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let (out, _, stderr) = block(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        one_line(&stderr),
        "block: --block: required: give a disk image, e.g. --block disk.img --block-size 1M"
    );
    let img = Image::new("badsize");
    let (out, _, stderr) = block(&["--block", img.0.to_str().unwrap(), "--block-size", "1000"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        one_line(&stderr),
        "block: --block-size: expected a whole number of 512-byte sectors, like 1M, got \"1000\""
    );
    assert!(!img.0.exists());
    let (out, _, stderr) = block(&["--block", "/nonexistent/disk.img"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        one_line(&stderr),
        "block: --block /nonexistent/disk.img: no such file; add --block-size SIZE (e.g. 1M) to create it"
    );
}

#[test]
fn a_read_only_image_is_refused_by_the_check() {
    let img = Image::new("ro");
    std::fs::write(&img.0, vec![7u8; 4096]).unwrap();
    let (out, stdout, stderr) = block(&["--block", img.0.to_str().unwrap(), "--block-read-only"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("8 sectors of 512 bytes (4 KiB), read-only"), "{stdout}");
    assert_eq!(one_line(&stderr), "error: the block device is read-only; this check writes every sector");
    assert_eq!(std::fs::read(&img.0).unwrap(), vec![7u8; 4096]);
}
