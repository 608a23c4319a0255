//! Run an app on virtual time with seeded entropy, and capture what it logs.
//!
//! ```
//! use morgana::{Clock, Duration, Platform};
//! use morgana_mem::sim::Sim;
//!
//! let out = Sim::new(7).run(|p| async move {
//!     p.clock().sleep(Duration::from_secs(60)).await;
//!     log::info!("a minute later");
//! });
//! assert!(out.result.is_ok());
//! assert_eq!(out.messages(), ["a minute later"]);
//! assert_eq!(out.log[0].at.as_millis(), 60_000);
//! ```

use std::cell::RefCell;
use std::future::Future;
use std::string::{String, ToString};
use std::sync::Once;
use std::vec::Vec;

use morgana::{Duration, Instant};
use morgana_rt::{Executor, LogLine, RtPlatform, Stalled, TimeSource, VirtualTime};

use crate::rng::SeededEntropy;

/// The platform a simulated app receives.
pub type SimPlatform = RtPlatform<VirtualTime, SeededEntropy>;

/// One captured log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// Virtual time of the record.
    pub at: Instant,
    /// Its level.
    pub level: log::Level,
    /// Its target (module path).
    pub target: String,
    /// The message.
    pub message: String,
}

/// What a simulated run produced.
#[derive(Debug)]
pub struct Outcome<T> {
    /// The app's result, or why the run stalled.
    pub result: Result<T, Stalled>,
    /// Records logged during the run, in order.
    pub log: Vec<Logged>,
    /// Virtual time at the end of the run.
    pub end: Instant,
    /// Real time the run took.
    pub wall: std::time::Duration,
}

impl<T> Outcome<T> {
    /// The messages logged, in order.
    pub fn messages(&self) -> Vec<&str> {
        self.log.iter().map(|l| l.message.as_str()).collect()
    }
}

/// A simulation: virtual time, seeded entropy, log capture.
#[derive(Debug, Clone)]
pub struct Sim {
    seed: u64,
    limit: Instant,
    level: log::LevelFilter,
}

struct Capture {
    time: VirtualTime,
    level: log::LevelFilter,
    lines: Vec<Logged>,
}

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

struct CaptureLogger;

impl log::Log for CaptureLogger {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        CAPTURE.with(|c| c.borrow().as_ref().is_some_and(|c| meta.level() <= c.level))
    }

    fn log(&self, record: &log::Record<'_>) {
        CAPTURE.with(|c| {
            if let Some(c) = c.borrow_mut().as_mut() {
                if record.level() > c.level {
                    return;
                }
                let at = c.time.now();
                // The test harness shows this only when the test fails.
                std::eprintln!("{}", LogLine { at, record });
                c.lines.push(Logged {
                    at,
                    level: record.level(),
                    target: record.target().to_string(),
                    message: record.args().to_string(),
                });
            }
        })
    }

    fn flush(&self) {}
}

static LOGGER: CaptureLogger = CaptureLogger;
static INSTALL: Once = Once::new();

impl Sim {
    /// A simulation seeded with `seed`, capturing `Info` and above, with a one-day time limit.
    pub fn new(seed: u64) -> Self {
        Self { seed, limit: Instant::from_millis(86_400_000), level: log::LevelFilter::Info }
    }

    /// Stop with [`Stalled::TimeLimit`] instead of jumping past `limit` of virtual time.
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.limit = Instant::ZERO + limit;
        self
    }

    /// Capture records up to `level`.
    pub fn log_level(mut self, level: log::LevelFilter) -> Self {
        self.level = level;
        self
    }

    /// Run the future `app` builds from the platform until it completes or stalls.
    pub fn run<F: Future>(self, app: impl FnOnce(SimPlatform) -> F) -> Outcome<F::Output> {
        INSTALL.call_once(|| {
            // Another logger may already be installed; then nothing is captured.
            if log::set_logger(&LOGGER).is_ok() {
                log::set_max_level(log::LevelFilter::Trace);
            }
        });
        let time = VirtualTime::new();
        CAPTURE.with(|c| {
            *c.borrow_mut() = Some(Capture { time: time.clone(), level: self.level, lines: Vec::new() })
        });
        let started = std::time::Instant::now();
        let exec = Executor::new(time.clone());
        let platform = RtPlatform::new(exec.handle(), SeededEntropy::new(self.seed));
        let result = exec.block_on(&mut time.park_until(self.limit), app(platform));
        let log = CAPTURE.with(|c| c.borrow_mut().take().map(|c| c.lines).unwrap_or_default());
        Outcome { result, log, end: time.now(), wall: started.elapsed() }
    }
}
