//! The harness of test binaries whose tests need root, KVM or a program the machine may lack.
//!
//! Stable libtest cannot skip a test at run time: a test that returns early is counted as
//! passed. Such test files are `harness = false` binaries on [`libtest_mimic`] instead, built
//! with a [`Suite`]: each test names what it [`Need`]s, and one that cannot run here is
//! constructed ignored, so `cargo test` reports it as ignored (skipped), never as passed. Each
//! reason is printed once, in one line that says how to run what it skipped.
//!
//! ```no_run
//! use morgana_netns::{Need, Suite};
//!
//! fn main() -> std::process::ExitCode {
//!     let mut suite = Suite::new();
//!     suite.test("linux_pings_the_unikernel", &[Need::Root, Need::program("ping", "iputils-ping")], || {
//!         let ns = morgana_netns::Netns::new("doc");
//!         ns.tap("mgtap0", &["10.77.0.1/24"]);
//!     });
//!     suite.run()
//! }
//! ```
//!
//! `MORGANA_SKIP_ROOT_TESTS=1` skips the tests that need root even as root. When
//! `MORGANA_SKIP_LOG` names a file, every skipped test is appended to it as a line
//! `BINARY<TAB>REASON<TAB>TEST`, so that a front end running many test binaries (`cargo xtask
//! test`) can sum them up in one line.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};

use crate::{SKIP_VAR, have, is_root};

/// The variable naming the file that skipped tests are appended to.
pub const SKIP_LOG_VAR: &str = "MORGANA_SKIP_LOG";

/// Something a test needs that a machine may not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Root (network namespaces, TAP devices); also missing when `MORGANA_SKIP_ROOT_TESTS=1`.
    Root,
    /// A usable `/dev/kvm`.
    Kvm,
    /// A program on the `PATH`, and the Debian package that has it.
    Program {
        /// The program looked for.
        name: &'static str,
        /// The package that installs it.
        package: &'static str,
    },
    /// Something else, missing for the reason given (one line: what to do about it).
    Missing(String),
}

impl Need {
    /// A program on the `PATH`, from Debian package `package`.
    pub const fn program(name: &'static str, package: &'static str) -> Self {
        Self::Program { name, package }
    }

    /// Why this is missing here, in one line that says how to get it; `None` when it is here.
    pub fn missing(&self) -> Option<String> {
        match self {
            Need::Root if std::env::var(SKIP_VAR).as_deref() == Ok("1") => {
                Some(format!("they need root and {SKIP_VAR}=1 skips them: unset it to run them"))
            }
            Need::Root if !is_root() => Some(
                "they need root (network namespaces, TAP devices): run them as root to include them".into(),
            ),
            Need::Root => None,
            Need::Kvm => {
                (!kvm_usable()).then(|| "they need /dev/kvm, which is missing or not usable here".to_string())
            }
            Need::Program { name, package } => (!have(name))
                .then(|| format!("they need {name}: install it with `apt-get install {package}`")),
            Need::Missing(why) => Some(why.clone()),
        }
    }
}

/// Whether QEMU can use KVM here (`/dev/kvm` opens for reading and writing).
fn kvm_usable() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

/// The tests of one test binary, run by libtest-mimic with the standard `cargo test` arguments.
#[derive(Default)]
pub struct Suite {
    trials: Vec<Trial>,
    /// Reason → the tests it skips.
    skipped: BTreeMap<String, Vec<String>>,
    threads: Option<usize>,
}

impl Suite {
    /// An empty suite.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run tests one at a time unless `--test-threads` says otherwise (tests that time what
    /// they see, on a small machine).
    pub fn one_at_a_time(&mut self) -> &mut Self {
        self.threads = Some(1);
        self
    }

    /// A test that passes unless `run` panics; ignored, with the reason, when a `need` is missing.
    pub fn test(
        &mut self,
        name: impl Into<String>,
        needs: &[Need],
        run: impl FnOnce() + Send + 'static,
    ) -> &mut Self {
        self.check(name, needs, move || {
            run();
            Ok(())
        })
    }

    /// A test that passes when `run` returns `Ok` (a panic or an `Err` fails it); ignored, with
    /// the reason, when a `need` is missing.
    pub fn check(
        &mut self,
        name: impl Into<String>,
        needs: &[Need],
        run: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) -> &mut Self {
        let name = name.into();
        let missing = needs.iter().find_map(Need::missing);
        if let Some(reason) = &missing {
            self.skipped.entry(reason.clone()).or_default().push(name.clone());
        }
        let trial = Trial::test(name, move || run().map_err(Failed::from));
        self.trials.push(trial.with_ignored_flag(missing.is_some()));
        self
    }

    /// Parse the command line, say once per reason what is skipped, run, and give the exit
    /// status.
    pub fn run(self) -> ExitCode {
        let mut args = Arguments::from_args();
        if args.test_threads.is_none() {
            args.test_threads = self.threads;
        }
        if !args.list {
            self.report_skips(&args);
        }
        libtest_mimic::run(&args, self.trials).exit_code()
    }

    fn report_skips(&self, args: &Arguments) {
        if args.ignored || args.include_ignored {
            // Asked for: the ignored tests run (and fail if what they need is missing).
            return;
        }
        let binary = binary_name();
        let mut log = std::env::var_os(SKIP_LOG_VAR)
            .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
        for (reason, names) in &self.skipped {
            let names: Vec<&String> = names.iter().filter(|n| !filtered_out(args, n)).collect();
            if names.is_empty() {
                continue;
            }
            let n = names.len();
            let tests = if n == 1 { "test" } else { "tests" };
            eprintln!("{binary}: {n} {tests} skipped (reported as ignored): {reason}");
            if let Some(f) = &mut log {
                for n in names {
                    let _ = writeln!(f, "{binary}\t{reason}\t{n}");
                }
            }
        }
    }
}

/// Whether the name filter of `cargo test FILTER` or `--skip` leaves `name` out.
fn filtered_out(args: &Arguments, name: &str) -> bool {
    let matches = |pattern: &str| if args.exact { name == pattern } else { name.contains(pattern) };
    args.filter.as_deref().is_some_and(|f| !matches(f)) || args.skip.iter().any(|s| matches(s))
}

/// `PACKAGE --test NAME` for this test binary (cargo names it `NAME-HASH`).
fn binary_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe.as_deref().and_then(|p| p.file_stem()).and_then(|s| s.to_str()).unwrap_or("test");
    let test = stem.rsplit_once('-').map_or(stem, |(name, _hash)| name);
    match std::env::var("CARGO_PKG_NAME") {
        Ok(package) => format!("{package} --test {test}"),
        Err(_) => test.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_says_which_package_has_it() {
        let need = Need::program("morgana-no-such-program", "morgana-pkg");
        assert_eq!(
            need.missing().as_deref(),
            Some("they need morgana-no-such-program: install it with `apt-get install morgana-pkg`")
        );
        assert_eq!(Need::program("sh", "dash").missing(), None);
    }

    #[test]
    fn a_test_whose_need_is_missing_is_constructed_ignored() {
        let mut suite = Suite::new();
        suite.test("runs", &[], || {});
        suite.test("skipped", &[Need::Missing("not here".into())], || panic!("must not run"));
        assert!(!suite.trials[0].has_ignored_flag());
        assert!(suite.trials[1].has_ignored_flag());
        assert_eq!(suite.skipped["not here"], ["skipped"]);
    }
}
