//! # morgana-unix: the hosted Linux target
//!
//! Runs a Morgana app as an ordinary Linux process: system clocks, the OS random number
//! generator, `log` on stdout, and an executor that sleeps the thread until the next timer. The
//! app's source does not change; only its `main.rs` calls [`run`].
//!
//! ```no_run
//! use morgana::{Clock, Duration, Platform};
//! use morgana::args::ArgSpec;
//!
//! const ARGS: &[ArgSpec] = &[];
//!
//! fn main() {
//!     morgana_unix::run(ARGS, |platform, _args| {
//!         Ok(async move {
//!             platform.clock().sleep(Duration::from_millis(10)).await;
//!             log::info!("done");
//!             Ok::<(), core::convert::Infallible>(())
//!         })
//!     })
//! }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod entropy;
mod logger;
mod run;
mod time;

pub use entropy::OsEntropy;
pub use run::{UnixPlatform, run, run_with};
pub use time::{SleepPark, SystemTime};
