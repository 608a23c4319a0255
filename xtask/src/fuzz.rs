//! `cargo xtask fuzz [TARGET] [--time SECONDS]`: the fuzz targets in `fuzz/` (a crate outside
//! the workspace), run with cargo-fuzz on the nightly toolchain.
//!
//! Each run first writes the seed corpus (`fuzz/corpus/TARGET/`, made by the project's own
//! code: the `seeds` program of the fuzz crate), then runs libFuzzer under `nice -n 19` and
//! prints the target's executions and coverage. A crash stops the run; its input is in
//! `fuzz/artifacts/TARGET/`. Once fixed, keep it in `fuzz/crashes/TARGET/`: `cargo xtask test`
//! replays every file there (on stable, without libFuzzer) and runs each target for
//! [`SMOKE_SECS`] when nightly is installed.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{Failure, Outcome, cargo, exec};

/// The targets, in the order they run (the names of `fuzz/fuzz_targets/*.rs`).
pub const TARGETS: &[&str] =
    &["args", "key", "crunch", "store", "http_server", "http_client", "tls_server", "tls_client", "tcpip"];

/// How long `cargo xtask test` runs each target.
pub const SMOKE_SECS: u64 = 20;

/// The cargo-fuzz release the project uses.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// `cargo xtask fuzz`: `args` are `[TARGET] [--time SECONDS]` (default: every target, 60 s each).
pub fn run(root: &Path, args: &[String]) -> Outcome {
    let mut target = None;
    let mut secs = 60;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--time" => {
                secs = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| Failure::usage("--time: expected a number of seconds"))?;
            }
            t if TARGETS.contains(&t) && target.is_none() => target = Some(t),
            other => {
                return Err(Failure::usage(format!(
                    "unknown fuzz target or option '{other}'; targets: {}; option: --time SECONDS",
                    TARGETS.join(", ")
                )));
            }
        }
    }
    if let Some(missing) = missing_toolchain() {
        return Err(Failure::new(format!("cargo xtask fuzz needs {missing}")));
    }
    ensure_cargo_fuzz()?;
    let targets: Vec<&str> = target.map_or_else(|| TARGETS.to_vec(), |t| vec![t]);
    seeds(root)?;
    let mut summary = Vec::new();
    for t in targets {
        summary.push(fuzz_one(root, t, secs)?);
    }
    println!("==> fuzz summary");
    summary.iter().for_each(|line| println!("  {line}"));
    Ok(())
}

/// `cargo xtask test`'s fuzz steps: format and lints of the fuzz crate, its replay of every
/// seed and kept crash input (stable), then [`SMOKE_SECS`] of each target if nightly is there.
pub fn test(root: &Path) -> Outcome {
    let manifest = root.join("fuzz/Cargo.toml");
    let target_dir = root.join("fuzz/target");
    // `cargo SUBCOMMAND --manifest-path fuzz/Cargo.toml ARGS`: the path goes before any `--`.
    let step = |name: &str, sub: &str, args: &[&str]| {
        println!("==> {name}");
        let mut cmd = cargo();
        cmd.arg(sub).arg("--manifest-path").arg(&manifest).args(args).env("CARGO_TARGET_DIR", &target_dir);
        exec(&mut cmd).inspect_err(|_| eprintln!("xtask test: step '{name}' failed"))
    };
    step("fuzz crate: cargo fmt --check", "fmt", &["--check"])?;
    step(
        "fuzz crate: cargo clippy -D warnings",
        "clippy",
        &["--quiet", "--all-targets", "--", "-D", "warnings"],
    )?;
    step("fuzz crate: replay seeds and kept crash inputs", "test", &["--quiet"])?;
    if let Some(missing) = missing_toolchain() {
        println!("==> fuzz smoke skipped: it needs {missing}");
        return Ok(());
    }
    ensure_cargo_fuzz()?;
    seeds(root)?;
    let mut summary = Vec::new();
    for t in TARGETS {
        summary.push(fuzz_one(root, t, SMOKE_SECS)?);
    }
    println!("==> fuzz smoke: {} targets, {SMOKE_SECS} s each, no crash", TARGETS.len());
    summary.iter().for_each(|line| println!("  {line}"));
    Ok(())
}

/// A nightly `cargo` (through rustup).
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly");
    outer_cargo_env_removed(&mut cmd);
    cmd
}

/// `cmd` without the variables the stable cargo that runs xtask set (its toolchain, library
/// path, package variables): with them, the nightly build would differ from one started by hand
/// and rebuild everything each time.
fn outer_cargo_env_removed(cmd: &mut Command) {
    for (var, _) in std::env::vars_os() {
        let Some(name) = var.to_str() else { continue };
        let outer = (name.starts_with("CARGO") && name != "CARGO_HOME")
            || name.starts_with("RUSTUP_TOOLCHAIN")
            || matches!(name, "RUSTC" | "RUSTDOC" | "LD_LIBRARY_PATH" | "RUST_RECURSION_COUNT");
        if outer {
            cmd.env_remove(&var);
        }
    }
}

/// What is missing to fuzz (the nightly toolchain cannot be installed without its download
/// server), or `None`.
fn missing_toolchain() -> Option<&'static str> {
    let ok = nightly_cargo().arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if ok.is_ok_and(|s| s.success()) {
        None
    } else {
        Some("the nightly toolchain (`rustup toolchain install nightly`)")
    }
}

/// Install cargo-fuzz from crates.io if it is not there.
fn ensure_cargo_fuzz() -> Outcome {
    let have =
        nightly_cargo().args(["fuzz", "--version"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    if have.is_ok_and(|s| s.success()) {
        return Ok(());
    }
    println!("==> cargo install cargo-fuzz --version {CARGO_FUZZ_VERSION} --locked");
    exec(cargo().args(["install", "cargo-fuzz", "--locked", "--version", CARGO_FUZZ_VERSION])).map_err(|_| {
        Failure::new(format!(
            "cargo-fuzz is missing and could not be installed: run `cargo install cargo-fuzz --version {CARGO_FUZZ_VERSION} --locked`"
        ))
    })
}

/// Write every target's seeds into `fuzz/corpus/` (beside what earlier runs kept there).
fn seeds(root: &Path) -> Outcome {
    println!("==> fuzz seeds");
    exec(
        cargo()
            .args(["run", "--quiet", "--bin", "seeds", "--manifest-path"])
            .arg(root.join("fuzz/Cargo.toml"))
            .env("CARGO_TARGET_DIR", root.join("fuzz/target"))
            .arg("--")
            .arg(root.join("fuzz/corpus")),
    )
}

/// Run `target` for `secs` seconds; one line of figures (executions, coverage) for the summary.
fn fuzz_one(root: &Path, target: &str, secs: u64) -> Result<String, Failure> {
    println!("==> fuzz {target} for {secs} s");
    let log_dir = root.join("fuzz/artifacts").join(target);
    std::fs::create_dir_all(&log_dir).map_err(|e| Failure::new(format!("{}: {e}", log_dir.display())))?;
    let log_path = log_dir.join("fuzz.log");
    let mut log =
        std::fs::File::create(&log_path).map_err(|e| Failure::new(format!("{}: {e}", log_path.display())))?;
    let mut cmd = Command::new("nice");
    cmd.args([
        "-n",
        "19",
        "cargo",
        "+nightly",
        "fuzz",
        "run",
        "--features",
        "fuzz",
        "-O",
        "-a",
        "--fuzz-dir",
    ])
    .arg(root.join("fuzz"))
    .arg(target)
    .args(["--", &format!("-max_total_time={secs}"), "-print_final_stats=1", "-max_len=16384"])
    .current_dir(root)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    outer_cargo_env_removed(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| Failure::new(format!("cannot start cargo fuzz: {e}")))?;
    let stderr = child.stderr.take().expect("stderr was piped");
    let (mut runs, mut cov) = (String::from("?"), String::from("?"));
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let _ = writeln!(log, "{line}");
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units: ") {
            runs = n.trim().to_string();
        }
        if line.contains("DONE ") || line.contains("pulse ") {
            cov = figures(&line);
            println!("  {target}: {line}");
        } else if !line.starts_with('#') && !line.starts_with("INFO:") {
            // Build output, and a crash's report.
            println!("  {line}");
        }
    }
    let status = child.wait().map_err(|e| Failure::new(format!("cargo fuzz: {e}")))?;
    if !status.success() {
        return Err(Failure::new(format!(
            "fuzz target {target} failed: the input is in fuzz/artifacts/{target}/ (log: {}); once fixed, keep it in fuzz/crashes/{target}/",
            log_path.display()
        )));
    }
    Ok(format!("{target}: {runs} executions in {secs} s, {cov}"))
}

/// `cov: N ft: M` from a libFuzzer status line.
fn figures(line: &str) -> String {
    let field =
        |name: &str| line.split_whitespace().skip_while(|w| *w != name).nth(1).unwrap_or("?").to_string();
    format!("cov {} ft {} corpus {}", field("cov:"), field("ft:"), field("corp:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_coverage_from_a_libfuzzer_line() {
        let line = "#5	DONE   cov: 3378 ft: 3919 corp: 4/927b lim: 499 exec/s: 0 rss: 76Mb";
        assert_eq!(figures(line), "cov 3378 ft 3919 corpus 4/927b");
    }

    #[test]
    fn every_target_has_an_entry_point() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is in the workspace");
        for t in TARGETS {
            assert!(root.join("fuzz/fuzz_targets").join(format!("{t}.rs")).is_file(), "{t}");
        }
    }
}
