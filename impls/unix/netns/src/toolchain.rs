//! The toolchain a test builds a crate outside the workspace with: the workspace's own, and
//! whether it can build for a target.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// The toolchain's cargo (cargo sets `CARGO` for the tests it runs) and the rustc beside it, so
/// that a crate outside the workspace builds with the workspace's toolchain.
pub fn toolchain() -> (PathBuf, Option<PathBuf>) {
    let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let rustc = cargo.with_file_name("rustc");
    (cargo.clone(), rustc.is_file().then_some(rustc))
}

/// Why that toolchain cannot build for `target` (its `core` is not installed), if it cannot:
/// the line a skipped test prints.
pub fn target_missing(target: &str) -> Option<String> {
    let (_, rustc) = toolchain();
    let out = Command::new(rustc.unwrap_or_else(|| "rustc".into()))
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let has_core = fs::read_dir(&dir)
        .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("libcore-")))
        .unwrap_or(false);
    (!has_core).then(|| format!("they need the {target} target: `rustup target add {target}`"))
}
