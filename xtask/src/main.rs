//! `cargo xtask`: the one entry point to build, run, test and measure Morgana unikernels.
//!
//! ```text
//! cargo xtask list                                  apps and targets
//! cargo xtask run APP [--target unix] [-- ARGS]     run an app
//! cargo xtask build APP [--target unix]             build an app, print the binary's path
//! cargo xtask test [--qemu-only] [FILTER]         fmt, clippy, tests, no_std builds, QEMU boots
//! cargo xtask size                                  bare-metal image size per app
//! cargo xtask bench boot [--runs N]                 boot time against an empty kernel
//! cargo xtask bench www [--quick]                   figures, as ratios against a peer
//! cargo xtask bench tcpip [--quick] [--only ROW]    TCP/IP throughput ratios, the emulated-link matrix;
//! cargo xtask bench tcpip --soak                    or the long soak
//! cargo xtask bench store [--quick]                 durable commits and batches against redb;
//! cargo xtask bench store --soak [--cuts N]         or the long power-cut sweep
//! cargo xtask fuzz [TARGET] [--time SECONDS]        fuzz targets (nightly, cargo-fuzz)
//! cargo xtask sim SCENARIO [--seed N | --seeds N..M] [--swarm]   deterministic simulation;
//! cargo xtask sim --list                            its scenarios; cargo xtask bench sim: figures
//! cargo xtask kv mkfs|put|get|ls|import|export|check IMAGE ...   a morgana-store image on the host
//! ```
//!
//! `--target virtio` options (QEMU) are in [`virtio`]. `cargo xtask test` runs the checks; the
//! tests themselves live in the crates they test (the QEMU suite in `impls/virtio-tests`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand, ValueEnum};

mod bench_boot;
mod bench_store;
mod bench_tcpip;
mod bench_www;
mod fuzz;
mod meta;
mod sim;
mod strip;
mod test;
mod tools;
mod virtio;

/// Bare-metal Rust target used to check the `no_std` crates.
const NO_STD_TARGET: &str = "x86_64-unknown-none";

/// Crates that promise to be `no_std` and are built for [`NO_STD_TARGET`] by `cargo xtask test`.
const NO_STD_CRATES: &[&str] = &[
    "morgana",
    "morgana-args",
    "morgana-target",
    "morgana-testkit",
    "morgana-rt",
    "morgana-mem",
    "morgana-store",
    "morgana-tar",
    "morgana-crunch",
    "morgana-tls",
    "morgana-http",
    "morgana-tcpip",
    "morgana-layers",
    "morgana-vnet",
    "morgana-virtio-drivers",
    "morgana-virtio",
];

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run, test and measure Morgana unikernels")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the apps and the targets.
    List,
    /// Build and run an app.
    Run {
        /// The app (see `cargo xtask list`).
        app: String,
        /// Where to run it.
        #[arg(long, value_enum, default_value = "unix")]
        target: Target,
        /// Build with optimisations.
        #[arg(long)]
        release: bool,
        /// QEMU options (--target virtio).
        #[command(flatten)]
        qemu: virtio::QemuArgs,
        /// Arguments for the app (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build an app and print where its binary is.
    Build {
        /// The app (see `cargo xtask list`).
        app: String,
        /// What to build it for.
        #[arg(long, value_enum, default_value = "unix")]
        target: Target,
        /// Build with optimisations.
        #[arg(long)]
        release: bool,
    },
    /// Check everything CI checks: formatting, lints, tests, no_std builds, QEMU boots.
    Test {
        /// Only the QEMU boots (with the bare-metal clippy and image builds they need).
        #[arg(long)]
        qemu_only: bool,
        /// Only the QEMU boots whose names contain this text (implies --qemu-only).
        filter: Option<String>,
    },
    /// Print the stripped bare-metal image size of every app.
    Size,
    /// Measure, as ratios against a peer measured in the same run: `bench boot [--runs N]`,
    /// `bench www [--quick]`, `bench tcpip [--quick] [--only mem|tap|link|flood] [--soak]`,
    /// `bench store [--quick] [--soak [--cuts N]]`, `bench sim [--quick]`.
    Bench {
        /// What to measure: boot, www, tcpip, store or sim.
        what: String,
        /// Its options (e.g. --runs 20, --quick, --soak).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the fuzz targets in fuzz/ with cargo-fuzz (nightly): `fuzz [TARGET] [--time SECONDS]`.
    Fuzz {
        /// A target and `--time SECONDS` (default: every target, 60 s each).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a deterministic simulation scenario over seeds: `sim SCENARIO [--seed N | --seeds
    /// N..M] [--swarm] [--log LEVEL]`; `sim --list` lists the scenarios.
    Sim {
        /// The scenario and its options (`sim --help` lists them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Read and write a morgana-store image on the host: `kv mkfs IMAGE --size SIZE`, `kv put
    /// IMAGE KEY FILE`, `kv get IMAGE KEY`, `kv ls IMAGE [DIR]`, `kv import IMAGE DIR`, `kv
    /// export IMAGE DIR`, `kv check IMAGE` (morgana-kvtool).
    Kv {
        #[command(subcommand)]
        cmd: morgana_kvtool::cli::Command,
    },
}

/// How a target's programs are built and started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runs {
    /// A host process (`cargo run -p APP`), with `morgana-app`'s `feature` turned on when the
    /// target shares the host's Rust target with another (a sandboxed process).
    Process { feature: Option<&'static str> },
    /// A bare-metal image booted in QEMU ([`virtio`]).
    Qemu,
}

/// A target an app can be built for: the value of `--target`, typed (a [`ValueEnum`] whose
/// variants are [`TARGETS`]). A target is a crate implementing `morgana_target::Target`,
/// selected by `morgana-app`, and a line in [`TARGETS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    /// Its name on the command line and in an app's `[package.metadata.morgana] targets`.
    name: &'static str,
    /// One line for `cargo xtask list` and `--help`.
    about: &'static str,
    /// How its programs are built and started.
    runs: Runs,
}

/// The targets, one line each.
const TARGETS: &[Target] = &[
    Target { name: "unix", about: "hosted Linux process (default)", runs: Runs::Process { feature: None } },
    Target {
        name: "virtio",
        about: "bare-metal x86_64 image booted in QEMU (microvm or q35)",
        runs: Runs::Qemu,
    },
];

impl ValueEnum for Target {
    fn value_variants<'a>() -> &'a [Self] {
        TARGETS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name).help(self.about))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match cli.command {
        Cmd::List => list(&root),
        Cmd::Run { app, target, release, qemu, args } => {
            check_app_and_target(&root, &app, target).and_then(|()| match target.runs {
                Runs::Qemu => virtio::run(&root, &app, &qemu, &args),
                Runs::Process { feature } => {
                    virtio::check_unix_args(&qemu).and_then(|()| run_process(&app, feature, release, &args))
                }
            })
        }
        Cmd::Build { app, target, release } => {
            check_app_and_target(&root, &app, target).and_then(|()| match target.runs {
                Runs::Qemu => virtio::build(&root, &app),
                Runs::Process { feature } => build_process(&root, &app, feature, release),
            })
        }
        Cmd::Test { qemu_only, filter } => test::run(&root, qemu_only, filter.as_deref()),
        Cmd::Size => virtio::size(&root),
        Cmd::Bench { what, args } => match what.as_str() {
            "boot" => runs_arg(&args).and_then(|runs| bench_boot::run(&root, runs)),
            "www" => bench_www::run(&root, args.iter().any(|a| a == "--quick")),
            "tcpip" => bench_tcpip::run(&root, &args),
            "store" => bench_store::run(&root, &args),
            "sim" => sim::bench(&root, &args),
            _ => Err(Failure::usage(format!("no benchmark '{what}'; valid: boot, www, tcpip, store, sim"))),
        },
        Cmd::Fuzz { args } => fuzz::run(&root, &args),
        Cmd::Sim { args } => sim::run(&root, &args),
        Cmd::Kv { cmd } => morgana_kvtool::cli::run(&cmd, &mut std::io::stdout().lock())
            .map_err(|e| Failure::new(format!("kv: {e}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { message, code }) => {
            if !message.is_empty() {
                eprintln!("{message}");
            }
            ExitCode::from(code)
        }
    }
}

/// `--runs N` among a benchmark's options (default 10).
fn runs_arg(args: &[String]) -> Result<usize, Failure> {
    match args.iter().position(|a| a == "--runs") {
        None => Ok(10),
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Failure::usage("--runs: expected a number of runs")),
    }
}

/// A command that failed: one line for the user and the exit status.
pub struct Failure {
    message: String,
    code: u8,
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

/// Result of an xtask step.
pub type Outcome = Result<(), Failure>;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// The names of the apps (see [`meta::apps`]).
pub fn apps(root: &Path) -> Result<Vec<String>, Failure> {
    Ok(meta::apps(root)?.into_iter().map(|a| a.name).collect())
}

fn list(root: &Path) -> Outcome {
    println!("apps:");
    for app in meta::apps(root)? {
        let needs = match (app.nic, app.disk) {
            (true, true) => " [NIC, disk]",
            (true, false) => " [NIC]",
            (false, true) => " [disk]",
            (false, false) => "",
        };
        println!("  {:<12} {}{needs}", app.name, app.description);
    }
    println!("targets:");
    for t in TARGETS {
        println!("  {:<12} {}", t.name, t.about);
    }
    Ok(())
}

fn check_app_and_target(root: &Path, app: &str, target: Target) -> Outcome {
    let app = meta::app(root, app)?;
    let target = target.name;
    if !app.supports(target) {
        return Err(Failure::usage(format!(
            "{} does not run on --target {target} (its Cargo.toml's [package.metadata.morgana] targets: {})",
            app.name,
            app.targets.unwrap_or_default().join(", ")
        )));
    }
    Ok(())
}

/// A `cargo` command, honouring `$CARGO` when run through cargo.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// A long soak in a package's integration test, in release: `cargo test --release -p PACKAGE
/// --test TEST -- [FILTER...] --nocapture`, with `env` saying how long.
pub fn run_soak(package: &str, test: &str, filter: &[&str], env: (&str, &str)) -> Outcome {
    exec(
        cargo()
            .args(["test", "--release", "-p", package, "--test", test, "--"])
            .args(filter)
            .arg("--nocapture")
            .env(env.0, env.1),
    )
}

/// Run `cmd`, echoing it; a failure passes its exit status through.
pub fn exec(cmd: &mut Command) -> Outcome {
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(Failure::status(s.code())),
        Err(e) => Err(Failure::new(format!("cannot start {:?}: {e}", cmd.get_program()))),
    }
}

fn profile_args(release: bool) -> &'static [&'static str] {
    if release { &["--release"] } else { &[] }
}

/// `--features morgana-app/FEATURE`, selecting a target that shares the host's Rust target.
fn feature_args(feature: Option<&str>) -> Vec<String> {
    feature.map(|f| vec!["--features".into(), format!("morgana-app/{f}")]).unwrap_or_default()
}

fn run_process(app: &str, feature: Option<&str>, release: bool, args: &[String]) -> Outcome {
    let mut c = cargo();
    c.args(["run", "--quiet", "-p", app]).args(feature_args(feature)).args(profile_args(release));
    exec(c.arg("--").args(args))
}

fn build_process(root: &Path, app: &str, feature: Option<&str>, release: bool) -> Outcome {
    let mut c = cargo();
    c.args(["build", "--quiet", "-p", app, "--bin", app]).args(feature_args(feature));
    exec(c.args(profile_args(release)))?;
    let bin = root.join("target").join(if release { "release" } else { "debug" }).join(app);
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    println!("{} ({} KiB)", bin.display(), size / 1024);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cargo xtask").chain(args.iter().copied()))
    }

    #[test]
    fn the_readme_command_lines_parse() {
        let Cmd::Run { app, target, qemu, args, .. } =
            parse(&["run", "echo", "--target", "virtio", "--forward", "8080:7", "--", "--port", "7"])
                .unwrap()
                .command
        else {
            panic!("not a run")
        };
        assert_eq!((app.as_str(), target.name, target.runs), ("echo", "virtio", Runs::Qemu));
        assert_eq!(
            (qemu.forward, args),
            (vec!["8080:7".to_string()], vec!["--port".to_string(), "7".into()])
        );
        let Cmd::Build { target, .. } = parse(&["build", "www"]).unwrap().command else {
            panic!("not a build")
        };
        assert_eq!(target.runs, Runs::Process { feature: None }, "unix by default");
        assert!(matches!(parse(&["size"]).unwrap().command, Cmd::Size));
        let Cmd::Bench { what, args } =
            parse(&["bench", "tcpip", "--quick", "--only", "mem"]).unwrap().command
        else {
            panic!("not a bench")
        };
        assert_eq!((what.as_str(), args.len()), ("tcpip", 3));
        let Cmd::Test { qemu_only, filter } = parse(&["test", "--qemu-only", "echo"]).unwrap().command else {
            panic!("not a test")
        };
        assert!(qemu_only && filter.as_deref() == Some("echo"));
        let Cmd::Kv { cmd } = parse(&["kv", "mkfs", "disk.img", "--size", "64M"]).unwrap().command else {
            panic!("not kv")
        };
        assert_eq!(cmd, morgana_kvtool::cli::Command::Mkfs { image: "disk.img".into(), size: 64 << 20 });
        for line in
            [&["kv", "ls", "disk.img"][..], &["kv", "ls", "disk.img", "/notes", "-r"], &["kv", "check", "d"]]
        {
            assert!(parse(line).is_ok(), "{line:?}");
        }
        assert!(parse(&["kv", "get", "disk.img", "/a//b"]).is_err(), "a bad key is a usage error");
    }

    #[test]
    fn an_unknown_target_is_refused_with_the_valid_ones() {
        let e = parse(&["run", "echo", "--target", "vmware"]).err().unwrap();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue);
        let text = e.to_string();
        assert!(text.contains("'vmware'") && text.contains("unix") && text.contains("virtio"), "{text}");
    }
}
