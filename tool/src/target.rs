//! The targets an app is built for, one line each ([`TARGETS`]), and building or running an app
//! on one: the one place both front ends (`cargo morgana`, `cargo xtask`) go through.

use crate::meta::{App, Workspace};
use crate::virtio::QemuArgs;
use crate::{Failure, Outcome, process, virtio};

/// How a target's programs are built and started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// A host process ([`process`]), with `morgana-app`'s `feature` turned on when the target
    /// shares the host's Rust target with another (a sandboxed process).
    Process {
        /// The `morgana-app` feature that selects it, if any.
        feature: Option<&'static str>,
    },
    /// A bare-metal image booted in QEMU ([`virtio`]).
    Qemu,
}

/// A target an app can be built for: the value of `--target`, typed (a [`clap::ValueEnum`] whose
/// variants are [`TARGETS`]). A target is a crate implementing `morgana_target::Target`,
/// selected by `morgana-app`, and a line in [`TARGETS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Its name on the command line and in an app's `[package.metadata.morgana] targets`.
    pub name: &'static str,
    /// One line for `list` and `--help`.
    pub about: &'static str,
    /// How its programs are built and started.
    pub runs: Runs,
}

/// The targets, one line each.
pub const TARGETS: &[Target] = &[
    Target { name: "unix", about: "hosted Linux process (default)", runs: Runs::Process { feature: None } },
    Target {
        name: "virtio",
        about: "bare-metal x86_64 image booted in QEMU (microvm or q35)",
        runs: Runs::Qemu,
    },
];

impl clap::ValueEnum for Target {
    fn value_variants<'a>() -> &'a [Self] {
        TARGETS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name).help(self.about))
    }
}

/// An app that does not run on `target` fails in one line instead of a link error.
pub fn check(app: &App, target: Target) -> Outcome {
    let target = target.name;
    if !app.supports(target) {
        return Err(Failure::usage(format!(
            "{} does not run on --target {target} (its Cargo.toml's [package.metadata.morgana] targets: {})",
            app.name,
            app.targets.clone().unwrap_or_default().join(", ")
        )));
    }
    Ok(())
}

/// Build `app` for `target` and print where its binary is.
pub fn build(ws: &Workspace, app: &App, target: Target, release: bool) -> Outcome {
    check(app, target)?;
    match target.runs {
        Runs::Qemu => virtio::build(ws, app),
        Runs::Process { feature } => process::build(ws, app, feature, release),
    }
}

/// Build `app` for `target` and run it with `args`; its exit status is the app's.
pub fn run(
    ws: &Workspace,
    app: &App,
    target: Target,
    release: bool,
    qemu: &QemuArgs,
    args: &[String],
) -> Outcome {
    check(app, target)?;
    match target.runs {
        Runs::Qemu => virtio::run(ws, app, qemu, args),
        Runs::Process { feature } => {
            virtio::check_unix_args(qemu).and_then(|()| process::run(ws, app, feature, release, args))
        }
    }
}
