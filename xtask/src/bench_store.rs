//! `cargo xtask bench store [--quick] [--dir DIR]`, or `--soak [--cuts N]`.
//!
//! Without `--soak`: morgana-store on a hosted file against redb on the same file system
//! (durable single-key commits per second, batch MB/s, write amplification), release build, in
//! `DIR` (default `target/bench-store`, on the repository's file system). With `--soak`: the
//! power-cut sweep of `cargo test` over far more cut points (200,000 by default).

use std::path::Path;

use crate::{Failure, Outcome, cargo, exec, run_soak};

/// Run the store benchmark or soak, `args` being what followed `bench store`.
pub fn run(root: &Path, args: &[String]) -> Outcome {
    let (mut soak, mut quick) = (false, false);
    let (mut cuts, mut dir) = (None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next().cloned().ok_or_else(|| Failure::usage(format!("{name}: a value is required")))
        };
        match a.as_str() {
            "--soak" => soak = true,
            "--quick" => quick = true,
            "--cuts" => cuts = Some(value("--cuts")?),
            "--dir" => dir = Some(value("--dir")?),
            other => {
                return Err(Failure::usage(format!(
                    "bench store: unknown argument '{other}'; use [--quick] [--dir DIR], or --soak [--cuts N]"
                )));
            }
        }
    }
    if let Some(v) = &cuts
        && v.parse::<u64>().map_or(true, |n| n == 0)
    {
        return Err(Failure::usage(format!("--cuts: expected a positive number, got '{v}'")));
    }
    if soak {
        let cuts = cuts.unwrap_or_else(|| "200000".into());
        println!("==> soak: {cuts} power cuts, each recovered and checked against the model");
        return run_soak("morgana-store", "power_cut", &[], ("MORGANA_STORE_CUTS", &cuts));
    }
    let dir = dir.unwrap_or_else(|| root.join("target/bench-store").display().to_string());
    let sizes: &[&str] = if quick { &["200", "5", "10000"] } else { &["2000", "20", "10000"] };
    exec(cargo().args(["run", "--quiet", "--release", "-p", "morgana-store-bench", "--", &dir]).args(sizes))
}
