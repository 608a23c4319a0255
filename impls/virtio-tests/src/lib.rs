//! # morgana-virtio-tests: the QEMU suite
//!
//! The bare-metal images of every app, and the `morgana-virtio` conformance image, booted in
//! QEMU (KVM when `/dev/kvm` is usable, else TCG) by an ordinary `cargo test` target,
//! `tests/qemu`: boots checked by what they print and how they exit, and live guests talking to
//! real peers (a 1 MiB echo through a forwarded port, `curl` against `www`, `http-fetch` against
//! `openssl s_server`, Linux `ping`, `nc` and `dnsmasq` on a TAP device in a network namespace
//! the test creates, `notes` killed and power-cut in the middle of PUTs, its disk served by
//! [`nbd`]). Many start the guest with the command a user types, `cargo xtask run APP
//! --target virtio ...`.
//!
//! The images are built by `cargo xtask`, which passes where they are:
//!
//! ```text
//! cargo xtask test --qemu-only [FILTER]     builds the images, then runs this suite
//! MORGANA_VIRTIO_IMAGES=target/x86_64-unknown-none/release-small MORGANA_XTASK=target/debug/xtask \
//!     cargo test -p morgana-virtio-tests    the same by hand, once the images are built
//! ```
//!
//! Without those variables every test is reported as ignored, with one line saying how to run
//! them; so are those that need root (the TAP devices), KVM or a program that is missing.
//!
//! Beside it, `tests/user_crate` builds a unikernel crate outside the workspace for bare metal,
//! without and with the two flags `morgana-virtio` asks for (it needs no images, only the
//! `x86_64-unknown-none` target, and is skipped without it).
//! This library is what the tests share: where the images are and the `cargo xtask run`
//! command, and [`nbd`], the NBD server that cuts the power under a guest's disk; processes,
//! namespaces, payloads and the rest come from `morgana-netns`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod nbd;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable naming the directory of the images (`target/x86_64-unknown-none/release-small`).
pub const IMAGES_VAR: &str = "MORGANA_VIRTIO_IMAGES";
/// The variable naming the `xtask` binary, for the tests that boot through `cargo xtask run`.
pub const XTASK_VAR: &str = "MORGANA_XTASK";

/// Where the suite finds what it boots.
#[derive(Debug, Clone)]
pub struct Env {
    /// The images: `DIR/APP`, and the conformance image in `DIR/examples/conformance`.
    pub images: PathBuf,
    /// The `xtask` binary (`cargo xtask` without cargo).
    pub xtask: PathBuf,
    /// The workspace root (certificates, the site's files).
    pub root: PathBuf,
    /// Whether QEMU uses KVM (else TCG).
    pub kvm: bool,
}

impl Env {
    /// From [`IMAGES_VAR`] and [`XTASK_VAR`]; else one line saying how to run the suite.
    pub fn from_env() -> Result<Self, String> {
        let how = "they boot the images that cargo xtask builds: run `cargo xtask test --qemu-only` \
                   (or set MORGANA_VIRTIO_IMAGES=DIR and MORGANA_XTASK=BIN)";
        let var = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.exists());
        let (Some(images), Some(xtask)) = (var(IMAGES_VAR), var(XTASK_VAR)) else {
            return Err(how.into());
        };
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = root.canonicalize().unwrap_or(root);
        Ok(Self { images, xtask, root, kvm: morgana_qemu::kvm_usable() })
    }

    /// The image of `app`.
    pub fn image(&self, app: &str) -> PathBuf {
        self.images.join(app)
    }

    /// The conformance image (`morgana-virtio`'s example).
    pub fn conformance(&self) -> PathBuf {
        self.images.join("examples").join("conformance")
    }

    /// `cargo xtask run APP --target virtio OPTS... [-- APP_ARGS...]`, as a user types it.
    pub fn xtask_run<S: AsRef<str>>(&self, app: &str, opts: &[S], app_args: &[&str]) -> Command {
        let mut c = Command::new(&self.xtask);
        c.args(self.xtask_run_args(app, opts, app_args));
        c
    }

    /// The arguments of [`Env::xtask_run`] (to run it through a wrapper such as `ip netns exec`).
    pub fn xtask_run_args<S: AsRef<str>>(&self, app: &str, opts: &[S], app_args: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = ["run", app, "--target", "virtio"].map(String::from).into();
        a.extend(opts.iter().map(|s| s.as_ref().to_string()));
        if !app_args.is_empty() {
            a.push("--".into());
            a.extend(app_args.iter().map(|s| s.to_string()));
        }
        a
    }

    /// `--accel kvm|tcg`: what the suite chose, for `cargo xtask run`.
    pub fn accel(&self) -> Vec<String> {
        vec!["--accel".into(), if self.kvm { "kvm" } else { "tcg" }.into()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_xtask_command_is_the_one_users_type() {
        let env = Env { images: "i".into(), xtask: "x".into(), root: ".".into(), kvm: false };
        assert_eq!(
            env.xtask_run_args("echo", &["--forward", "1:7"], &["--port", "7"]),
            ["run", "echo", "--target", "virtio", "--forward", "1:7", "--", "--port", "7"]
        );
        assert_eq!(env.xtask_run_args::<&str>("noop", &[], &[]), ["run", "noop", "--target", "virtio"]);
    }
}
