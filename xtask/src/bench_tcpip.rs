//! `cargo xtask bench tcpip [--quick] [--only mem|tap|link|flood] [--mib N] [--runs N] [--cap-secs S]`,
//! or `--soak [--seeds N]`.
//!
//! Without `--soak`, three rows. `mem`: bulk TCP through `morgana-tcpip` against raw smoltcp
//! driven by hand on the same in-memory link, printed as a throughput ratio (release build;
//! `--mib`, `--runs`). Then, as root (without it, one line says so), in namespaces the bench
//! creates: `tap`, Linux → unikernel `echo` over TAP beside Linux → Linux over a veth pair; and
//! `link`, the matrix through the userspace link emulator (`morgana_netns::Link`): goodput of
//! `morgana-tcpip` against Linux TCP for loss 0/1/5/10 % × RTT 0.2/20/100 ms, with morgana
//! receiving and with morgana sending, medians of 5 runs of 64 MiB each capped at `--cap-secs`
//! (20 s), then fairness at a 100 Mbit/s bottleneck. `--quick`: fewer, smaller runs in every
//! row (the link matrix: 3 runs of 8 MiB capped at 5 s). `--only ROW` runs one row. With
//! `--soak`: the seeded 10 MiB transfers under loss, reordering and duplication, over many more
//! seeds than `cargo test` runs (2000 by default).

use std::path::Path;

use morgana_netns::is_root;

use crate::{Failure, Outcome, cargo, exec, run_soak};

/// Run the TCP/IP benchmark or soak, `args` being what followed `bench tcpip`.
pub fn run(root: &Path, args: &[String]) -> Outcome {
    let (mut soak, mut quick) = (false, false);
    let mut only: Option<String> = None;
    let (mut seeds, mut mib, mut runs, mut cap) = (None, None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next().cloned().ok_or_else(|| Failure::usage(format!("{name}: a value is required")))
        };
        match a.as_str() {
            "--soak" => soak = true,
            "--quick" => quick = true,
            "--only" => only = Some(value("--only")?),
            "--seeds" => seeds = Some(value("--seeds")?),
            "--mib" => mib = Some(value("--mib")?),
            "--runs" => runs = Some(value("--runs")?),
            "--cap-secs" => cap = Some(value("--cap-secs")?),
            other => {
                return Err(Failure::usage(format!(
                    "bench tcpip: unknown argument '{other}'; use --soak [--seeds N], or [--quick] [--only \
                     mem|tap|link] [--mib N] [--runs N] [--cap-secs S]"
                )));
            }
        }
    }
    for (name, v) in [("--seeds", &seeds), ("--mib", &mib), ("--runs", &runs), ("--cap-secs", &cap)] {
        if let Some(v) = v
            && v.parse::<u64>().map_or(true, |n| n == 0)
        {
            return Err(Failure::usage(format!("{name}: expected a positive number, got '{v}'")));
        }
    }
    if let Some(row) = &only
        && !["mem", "tap", "link", "flood"].contains(&row.as_str())
    {
        return Err(Failure::usage(format!("--only: one of mem, tap, link, flood; got '{row}'")));
    }
    if soak {
        let seeds = seeds.unwrap_or_else(|| "2000".into());
        println!("==> soak: {seeds} seeds of 10 MiB under 10% loss, reordering and duplication");
        return run_soak(
            "morgana-tcpip",
            "tcp",
            &["--ignored", "--exact", "soak"],
            ("MORGANA_SOAK_SEEDS", &seeds),
        );
    }
    let wants = |row: &str| only.as_deref().is_none_or(|o| o == row);
    let bench = || {
        let mut cmd = cargo();
        cmd.args(["run", "--quiet", "--release", "-p", "morgana-tcpip-bench", "--"]);
        cmd
    };
    if wants("mem") {
        let mib = mib.clone().unwrap_or_else(|| if quick { "32" } else { "256" }.into());
        let runs = runs.clone().unwrap_or_else(|| if quick { "3" } else { "15" }.into());
        exec(bench().args([&mib, &runs]))?;
        println!();
    }
    if !wants("tap") && !wants("link") && !wants("flood") {
        return Ok(());
    }
    if !is_root() {
        println!(
            "TAP vs veth, emulated link: skipped, they need root (they create network namespaces and TAP devices): \
             run `cargo xtask bench tcpip` as root"
        );
        return Ok(());
    }
    exec(cargo().args(["build", "--quiet", "--release", "-p", "echo", "--bin", "echo"]))?;
    let echo = root.join("target/release/echo");
    if wants("tap") {
        let mut cmd = bench();
        cmd.arg("tap").arg(&echo);
        if quick {
            cmd.args(["16", "3"]);
        }
        exec(&mut cmd)?;
        println!();
    }
    if wants("link") {
        let mut cmd = bench();
        cmd.arg("link").arg(&echo);
        if quick {
            cmd.arg("--quick");
        }
        if let Some(cap) = &cap {
            cmd.args(["--cap-secs", cap]);
        }
        // --mib and --runs go to the link matrix only when it is the one row asked for.
        if only.as_deref() == Some("link") {
            for (flag, v) in [("--mib", &mib), ("--runs", &runs)] {
                if let Some(v) = v {
                    cmd.args([flag, v]);
                }
            }
        }
        exec(&mut cmd)?;
        println!();
    }
    if wants("flood") {
        let mut cmd = bench();
        cmd.arg("flood").arg(&echo);
        if quick {
            cmd.args(["--secs", "4"]);
        }
        exec(&mut cmd)?;
    }
    Ok(())
}
