//! Running scenarios over seeds: what `cargo xtask sim` does.
//!
//! Each seed prints its result, a line `trace <hex hash>` and a line `speedup <N>x`. The first
//! seed of a run is run twice, the second compared with the first event by event (the
//! determinism check), unless told not to. A failing seed prints the command that replays
//! it, and is replayed at once, recording: its trace goes to `DIR/SCENARIO-SEED.trace` and the
//! switch's capture to `DIR/SCENARIO-SEED.pcap`, and the replay must reach the same hash.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::scenarios::Scenario;
use crate::{Outcome, WorldConfig};

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seeds to run, in order.
    pub seeds: std::ops::Range<u64>,
    /// Swarm mode.
    pub swarm: bool,
    /// Run the first seed twice and compare.
    pub check: bool,
    /// Keep going after a failing seed.
    pub keep_going: bool,
    /// Where failing traces and captures go.
    pub out: PathBuf,
}

/// What a batch of seeds did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Seeds run.
    pub runs: u64,
    /// Seeds that failed.
    pub failed: Vec<u64>,
    /// Simulated seconds.
    pub simulated: f64,
    /// Wall seconds.
    pub wall: f64,
    /// The determinism check's complaint, if any.
    pub nondeterministic: Option<String>,
}

impl Summary {
    /// Whether every seed passed and the check found nothing.
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.nondeterministic.is_none()
    }
}

/// The command that replays `seed` of `scenario`.
pub fn replay_command(scenario: &str, seed: u64, swarm: bool) -> String {
    format!("cargo xtask sim {scenario} --seed {seed}{}", if swarm { " --swarm" } else { "" })
}

/// Run `scenario` once.
pub fn run_once(scenario: &Scenario, seed: u64, swarm: bool) -> Outcome {
    let mut c = WorldConfig::new(seed);
    c.swarm = swarm;
    (scenario.run)(c)
}

/// Run `scenario` with `seed` twice, the second compared with the first: `None` if they
/// agree, else what differed.
pub fn determinism(scenario: &Scenario, seed: u64, swarm: bool) -> (Outcome, Option<String>) {
    let mut c = WorldConfig::new(seed);
    c.swarm = swarm;
    c.record = true;
    let mut first = (scenario.run)(c.clone());
    let reference = first.trace.take_events().unwrap_or_default();
    c.record = false;
    c.compare = Some(reference);
    let second = (scenario.run)(c);
    let differs = match second.trace.divergence() {
        Some(d) => Some(d.to_string()),
        None if second.hash != first.hash => Some(format!(
            "the hashes differ ({:016x} then {:016x}) but no event did",
            first.hash, second.hash
        )),
        None => None,
    };
    (first, differs)
}

fn line(scenario: &Scenario, out: &Outcome) -> String {
    let mut s = String::new();
    let verdict = match &out.result {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("FAILED: {e}"),
    };
    let _ = writeln!(
        s,
        "{} seed {} {verdict}\n  {:.3} s simulated in {:.3} s, {} events",
        scenario.name,
        out.seed,
        out.end.as_nanos() as f64 / 1e9,
        out.wall.as_secs_f64(),
        out.trace.len()
    );
    if let Some(mix) = &out.swarm {
        let _ = writeln!(s, "  swarm: {mix}");
    }
    let _ = writeln!(s, "trace {:016x}", out.hash);
    let _ = write!(s, "speedup {:.0}x", out.speedup());
    s
}

/// Write the failing seed's trace and capture (replaying it, recording); the files, and whether
/// the replay reached the same hash.
fn keep_failure(scenario: &Scenario, first: &Outcome, opts: &Options) -> String {
    let mut c = WorldConfig::new(first.seed);
    c.swarm = opts.swarm;
    c.record = true;
    c.capture = true;
    let again = (scenario.run)(c);
    let mut msg = String::new();
    if again.hash != first.hash {
        let _ = writeln!(
            msg,
            "the replay reached trace {:016x}, not {:016x}: the run is not deterministic",
            again.hash, first.hash
        );
    }
    if let Err(e) = std::fs::create_dir_all(&opts.out) {
        let _ = write!(msg, "cannot create {}: {e}", opts.out.display());
        return msg;
    }
    let base = opts.out.join(format!("{}-{}", scenario.name, first.seed));
    let trace_file = base.with_extension("trace");
    let mut text = String::new();
    for r in again.trace.events().unwrap_or_default() {
        let _ = writeln!(text, "{r}");
    }
    let _ = writeln!(text, "trace {:016x}", again.hash);
    match std::fs::write(&trace_file, text) {
        Ok(()) => {
            let _ = write!(msg, "trace written to {} ({} events)", trace_file.display(), again.trace.len());
        }
        Err(e) => {
            let _ = write!(msg, "cannot write {}: {e}", trace_file.display());
        }
    }
    if let Some(pcap) = &again.pcap {
        let pcap_file = base.with_extension("pcap");
        match std::fs::write(&pcap_file, pcap.bytes()) {
            Ok(()) => {
                let _ = write!(msg, "; switch capture {} ({} frames)", pcap_file.display(), pcap.frames());
            }
            Err(e) => {
                let _ = write!(msg, "; cannot write {}: {e}", pcap_file.display());
            }
        }
    }
    msg
}

/// Run `scenario` over `opts.seeds`, printing each; the summary.
pub fn run(scenario: &Scenario, opts: &Options) -> Summary {
    let mut summary = Summary::default();
    for seed in opts.seeds.clone() {
        let out = if opts.check && seed == opts.seeds.start {
            let (out, differs) = determinism(scenario, seed, opts.swarm);
            match &differs {
                Some(d) => println!("determinism check, seed {seed}: NOT deterministic: {d}"),
                None => {
                    println!("determinism check, seed {seed}: two runs, the same {} events", out.trace.len())
                }
            }
            summary.nondeterministic = differs;
            out
        } else {
            run_once(scenario, seed, opts.swarm)
        };
        println!("{}", line(scenario, &out));
        summary.runs += 1;
        summary.simulated += out.end.as_nanos() as f64 / 1e9;
        summary.wall += out.wall.as_secs_f64();
        if out.result.is_err() {
            println!("replay: {}", replay_command(scenario.name, seed, opts.swarm));
            println!("{}", keep_failure(scenario, &out, opts));
            summary.failed.push(seed);
            if !opts.keep_going {
                break;
            }
        }
    }
    println!(
        "{}: {} seeds, {} failed; {:.1} s simulated in {:.2} s (speedup {:.0}x), {:.2} seeds/s",
        scenario.name,
        summary.runs,
        summary.failed.len(),
        summary.simulated,
        summary.wall,
        summary.simulated / summary.wall.max(1e-9),
        summary.runs as f64 / summary.wall.max(1e-9)
    );
    summary
}
