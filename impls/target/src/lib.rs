//! # morgana-target: one abstraction for every target
//!
//! An app names the devices it needs ([`Device`]); a target ([`Target`]) declares the
//! arguments it reads to provide them, and hands them out when the app asks, each with a
//! one-line [`StartError`] where it cannot (a directory on bare metal says so here, once, not in
//! every app). [`run`] is the skeleton every target's entry shares: it parses the arguments
//! ([`COMMON`], the target's for these devices, the app's), answers `--help` with exactly those,
//! sets the log level, starts the target, builds the app and maps what happens to an exit
//! status ([`EXIT_SUCCESS`] ...).
//!
//! ```text
//!   app main.rs ── morgana_app::main!(args: [..], devices: [..], |t| body)     one body
//!   morgana-app ── picks the target at build time (target_os, or a feature)   facade
//!   target     ── impl Target: specs(devices), start, tcp_stack/net/block/kv  morgana-unix, morgana-virtio
//!   this crate ── Device, Target, run, StartError                              shared
//! ```
//!
//! [`run`] also prints the run's [`Counters`] as one line: every `--stats-interval SECONDS`
//! (one of [`COMMON`]), when the user asks ([`Target::stats_requests`]: SIGUSR1 on a host), and
//! at exit (also when the user stops the program: SIGTERM, SIGINT). A target adds the groups of
//! the devices and stacks it builds ([`Counters::add_tcpip`]), an app its own through
//! `t.counters()`, so a generic app reports without knowing the target; the heap (where the
//! platform knows it, [`morgana::Platform::heap`]) leads the line.
//!
//! An app's body is one closure over `t: &mut impl Target`:
//!
//! ```
//! use morgana_target::{Device, StartError, Target};
//!
//! fn body<T: Target>(t: &mut T) -> Result<impl Future<Output = Result<(), &'static str>>, StartError> {
//!     let port: u16 = t.args().get("port")?;
//!     let stack = t.tcp_stack()?;
//!     Ok(async move {
//!         let _ = (stack, port);
//!         Ok(())
//!     })
//! }
//! # const DEVICES: &[Device] = &[Device::TcpStack];
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod archive;
mod device;
mod or;
mod run;
mod stats;
mod target;

pub use archive::{ArchiveError, Chosen, Opened};
pub use device::{Absent, Device, Store};
pub use morgana_args::{ArgError, ArgSpec, Args, COMMON};
pub use or::Or;
pub use run::{
    EXIT_EXCEPTION, EXIT_FAILURE, EXIT_PANIC, EXIT_SUCCESS, EXIT_USAGE, StartError, exit_status, log_level,
    prepare, run,
};
pub use stats::{Count, Counters, Line};
pub use target::{Refused, Specs, StatsRequest, StatsRequests, Target};
