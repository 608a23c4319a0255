//! # cargo-morgana: build and run Morgana unikernels from any crate
//!
//! Installed once (`cargo install --locked --path tool` from a Morgana checkout), `cargo morgana`
//! works in every crate that depends on `morgana-app`:
//!
//! ```text
//! cargo morgana new NAME --path DIR [--git URL [--rev REV]]   a new unikernel crate
//! cargo morgana build [--target unix|virtio] [--release]      build it, print the binary's path
//! cargo morgana run [--target unix|virtio] [--release] [QEMU options] [-- ARGS]
//! ```
//!
//! It finds the crate with `cargo metadata` (from the current directory, or `--manifest-path`),
//! builds its binary for the target with the flags and the profile the target needs (a bare-metal
//! image: static, linked by `morgana-virtio.ld`, profile `release-small`, given to cargo with
//! `--config` so that the crate needs no profile of its own), strips the image, and runs it: a
//! host process, or QEMU with KVM or TCG, user networking forwarding the ports the crate's
//! `[package.metadata.morgana]` declares ([`meta`]), a disk image, and the guest's exit status
//! decoded. Every failure to start is one line.
//!
//! The same library is what `cargo xtask build|run|list|size` in the Morgana workspace runs, so
//! the two never disagree: the targets ([`target::TARGETS`]), the metadata ([`meta`]), the host
//! process ([`process`]), the images and QEMU ([`virtio`], [`strip`]), the template
//! ([`template`]) and the version check ([`version`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::process::Command;

pub mod cli;
pub mod meta;
pub mod process;
pub mod strip;
pub mod target;
pub mod template;
pub mod version;
pub mod virtio;

/// A command that failed: one line for the user and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong and what to do (empty when a child already said it).
    pub message: String,
    /// The exit status.
    pub code: u8,
}

impl Failure {
    /// Fail with status 1.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: 1 }
    }

    /// A usage error: status 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: 2 }
    }

    /// Pass a child's exit status through, having already printed its output.
    pub fn status(code: Option<i32>) -> Self {
        Self { message: String::new(), code: code.and_then(|c| u8::try_from(c).ok()).unwrap_or(1) }
    }
}

/// Result of a step.
pub type Outcome = Result<(), Failure>;

/// A `cargo` command, honouring `$CARGO` when run through cargo.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Run `cmd`; a failure passes its exit status through.
pub fn exec(cmd: &mut Command) -> Outcome {
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(Failure::status(s.code())),
        Err(e) => Err(Failure::new(format!("cannot start {:?}: {e}", cmd.get_program()))),
    }
}
