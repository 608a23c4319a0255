//! `cargo xtask bench tcpip [--soak] [--seeds N] [--mib N] [--runs N]`.
//!
//! Without `--soak`: bulk TCP through `morgana-tcpip` against raw smoltcp driven by hand on the
//! same in-memory link, printed as a throughput ratio (release build); then, as root, Linux →
//! unikernel `echo` over TAP beside Linux → Linux over a veth pair, in namespaces the bench
//! creates (without root, one line says so). With `--soak`: the seeded 10 MiB transfers under
//! loss, reordering and duplication, over many more seeds than `cargo test` runs (2000 by
//! default).

use std::path::Path;

use crate::{Failure, Outcome, cargo, exec};

/// Run the TCP/IP benchmark or soak, `args` being what followed `bench tcpip`.
pub fn run(root: &Path, args: &[String]) -> Outcome {
    let mut soak = false;
    let (mut seeds, mut mib, mut runs) = ("2000".to_string(), "256".to_string(), "15".to_string());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next().cloned().ok_or_else(|| Failure::usage(format!("{name}: a number is required")))
        };
        match a.as_str() {
            "--soak" => soak = true,
            "--seeds" => seeds = value("--seeds")?,
            "--mib" => mib = value("--mib")?,
            "--runs" => runs = value("--runs")?,
            other => {
                return Err(Failure::usage(format!(
                    "bench tcpip: unknown argument '{other}'; use --soak [--seeds N] or [--mib N] [--runs N]"
                )));
            }
        }
    }
    for (name, v) in [("--seeds", &seeds), ("--mib", &mib), ("--runs", &runs)] {
        if v.parse::<u64>().map_or(true, |n| n == 0) {
            return Err(Failure::usage(format!("{name}: expected a positive number, got '{v}'")));
        }
    }
    if soak {
        println!("==> soak: {seeds} seeds of 10 MiB under 10% loss, reordering and duplication");
        exec(
            cargo()
                .args([
                    "test",
                    "--release",
                    "-p",
                    "morgana-tcpip",
                    "--test",
                    "tcp",
                    "--",
                    "--ignored",
                    "--exact",
                ])
                .args(["soak", "--nocapture"])
                .env("MORGANA_SOAK_SEEDS", &seeds),
        )
    } else {
        let bench = || {
            let mut cmd = cargo();
            cmd.args(["run", "--quiet", "--release", "-p", "morgana-tcpip-bench", "--"]);
            cmd
        };
        exec(bench().args([&mib, &runs]))?;
        println!();
        if !is_root() {
            println!(
                "TAP vs veth: skipped, it needs root (it creates network namespaces and a TAP device): run \
                 `cargo xtask bench tcpip` as root"
            );
            return Ok(());
        }
        exec(cargo().args(["build", "--quiet", "--release", "-p", "echo", "--bin", "echo"]))?;
        let echo = root.join("target/release/echo");
        exec(bench().arg("tap").arg(echo))
    }
}

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1)) == Some("0")
}
