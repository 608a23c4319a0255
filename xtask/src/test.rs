//! `cargo xtask test`: everything CI checks, fastest first. The tests themselves live in the
//! crates they test; this module only runs the checks: formatting, lints, `cargo test` (with
//! the bare-metal images built first, so that the QEMU suite in `impls/virtio-tests` boots
//! them; and `cargo-morgana`'s `template` test, which makes a crate outside the workspace with
//! `cargo morgana new` and tests, runs and boots it), our smoltcp fork's tests, the fuzz replays
//! and smokes, the `no_std` builds.
//!
//! Test binaries that skip tests this machine cannot run (root, KVM, a tool) append them to a
//! log ([`morgana_netns::suite`]); the run ends with one line summing them up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use morgana_netns::suite::SKIP_LOG_VAR;

use crate::{Failure, NO_STD_CRATES, NO_STD_TARGET, Outcome, cargo, exec};

/// The QEMU suite's package and test target.
const QEMU_SUITE: (&str, &str) = ("morgana-virtio-tests", "qemu");

fn step(name: &str, cmd: &mut Command) -> Outcome {
    println!("==> {name}");
    exec(cmd).inspect_err(|_| eprintln!("xtask test: step '{name}' failed"))
}

/// Run every check; with `qemu_only` or a `filter`, only the QEMU suite (the tests whose names
/// contain `filter`).
pub fn run(root: &Path, qemu_only: bool, filter: Option<&str>) -> Outcome {
    cargo_morgana::virtio::ensure_target()?;
    crate::tools::ensure(crate::tools::TEST_TOOLS)?;
    let skips = SkipLog::new(root)?;
    if qemu_only || filter.is_some() {
        return qemu_only_run(root, filter, &skips);
    }
    step("cargo fmt --check", cargo().args(["fmt", "--all", "--", "--check"]))?;
    step(
        "cargo clippy -D warnings",
        cargo().args(["clippy", "--quiet", "--workspace", "--all-targets", "--", "-D", "warnings"]),
    )?;
    bare_metal(root)?;
    step(
        "cargo test (with the QEMU suite)",
        skips.env(qemu_env(root, cargo().args(["test", "--workspace"]))?),
    )?;
    // Our smoltcp fork is not a workspace member (it keeps upstream's layout and tests): its own
    // tests, with the congestion controllers and the segmentation offload morgana-tcpip turns on.
    step(
        "smoltcp fork: cargo test",
        cargo()
            .args([
                "test",
                "--quiet",
                "--lib",
                "--features",
                "socket-tcp-cubic,socket-tcp-reno,segmentation-offload",
                "--manifest-path",
            ])
            .arg(root.join("stacks/smoltcp/Cargo.toml"))
            .env("CARGO_TARGET_DIR", root.join("target/smoltcp-fork")),
    )?;
    crate::fuzz::test(root)?;
    let mut nostd = cargo();
    nostd.args(["build", "--quiet", "--target", NO_STD_TARGET]);
    nostd.env(cargo_morgana::virtio::RUSTFLAGS_VAR, cargo_morgana::virtio::RUSTFLAGS);
    for c in NO_STD_CRATES {
        nostd.args(["-p", c]);
    }
    step(&format!("no_std build for {NO_STD_TARGET}"), &mut nostd)?;
    println!("xtask test: all checks passed");
    skips.summary();
    Ok(())
}

/// `--qemu-only [FILTER]`: the bare-metal lints and images, then the QEMU suite alone.
fn qemu_only_run(root: &Path, filter: Option<&str>, skips: &SkipLog) -> Outcome {
    bare_metal(root)?;
    let (package, test) = QEMU_SUITE;
    let suite = || {
        let mut c = cargo();
        c.args(["test", "-p", package, "--test", test, "--"]);
        c.args(filter);
        c
    };
    if let Some(f) = filter {
        // A filter that names nothing is a mistake, not a pass.
        let listed = qemu_env(root, suite().arg("--list"))?
            .output()
            .map_err(|e| Failure::new(format!("cannot list the QEMU suite: {e}")))?;
        if !listed.status.success() {
            return Err(Failure::new(format!(
                "the QEMU suite does not build or list:\n{}",
                String::from_utf8_lossy(&listed.stderr).trim_end()
            )));
        }
        if !String::from_utf8_lossy(&listed.stdout).lines().any(|l| l.ends_with(": test")) {
            return Err(Failure::usage(format!("no QEMU test name contains '{f}'")));
        }
    }
    step("QEMU suite", skips.env(qemu_env(root, &mut suite())?))?;
    skips.summary();
    Ok(())
}

/// Lint the bare-metal code for its target and build every image and the conformance image.
fn bare_metal(root: &Path) -> Outcome {
    step(
        &format!("clippy -D warnings for {NO_STD_TARGET}"),
        cargo()
            .env(cargo_morgana::virtio::RUSTFLAGS_VAR, cargo_morgana::virtio::RUSTFLAGS)
            .args([
                "clippy",
                "--quiet",
                "--target",
                NO_STD_TARGET,
                "-p",
                "morgana-virtio",
                "--lib",
                "--examples",
            ])
            .args(["--", "-D", "warnings"]),
    )?;
    let apps = crate::images::virtio_apps(root)?;
    let mut c = cargo();
    c.env(cargo_morgana::virtio::RUSTFLAGS_VAR, cargo_morgana::virtio::RUSTFLAGS);
    c.args(["clippy", "--quiet", "--target", NO_STD_TARGET, "--bins"]);
    for a in &apps {
        c.args(["-p", a]);
    }
    step(&format!("clippy -D warnings for the apps on {NO_STD_TARGET}"), c.args(["--", "-D", "warnings"]))?;
    println!("==> bare-metal images ({NO_STD_TARGET})");
    let names: Vec<&str> = apps.iter().map(String::as_str).collect();
    crate::images::build_images(root, &names, true)
}

/// `cmd` with what the QEMU suite reads: where the images are and this very xtask binary (for
/// the tests that boot through `cargo xtask run`).
fn qemu_env<'a>(root: &Path, cmd: &'a mut Command) -> Result<&'a mut Command, Failure> {
    let xtask = std::env::current_exe().map_err(|e| Failure::new(format!("where is xtask? {e}")))?;
    Ok(cmd.env("MORGANA_VIRTIO_IMAGES", crate::images::images_dir(root)?).env("MORGANA_XTASK", xtask))
}

/// The file skipped tests are appended to, and the one line that sums them up.
struct SkipLog(PathBuf);

impl SkipLog {
    fn new(root: &Path) -> Result<Self, Failure> {
        let path = root.join("target").join("xtask-test-skipped.tsv");
        if let Err(e) = std::fs::create_dir_all(root.join("target")).and_then(|()| std::fs::write(&path, ""))
        {
            return Err(Failure::new(format!("cannot write {}: {e}", path.display())));
        }
        Ok(Self(path))
    }

    fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env(SKIP_LOG_VAR, &self.0)
    }

    /// One line: how many tests were skipped, where, why, and how to run them.
    fn summary(&self) {
        let text = std::fs::read_to_string(&self.0).unwrap_or_default();
        if let Some(line) = summarize(&text) {
            println!("{line}");
        }
    }
}

/// The skip log's lines (`BINARY<TAB>REASON<TAB>TEST`) as one line, or `None` if empty.
fn summarize(log: &str) -> Option<String> {
    // Reason → (count, binaries).
    let mut by_reason: BTreeMap<&str, (usize, Vec<&str>)> = BTreeMap::new();
    for line in log.lines() {
        let mut f = line.split('\t');
        let (Some(binary), Some(reason), Some(_test)) = (f.next(), f.next(), f.next()) else { continue };
        let entry = by_reason.entry(reason).or_default();
        entry.0 += 1;
        if !entry.1.contains(&binary) {
            entry.1.push(binary);
        }
    }
    if by_reason.is_empty() {
        return None;
    }
    let total: usize = by_reason.values().map(|(n, _)| n).sum();
    let parts: Vec<String> = by_reason
        .iter()
        .map(|(reason, (n, binaries))| format!("{n} in {} ({reason})", binaries.join(", ")))
        .collect();
    let tests = if total == 1 { "test" } else { "tests" };
    Some(format!("xtask test: {total} {tests} skipped, not run: {}", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_tests_sum_up_in_one_line() {
        assert_eq!(summarize(""), None);
        let log = "echo --test tap\tthey need root: run them as root\ta\n\
                   echo --test tap\tthey need root: run them as root\tb\n\
                   morgana-virtio-tests --test qemu\tthey need root: run them as root\tc\n\
                   morgana-virtio-tests --test qemu\tthey need /dev/kvm\td\n";
        let line = summarize(log).unwrap();
        assert_eq!(
            line,
            "xtask test: 4 tests skipped, not run: 1 in morgana-virtio-tests --test qemu (they need /dev/kvm); \
             3 in echo --test tap, morgana-virtio-tests --test qemu (they need root: run them as root)"
        );
        assert!(!line.contains('\n'));
    }
}
