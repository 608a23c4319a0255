//! `cargo xtask`: the one entry point to build, run, test and measure Morgana unikernels.
//!
//! ```text
//! cargo xtask list                                  apps and targets
//! cargo xtask run APP [--target unix] [-- ARGS]     run an app
//! cargo xtask build APP [--target unix]             build an app, print the binary's path
//! cargo xtask new NAME --path DIR [--git URL [--rev REV]]   a new unikernel crate outside
//! cargo xtask test [--qemu-only] [FILTER]         fmt, clippy, tests, no_std builds, QEMU boots
//! cargo xtask size                                  bare-metal image size per app
//! cargo xtask bench boot [--runs N]                 boot time against an empty kernel
//! cargo xtask bench www [--quick]                   figures, as ratios against a peer
//! cargo xtask bench tcpip [--quick] [--only ROW]    TCP/IP throughput ratios, the emulated-link matrix;
//! cargo xtask bench tcpip --soak                    or the long soak
//! cargo xtask bench store [--quick] [--accel tcg|kvm] durable commits and batches against redb, and on virtio-blk;
//! cargo xtask bench store --soak [--cuts N]         or the long power-cut sweep
//! cargo xtask fuzz [TARGET] [--time SECONDS]        fuzz targets (nightly, cargo-fuzz)
//! cargo xtask sim SCENARIO [--seed N | --seeds N..M] [--swarm]   deterministic simulation;
//! cargo xtask sim --list                            its scenarios; cargo xtask bench sim: figures
//! cargo xtask kv mkfs|put|get|ls|import|export|check IMAGE ...   a morgana-store image on the host
//! ```
//!
//! `list`, `build`, `run`, `new` and `size` are front ends over `cargo-morgana`'s library (the
//! installed `cargo morgana` runs the same code in a user's own crate): the targets, the apps'
//! metadata, the builds, QEMU and its options (`--target virtio`: [`cargo_morgana::virtio`]).
//! `cargo xtask test` runs the checks; the tests themselves live in the crates they test (the
//! QEMU suite in `impls/virtio-tests`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cargo_morgana::cli::NewArgs;
use cargo_morgana::meta;
use cargo_morgana::target::{self, TARGETS, Target};
use cargo_morgana::virtio::QemuArgs;
use clap::{Parser, Subcommand};

pub use cargo_morgana::{Failure, Outcome, cargo, exec};

mod bench_boot;
mod bench_store;
mod bench_tcpip;
mod bench_www;
mod fuzz;
mod images;
mod sim;
mod test;
mod tools;

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
        qemu: QemuArgs,
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
    /// Write a new unikernel crate outside this workspace, depending on this checkout (or --git).
    New(NewArgs),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match cli.command {
        Cmd::List => list(&root),
        Cmd::Run { app, target, release, qemu, args } => workspace_app(&root, &app)
            .and_then(|(ws, app)| target::run(&ws, &app, target, release, &qemu, &args)),
        Cmd::Build { app, target, release } => {
            workspace_app(&root, &app).and_then(|(ws, app)| target::build(&ws, &app, target, release))
        }
        Cmd::New(new) => new.write(Some(&root)),
        Cmd::Test { qemu_only, filter } => test::run(&root, qemu_only, filter.as_deref()),
        Cmd::Size => images::size(&root),
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

/// The workspace and its app `name` (one of those under `apps/`).
fn workspace_app(root: &Path, name: &str) -> Result<(meta::Workspace, meta::App), Failure> {
    let ws = images::workspace(root)?;
    let app = meta::app(&ws.apps_under(&root.join("apps")), name)?;
    Ok((ws, app))
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
        assert_eq!((app.as_str(), target.name, target.runs), ("echo", "virtio", target::Runs::Qemu));
        assert_eq!(
            (qemu.forward, args),
            (vec!["8080:7".to_string()], vec!["--port".to_string(), "7".into()])
        );
        let Cmd::Build { target, .. } = parse(&["build", "www"]).unwrap().command else {
            panic!("not a build")
        };
        assert_eq!(target.runs, target::Runs::Process { feature: None }, "unix by default");
        let Cmd::New(new) = parse(&["new", "demo", "--path", "../demo"]).unwrap().command else {
            panic!("not a new")
        };
        assert_eq!((new.name.as_str(), new.path.to_str(), new.git), ("demo", Some("../demo"), None));
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
