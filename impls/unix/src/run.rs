//! The process entry: arguments, logging, the executor, the exit status.

use std::fmt::Display;
use std::future::Future;
use std::str::FromStr;

use morgana::args::{ArgError, ArgSpec, Args, COMMON};
use morgana_rt::{Executor, RtPlatform};

use crate::entropy::OsEntropy;
use crate::logger;
use crate::time::{SleepPark, SystemTime};

/// The platform an app receives on unix.
pub type UnixPlatform = RtPlatform<SystemTime, OsEntropy>;

/// Parse the command line against [`COMMON`] and `app_args`, start logging, and run the app that
/// `build` returns until it completes; then exit the process with its status.
///
/// `--help` prints the usage and exits 0; a bad argument prints one line and exits 2; an app
/// error prints `error: ...` and exits 1.
pub fn run<F, E>(app_args: &[ArgSpec], build: impl FnOnce(UnixPlatform, &Args) -> Result<F, ArgError>) -> !
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let code = run_with(std::env::args().skip(1), app_args, build);
    std::process::exit(code)
}

/// [`run`] on an explicit argument list, returning the exit status instead of exiting.
pub fn run_with<F, E>(
    argv: impl IntoIterator<Item = String>,
    app_args: &[ArgSpec],
    build: impl FnOnce(UnixPlatform, &Args) -> Result<F, ArgError>,
) -> i32
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let program = std::env::args().next().and_then(|p| p.rsplit('/').next().map(String::from));
    let program = program.unwrap_or_else(|| "app".into());
    let specs = [COMMON, app_args];
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
    let exec = Executor::new(time);
    let platform = RtPlatform::new(exec.handle(), OsEntropy);
    let app = match build(platform, &args) {
        Ok(app) => app,
        Err(e) => return arg_failure(&program, &specs, e),
    };
    match exec.block_on(&mut SleepPark::new(time), app) {
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

fn arg_failure(program: &str, specs: &[&[ArgSpec]], e: ArgError) -> i32 {
    if e == ArgError::Help {
        print!("{}", Args::usage(program, specs));
        return 0;
    }
    eprintln!("{program}: {e}");
    2
}
