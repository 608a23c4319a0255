//! The run skeleton: arguments, `--help`, `--log`, the start, the exit status.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Display};
use core::future::Future;
use core::str::FromStr;

use morgana::{Clock, Duration, Platform};
use morgana_args::{ArgError, ArgSpec, Args, COMMON};
use morgana_rt::Stalled;

use crate::{Counters, Device, StatsRequest, StatsRequests, Target};

/// The app returned `Ok` (or `--help` was answered).
pub const EXIT_SUCCESS: u8 = 0;
/// The app returned an error, the executor stalled, a device could not be opened, or the
/// platform could not start.
pub const EXIT_FAILURE: u8 = 1;
/// A bad argument, or arguments that do not go together.
pub const EXIT_USAGE: u8 = 2;
/// A CPU exception (bare metal).
pub const EXIT_EXCEPTION: u8 = 3;
/// A panic (Rust's own convention for a panicking process).
pub const EXIT_PANIC: u8 = 101;

/// Why an app could not start.
#[derive(Debug)]
pub enum StartError {
    /// A bad argument value: one line, exit status 2.
    Args(ArgError),
    /// Arguments that do not go together, or one missing; the line says what to add (exit
    /// status 2).
    Usage(String),
    /// A device is missing or unusable; the line says why and how to fix it (exit status 1).
    Device(String),
}

impl StartError {
    /// The exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Args(_) | Self::Usage(_) => EXIT_USAGE,
            Self::Device(_) => EXIT_FAILURE,
        }
    }
}

impl Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Args(e) => e.fmt(f),
            Self::Usage(m) | Self::Device(m) => f.write_str(m),
        }
    }
}

impl core::error::Error for StartError {}

impl From<ArgError> for StartError {
    fn from(e: ArgError) -> Self {
        Self::Args(e)
    }
}

/// A `--log` level: the usual lower-case names by a direct match (`LevelFilter::from_str`'s
/// case-insensitive search costs a few hundred emulated instructions at a bare-metal boot),
/// else as `log` parses it.
pub fn log_level(s: &str) -> Option<log::LevelFilter> {
    use log::LevelFilter::*;
    Some(match s {
        "info" => Info,
        "debug" => Debug,
        "warn" => Warn,
        "error" => Error,
        "trace" => Trace,
        "off" => Off,
        _ => return log::LevelFilter::from_str(s).ok(),
    })
}

/// Run an app on target `T`; the exit status for the target to report.
///
/// Parses `argv` against [`COMMON`], the target's arguments for `devices` and the app's lists
/// (`app`: several lists compose, as an app's own and those of a layer it wires); `--help`
/// prints exactly those and returns 0. A bad argument is one line and 2; an argument the target
/// refuses (a directory on bare metal) is one line and 1. Then the target starts with the
/// `--log` level, `build` gets the devices it asks for from it, and the app runs until it
/// completes: 0 for `Ok`, 1 (after `error: ...`) for an error or a stall; a [`StartError`] from
/// `build` is one line and its [`exit code`](StartError::exit_code).
pub fn run<T, I, F, E>(
    boot: T::Boot,
    program: &str,
    argv: I,
    app: &[&[ArgSpec]],
    devices: &[Device],
    build: impl FnOnce(&mut T) -> Result<F, StartError>,
) -> u8
where
    T: Target,
    I: IntoIterator,
    I::Item: AsRef<str>,
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let (mut target, app, interval) = match start(boot, program, argv, app, devices, build) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let report = Report { counters: target.counters().clone(), platform: target.platform() };
    let requests = target.stats_requests();
    let app = with_reports(app, &report, interval, requests);
    let outcome = target.block_on(app);
    // At exit, where something was counted besides the heap (a silent app stays silent).
    let stopped = matches!(outcome, Ok(Err(_)));
    if !report.counters.is_empty() || stopped {
        log::info!("stats at exit: {}", report.line());
    }
    match outcome {
        Ok(Err(status)) => status,
        Ok(Ok(app)) => exit_status::<T, E>(Ok(app)),
        Err(stalled) => exit_status::<T, E>(Err(stalled)),
    }
}

/// [`run`] up to the app's start: the started target and the app's future, or the exit status
/// when it ends before (`--help`, a bad argument, a device that cannot be opened). For a target
/// that drives the future itself (a simulated node, polled beside the others of its world);
/// [`exit_status`] maps what the future returns. Such a target prints no counters lines.
pub fn prepare<T, I, F, E>(
    boot: T::Boot,
    program: &str,
    argv: I,
    app: &[&[ArgSpec]],
    devices: &[Device],
    build: impl FnOnce(&mut T) -> Result<F, StartError>,
) -> Result<(T, F), u8>
where
    T: Target,
    I: IntoIterator,
    I::Item: AsRef<str>,
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    start(boot, program, argv, app, devices, build).map(|(target, app, _)| (target, app))
}

/// The exit status for what an app's future returned (or why it stalled), the error printed
/// where `T` prints errors: 0 for `Ok`, 1 after `error: ...` otherwise.
pub fn exit_status<T: Target, E: Display>(outcome: Result<Result<(), E>, Stalled>) -> u8 {
    match outcome {
        Ok(Ok(())) => EXIT_SUCCESS,
        Ok(Err(e)) => {
            T::print_error(format_args!("error: {e}"));
            EXIT_FAILURE
        }
        Err(stalled) => {
            T::print_error(format_args!("error: {stalled}"));
            EXIT_FAILURE
        }
    }
}

/// Arguments parsed, target started, app built: with the `--stats-interval` asked for.
type Started<T, F> = (T, F, Option<Duration>);

fn start<T, I, F, E>(
    boot: T::Boot,
    program: &str,
    argv: I,
    app: &[&[ArgSpec]],
    devices: &[Device],
    build: impl FnOnce(&mut T) -> Result<F, StartError>,
) -> Result<Started<T, F>, u8>
where
    T: Target,
    I: IntoIterator,
    I::Item: AsRef<str>,
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let specs = T::specs(devices);
    let refused: Vec<ArgSpec> = specs.refused.iter().map(|r| r.spec).collect();
    // One list: what `--help` shows, then the refused (parsed so that their values are
    // consumed, never shown). On the stack for the usual few lists: each allocation is some
    // hundred instructions of a kernel's boot, which an emulating hypervisor runs one by one.
    let mut small: [&[ArgSpec]; 8] = [&[]; 8];
    let mut large: Vec<&[ArgSpec]> = Vec::new();
    let n = app.len() + 2 + usize::from(!refused.is_empty());
    let all: &mut [&[ArgSpec]] = if n <= small.len() {
        &mut small[..n]
    } else {
        large.resize(n, &[]);
        &mut large
    };
    all[0] = COMMON;
    all[1] = &specs.read;
    all[2..2 + app.len()].copy_from_slice(app);
    if !refused.is_empty() {
        all[n - 1] = &refused;
    }
    let all: &[&[ArgSpec]] = all;
    let listed = &all[..app.len() + 2];
    let fail = |e: &dyn Display, code: u8| {
        T::print_error(format_args!("{program}: {e}"));
        code
    };
    let args = match Args::parse(all, argv) {
        Ok(a) => a,
        Err(ArgError::Help) => {
            T::print_usage(&Args::usage(program, listed));
            return Err(EXIT_SUCCESS);
        }
        Err(e) => return Err(fail(&e, EXIT_USAGE)),
    };
    if let Some(r) = specs.refused.iter().find(|r| args.flag(r.spec.name)) {
        let (name, value) = (r.spec.name, args.raw(r.spec.name).unwrap_or_default());
        let sep = if value.is_empty() { "" } else { " " };
        T::print_error(format_args!("{program}: --{name}{sep}{value}: {}; {}", r.why, r.instead));
        return Err(EXIT_FAILURE);
    }
    let level = match args.get_opt_with("log", "error, warn, info, debug or trace", log_level) {
        Ok(l) => l.unwrap_or(log::LevelFilter::Info),
        Err(e) => return Err(fail(&e, EXIT_USAGE)),
    };
    let positive = |s: &str| s.parse::<u64>().ok().filter(|&n| n > 0).map(Duration::from_secs);
    let interval = match args.get_opt_with("stats-interval", "a number of seconds, at least 1", positive) {
        Ok(i) => i,
        Err(e) => return Err(fail(&e, EXIT_USAGE)),
    };
    let mut target = match T::start(boot, args, level) {
        Ok(t) => t,
        Err(e) => return Err(fail(&e, e.exit_code())),
    };
    match build(&mut target) {
        Ok(app) => Ok((target, app, interval)),
        Err(e) => Err(fail(&e, e.exit_code())),
    }
}

/// What a counters line reads: the heap (from the platform, where it has one) and the groups.
struct Report<P> {
    counters: Counters,
    platform: P,
}

impl<P: Platform> Report<P> {
    fn line(&self) -> String {
        let mut line = String::new();
        if let Some(h) = self.platform.heap() {
            line = alloc::format!("heap.used_kib={} heap.size_kib={}", h.used / 1024, h.size / 1024);
        }
        let groups = self.counters.line();
        if !groups.is_empty() && !line.is_empty() {
            line.push(' ');
        }
        line + &groups
    }
}

/// `app`, with a counters line logged every `interval` and on each of `requests`: the app's
/// output when it completes, or the exit status the user stopped it with.
async fn with_reports<F: Future, P: Platform>(
    app: F,
    report: &Report<P>,
    interval: Option<Duration>,
    mut requests: Option<alloc::boxed::Box<dyn StatsRequests>>,
) -> Result<F::Output, u8> {
    use core::task::Poll;
    let clock = report.platform.clock();
    let mut next = interval.map(|i| clock.now() + i);
    let mut app = core::pin::pin!(app);
    core::future::poll_fn(|cx| {
        if let Poll::Ready(out) = app.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let asked = match requests.as_mut().map(|r| r.poll_request(cx)) {
            Some(Poll::Ready(StatsRequest::Exit(status))) => return Poll::Ready(Err(status)),
            Some(Poll::Ready(StatsRequest::Now)) => true,
            _ => false,
        };
        // Read the clock only when there is an interval: on a hypervisor that traps the clock
        // page, each read costs more than a poll of a small app.
        let now = next.map(|_| clock.now());
        let due = next.is_some_and(|at| now.is_some_and(|n| n >= at));
        if asked || due {
            log::info!("stats: {}", report.line());
        }
        if let (Some(at), Some(i)) = (next.as_mut(), interval) {
            if due {
                // The next one a whole interval on, even after a late wake-up.
                let now = now.unwrap_or(*at);
                *at = (*at + i).max(now + Duration::from_millis(1));
            }
            clock.wake_at(*at, cx.waker());
        }
        if asked {
            // Another request may already be pending: look again soon.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    })
    .await
}
