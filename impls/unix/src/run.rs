//! The process entry: arguments, logging, the event loop, the exit status.

use std::fmt::Display;
use std::future::Future;
use std::io;

use morgana_args::ArgSpec;
use morgana_rt::{Executor, RtPlatform, Stalled};
use morgana_target::{Device, StartError};

use crate::entropy::OsEntropy;
use crate::reactor::{Reactor, ReactorPark};
use crate::sys;
use crate::target::Unix;
use crate::time::SystemTime;

/// The platform an app receives on unix.
pub type UnixPlatform = RtPlatform<SystemTime, OsEntropy>;

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

/// Run an app on this target and exit the process with its status: the shared skeleton
/// ([`morgana_target::run`]) on the process's arguments, with [`Unix`] as the target.
///
/// The soft limit on open file descriptors is raised to the hard limit first (see
/// [`open_files_limit`]). `--help` prints the usage and exits 0; a bad argument prints one line
/// and exits 2; a device that cannot be opened prints one line and exits 1; an app error prints
/// `error: ...` and exits 1.
pub fn run<F, E>(
    app: &[&[ArgSpec]],
    devices: &[Device],
    build: impl FnOnce(&mut Unix) -> Result<F, StartError>,
) -> !
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    // Lossy: an argument that is not UTF-8 reaches the parser (and its one-line errors) with
    // U+FFFD in place of the bad bytes, instead of panicking in `std::env::args`.
    let argv = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned());
    std::process::exit(run_with(argv, app, devices, build).into())
}

/// [`run`] on an explicit argument list, returning the exit status instead of exiting.
pub fn run_with<F, E>(
    argv: impl IntoIterator<Item = String>,
    app: &[&[ArgSpec]],
    devices: &[Device],
    build: impl FnOnce(&mut Unix) -> Result<F, StartError>,
) -> u8
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let program =
        std::env::args_os().next().and_then(|p| p.to_string_lossy().rsplit('/').next().map(String::from));
    let program = program.unwrap_or_else(|| "app".into());
    morgana_target::run::<Unix, _, _, _>((), &program, argv, app, devices, build)
}

/// Raise the soft limit on open file descriptors to the hard limit: a server holding thousands of
/// connections needs a descriptor for each, and the usual soft limit is 1024.
pub(crate) fn raise_open_files_limit() {
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
