//! `morgana-sim`: run simulation scenarios (what `cargo xtask sim` runs).
//!
//! ```text
//! morgana-sim --list
//! morgana-sim SCENARIO [--seed N | --seeds N..M] [--swarm] [--log LEVEL] [--no-check] [--keep-going] [--out DIR]
//! morgana-sim --bench [--quick]
//! ```

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use morgana_sim::runner::{self, Options};
use morgana_sim::scenarios::{self, ALL};

#[derive(Parser)]
#[command(name = "cargo xtask sim", about = "Deterministic simulation: run a scenario over seeds")]
struct Cli {
    /// The scenario (see --list).
    scenario: Option<String>,
    /// List the scenarios, one a line, name first.
    #[arg(long)]
    list: bool,
    /// Run this seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run the seeds N..M (M excluded).
    #[arg(long, value_parser = parse_range)]
    seeds: Option<std::ops::Range<u64>>,
    /// Let the seed choose which faults are on and how strong.
    #[arg(long)]
    swarm: bool,
    /// Log level of the nodes' logs (error, warn, info, debug, trace); it does not change the
    /// trace. The default is `error`: clients in a loop warn on every request.
    #[arg(long, default_value = "error")]
    log: String,
    /// Skip the determinism check (the first seed run twice and compared).
    #[arg(long)]
    no_check: bool,
    /// Keep going after a failing seed.
    #[arg(long)]
    keep_going: bool,
    /// Where failing seeds' traces and captures are written.
    #[arg(long, default_value = "target/sim-runs")]
    out: PathBuf,
    /// Measure every scenario: simulated time over wall time, seeds per second.
    #[arg(long)]
    bench: bool,
    /// With --bench: one seed each.
    #[arg(long)]
    quick: bool,
}

fn parse_range(s: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = s.split_once("..").ok_or_else(|| format!("expected N..M, got {s:?}"))?;
    let (a, b): (u64, u64) = (
        a.parse().map_err(|_| format!("bad start {a:?}"))?,
        b.parse().map_err(|_| format!("bad end {b:?}"))?,
    );
    if b <= a {
        return Err(format!("{s}: the range is empty (M is excluded)"));
    }
    Ok(a..b)
}

/// Log lines stamped with world time and the node.
struct Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let (at, node) = morgana_sim::running();
        let ns = at.as_nanos();
        let who = if node == u16::MAX { "director".to_string() } else { format!("n{node}") };
        let _ = writeln!(
            std::io::stderr(),
            "[{:5}.{:06} {who}] {:<5} {}: {}",
            ns / 1_000_000_000,
            (ns % 1_000_000_000) / 1000,
            r.level(),
            r.target(),
            r.args()
        );
    }
    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(level) = morgana_target::log_level(&cli.log) else {
        eprintln!("--log: expected error, warn, info, debug or trace, got {:?}", cli.log);
        return ExitCode::from(2);
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
    if cli.list {
        for s in ALL {
            println!("{:<16} {}", s.name, s.about);
        }
        return ExitCode::SUCCESS;
    }
    if cli.bench {
        return bench(cli.quick);
    }
    let Some(name) = cli.scenario else {
        eprintln!("name a scenario (cargo xtask sim --list shows them)");
        return ExitCode::from(2);
    };
    let Some(scenario) = scenarios::find(&name) else {
        let names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
        eprintln!("unknown scenario '{name}'; valid: {}", names.join(", "));
        return ExitCode::from(2);
    };
    let seeds = match (cli.seed, cli.seeds) {
        (Some(s), _) => s..s + 1,
        (None, Some(r)) => r,
        (None, None) => 1..2,
    };
    let opts =
        Options { seeds, swarm: cli.swarm, check: !cli.no_check, keep_going: cli.keep_going, out: cli.out };
    let summary = runner::run(scenario, &opts);
    if summary.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// This thread's time on a CPU, in seconds (`/proc/thread-self/schedstat`), where Linux says.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(stat.split_whitespace().next()?.parse::<f64>().ok()? / 1e9)
}

/// `cargo xtask bench sim`: each scenario's simulated/wall ratio and seeds per second, and the
/// same against CPU time (on a busy machine, wall time counts other processes' turns).
fn bench(quick: bool) -> ExitCode {
    println!(
        "{:<16} {:>5} {:>11} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "scenario", "seeds", "simulated s", "wall s", "speedup", "cpu s", "cpu spdup", "seeds/s"
    );
    for s in ALL {
        let seeds: u64 = if quick || s.name == "www" { 1 } else { 3 };
        let (mut sim, mut wall, mut failed) = (0.0, 0.0, 0);
        let cpu0 = cpu_seconds();
        for seed in 1..=seeds {
            let out = runner::run_once(s, seed, false);
            sim += out.end.as_nanos() as f64 / 1e9;
            wall += out.wall.as_secs_f64();
            failed += u32::from(out.result.is_err());
        }
        let cpu = cpu0.zip(cpu_seconds()).map_or(f64::NAN, |(a, b)| b - a);
        let note = if failed > 0 { format!(" ({failed} failed)") } else { String::new() };
        println!(
            "{:<16} {:>5} {:>11.1} {:>8.2} {:>7.0}x {:>8.2} {:>8.0}x {:>8.2}{note}",
            s.name,
            seeds,
            sim,
            wall,
            sim / wall.max(1e-9),
            cpu,
            sim / cpu.max(1e-9),
            seeds as f64 / wall.max(1e-9)
        );
    }
    ExitCode::SUCCESS
}
