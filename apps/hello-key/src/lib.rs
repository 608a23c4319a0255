//! `hello-key`: log the greeting given by `--hello` four times, one second apart
//! (mirage-skeleton tutorial/hello-key: a runtime argument instead of a constant).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use core::convert::Infallible;

use morgana::{Clock, Duration, Platform};
use morgana_args::{ArgError, ArgSpec, Args};

/// `--hello TEXT`.
pub const ARGS: &[ArgSpec] =
    &[ArgSpec::value("hello", "TEXT", "the greeting to log").default("Hello World!")];

/// What `hello-key` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The greeting.
    pub hello: String,
}

impl Config {
    /// Read the configuration from the runtime arguments.
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        Ok(Self { hello: args.get("hello")? })
    }
}

/// Log the greeting four times, sleeping a second after each.
pub async fn start<P: Platform>(platform: P, config: Config) -> Result<(), Infallible> {
    let clock = platform.clock();
    for _ in 0..4 {
        log::info!("{}", config.hello);
        clock.sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}
