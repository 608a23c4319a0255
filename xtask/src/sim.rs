//! `cargo xtask sim SCENARIO [--seed N | --seeds N..M] [--swarm]`, `cargo xtask sim --list`, and
//! `cargo xtask bench sim [--quick]`: the deterministic simulator's runner (`morgana-sim`),
//! built optimised (the `sim` profile: release without LTO, so that it builds quickly).
//!
//! Each seed prints its result, `trace <hex hash>` and `speedup <N>x`; a failing seed prints the
//! command that replays it, and its trace and the switch's pcap go to `target/sim-runs/`. The
//! exit status is the runner's: 0 when every seed passed.

use std::path::Path;

use crate::{Outcome, cargo, exec};

fn runner(root: &Path) -> std::process::Command {
    let mut c = cargo();
    c.args(["run", "--quiet", "--profile", "sim", "-p", "morgana-sim", "--bin", "morgana-sim", "--"]);
    c.arg("--out").arg(root.join("target/sim-runs"));
    c
}

/// `cargo xtask sim ARGS`: the runner with `args`.
pub fn run(root: &Path, args: &[String]) -> Outcome {
    exec(runner(root).args(args))
}

/// `cargo xtask bench sim [--quick]`: every scenario's simulated/wall ratio and seeds per second.
pub fn bench(root: &Path, args: &[String]) -> Outcome {
    exec(runner(root).arg("--bench").args(args))
}
