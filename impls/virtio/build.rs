//! Provides the kernel's linker script to whatever links it, as cortex-m-rt does: `link.ld` is
//! copied into `OUT_DIR` as `morgana-virtio.ld` and `OUT_DIR` is put on the linker's search path,
//! so an image needs no path into this crate's source (which moves with every git revision of a
//! dependency), only `-C link-arg=-Tmorgana-virtio.ld`.
//!
//! A bare-metal build without that flag and `-C relocation-model=static` is stopped here, with
//! one error saying what to add, instead of by rust-lld with a screen of relocation errors.
//! Host builds (this crate's pure logic, unit-tested there) are untouched.

use std::{env, fs, path::PathBuf, process::ExitCode};

/// The linker script's name on the search path: distinctive, so that it cannot pick up another
/// crate's `link.ld`.
const SCRIPT: &str = "morgana-virtio.ld";

fn main() -> ExitCode {
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return ExitCode::SUCCESS;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let flags: Vec<&str> = flags.split('\x1f').filter(|f| !f.is_empty()).collect();
    let missing = missing_flags(&flags);
    if !missing.is_empty() {
        let target = env::var("TARGET").unwrap_or_else(|_| "x86_64-unknown-none".into());
        // One line: cargo prints a failed build script's stderr, of a git or registry dependency
        // too (where it would hide a warning).
        eprintln!(
            "error: morgana-virtio: a bare-metal image needs {} in RUSTFLAGS: add to .cargo/config.toml: \
         [target.{target}] rustflags = [\"-C\", \"relocation-model=static\", \"-C\", \"force-frame-pointers=yes\", \"-C\", \"link-arg=-T{SCRIPT}\"] (frame pointers: for readable crash backtraces)",
            missing.join(" and ")
        );
        return ExitCode::FAILURE;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Err(e) = fs::copy("link.ld", out.join(SCRIPT)) {
        eprintln!("error: morgana-virtio: cannot copy link.ld into {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    println!("cargo:rustc-link-search={}", out.display());
    ExitCode::SUCCESS
}

/// The needed flags that `flags` (rustc's arguments, one an element) lack.
fn missing_flags(flags: &[&str]) -> Vec<String> {
    let mut relocation = None;
    let mut script = false;
    let mut it = flags.iter();
    while let Some(&flag) = it.next() {
        let codegen = match flag {
            "-C" | "--codegen" => it.next().copied(),
            _ => flag.strip_prefix("-C").or_else(|| flag.strip_prefix("--codegen=")),
        };
        let Some(codegen) = codegen else { continue };
        if let Some(model) = codegen.strip_prefix("relocation-model=") {
            relocation = Some(model); // The last one counts, as for rustc.
        } else if let Some(arg) = codegen.strip_prefix("link-arg=") {
            script |= is_script(arg);
        } else if let Some(args) = codegen.strip_prefix("link-args=") {
            script |= args.split_whitespace().any(is_script);
        }
    }
    let mut missing = Vec::new();
    if relocation != Some("static") {
        missing.push("-C relocation-model=static".to_owned());
    }
    if !script {
        missing.push(format!("-C link-arg=-T{SCRIPT}"));
    }
    missing
}

/// A linker argument that names a linker script: ours or one of the user's own.
fn is_script(arg: &str) -> bool {
    arg.starts_with("-T") || arg.starts_with("--script")
}
