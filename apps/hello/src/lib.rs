//! `hello`: log `hello` four times, one second apart (mirage-skeleton tutorial/hello).
#![no_std]
#![forbid(unsafe_code)]

use core::convert::Infallible;

use morgana::{Clock, Duration, Platform};
use morgana_args::{ArgError, ArgSpec, Args};

/// `--count N` and `--interval-ms MS` (0 turns the sleeps off, e.g. to time a boot).
pub const ARGS: &[ArgSpec] = &[
    ArgSpec::value("count", "N", "how many times to say hello").default("4"),
    ArgSpec::value("interval-ms", "MS", "pause after each hello, in milliseconds").default("1000"),
];

/// What `hello` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Greetings to log.
    pub count: u32,
    /// Pause after each.
    pub interval: Duration,
}

impl Config {
    /// Read the configuration from the runtime arguments.
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        Ok(Self { count: args.get("count")?, interval: Duration::from_millis(args.get("interval-ms")?) })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self { count: 4, interval: Duration::from_secs(1) }
    }
}

/// Log `hello` `count` times, sleeping `interval` after each.
pub async fn start<P: Platform>(platform: P, config: Config) -> Result<(), Infallible> {
    let clock = platform.clock();
    for _ in 0..config.count {
        log::info!("hello");
        clock.sleep(config.interval).await;
    }
    Ok(())
}
