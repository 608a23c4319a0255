//! The process entry: arguments, logging, the event loop, the exit status.

use std::fmt::{self, Display};
use std::future::Future;
use std::io;
use std::str::FromStr;

use morgana::args::{ArgError, ArgSpec, Args, COMMON};
use morgana_rt::{Executor, RtPlatform, Stalled};

use crate::entropy::OsEntropy;
use crate::logger;
use crate::reactor::{Reactor, ReactorPark};
use crate::sys;
use crate::time::SystemTime;

/// The platform an app receives on unix.
pub type UnixPlatform = RtPlatform<SystemTime, OsEntropy>;

/// Arguments only the hosted target understands, besides [`COMMON`] and the TCP/IP stack's
/// [`morgana_tcpip::ARGS`] (`--ipv6`, `--ipv6-gateway`, for `--net tap:`).
pub const UNIX_ARGS: &[ArgSpec] = &[
    ArgSpec::value(
        "block-size",
        "SIZE",
        "create the --block file, sparse, with SIZE bytes (e.g. 1M) if it is missing",
    ),
    ArgSpec::flag("block-read-only", "open the --block file read-only"),
    ArgSpec::flag(
        "tap-no-offload",
        "open the --net tap: device without offloads (plain frames: no virtio_net_hdr, checksums and segments by the stack)",
    ),
];

/// Why an app could not start.
#[derive(Debug)]
pub enum StartError {
    /// A bad argument value (exit status 2).
    Args(ArgError),
    /// A missing or inconsistent argument, with what to do about it (exit status 2).
    Usage(String),
    /// A device could not be opened; the line says why and how to fix it (exit status 1).
    Device(String),
}

impl StartError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Args(_) | Self::Usage(_) => 2,
            Self::Device(_) => 1,
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

impl std::error::Error for StartError {}

impl From<ArgError> for StartError {
    fn from(e: ArgError) -> Self {
        Self::Args(e)
    }
}

/// An executor parked on the thread's event loop, and the platform apps get from it.
pub struct Runtime {
    exec: Executor<SystemTime>,
    park: ReactorPark,
    platform: UnixPlatform,
}

impl Runtime {
    /// A runtime whose clock starts now.
    pub fn new() -> io::Result<Self> {
        Self::with_time(SystemTime::new())
    }

    /// A runtime reading `time`.
    pub fn with_time(time: SystemTime) -> io::Result<Self> {
        let park = ReactorPark::new(Reactor::current()?, time);
        let exec = Executor::new(time);
        let platform = RtPlatform::new(exec.handle(), OsEntropy);
        Ok(Self { exec, park, platform })
    }

    /// The platform handed to apps: system clocks, OS entropy, spawning on this runtime.
    pub fn platform(&self) -> UnixPlatform {
        self.platform.clone()
    }

    /// Run `main` and the tasks it spawns until `main` completes.
    pub fn block_on<F: Future>(&mut self, main: F) -> Result<F::Output, Stalled> {
        self.exec.block_on(&mut self.park, main)
    }
}

/// Parse the command line against [`COMMON`], [`UNIX_ARGS`], [`morgana_tcpip::ARGS`] and
/// `app_args`, start logging, and run the app that `build` returns until it completes; then exit
/// the process with its status.
///
/// The soft limit on open file descriptors is raised to the hard limit first (see
/// [`open_files_limit`]). `--help` prints the usage and exits 0; a bad argument prints one line and exits 2; a device
/// that cannot be opened prints one line and exits 1; an app error prints `error: ...` and
/// exits 1.
pub fn run<F, E>(app_args: &[ArgSpec], build: impl FnOnce(UnixPlatform, &Args) -> Result<F, StartError>) -> !
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    // Lossy: an argument that is not UTF-8 reaches the parser (and its one-line errors) with
    // U+FFFD in place of the bad bytes, instead of panicking in `std::env::args`.
    let argv = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned());
    let code = run_with(argv, app_args, build);
    std::process::exit(code)
}

/// [`run`] on an explicit argument list, returning the exit status instead of exiting.
pub fn run_with<F, E>(
    argv: impl IntoIterator<Item = String>,
    app_args: &[ArgSpec],
    build: impl FnOnce(UnixPlatform, &Args) -> Result<F, StartError>,
) -> i32
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let program =
        std::env::args_os().next().and_then(|p| p.to_string_lossy().rsplit('/').next().map(String::from));
    let program = program.unwrap_or_else(|| "app".into());
    let specs = [COMMON, UNIX_ARGS, morgana_tcpip::ARGS, app_args];
    let args = match Args::parse(&specs, argv) {
        Ok(a) => a,
        Err(e) => return arg_failure(&program, &specs, e),
    };
    let level = match args
        .get_opt_with("log", "error, warn, info, debug or trace", |s| log::LevelFilter::from_str(s).ok())
    {
        Ok(l) => l.unwrap_or(log::LevelFilter::Info),
        Err(e) => return arg_failure(&program, &specs, e),
    };
    let time = SystemTime::new();
    logger::init(time, level);
    raise_open_files_limit();
    let mut rt = match Runtime::with_time(time) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: cannot create the event loop (epoll): {e}");
            return 1;
        }
    };
    let app = match build(rt.platform(), &args) {
        Ok(app) => app,
        Err(StartError::Args(e)) => return arg_failure(&program, &specs, e),
        Err(e) => {
            eprintln!("{program}: {e}");
            return e.exit_code();
        }
    };
    match rt.block_on(app) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            1
        }
        Err(stalled) => {
            eprintln!("error: {stalled}");
            1
        }
    }
}

/// Raise the soft limit on open file descriptors to the hard limit: a server holding thousands of
/// connections needs a descriptor for each, and the usual soft limit is 1024.
fn raise_open_files_limit() {
    match sys::nofile_limit() {
        Ok((soft, hard)) if soft < hard => match sys::set_nofile_soft_limit(hard) {
            Ok(()) => log::debug!("open files: soft limit raised from {soft} to the hard limit, {hard}"),
            Err(e) => log::warn!("open files: cannot raise the soft limit from {soft} to {hard}: {e}"),
        },
        Ok(_) => {}
        Err(e) => log::warn!("open files: cannot read the limit (RLIMIT_NOFILE): {e}"),
    }
}

/// How many file descriptors the process may have open (the soft `RLIMIT_NOFILE`, which [`run`]
/// raises to the hard limit at start), or `None` if it cannot be read.
pub fn open_files_limit() -> Option<u64> {
    sys::nofile_limit().ok().map(|(soft, _)| soft)
}

fn arg_failure(program: &str, specs: &[&[ArgSpec]], e: ArgError) -> i32 {
    if e == ArgError::Help {
        print!("{}", Args::usage(program, specs));
        return 0;
    }
    eprintln!("{program}: {e}");
    2
}
