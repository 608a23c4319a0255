//! # morgana-rt: the executor every Morgana target shares
//!
//! One thread, many tasks. The executor polls tasks that were woken, fires due timers, and when
//! nothing is runnable calls the target's [`Park`] hook with the next deadline: the unix target
//! waits in `epoll`, the bare-metal target halts until an interrupt, and a simulation
//! ([`VirtualTime`]) jumps the clock straight to the deadline, so ten simulated minutes of sleeps
//! take milliseconds. It never busy-waits.
//!
//! The timer list lives here, so the [`Clock`](morgana::Clock) that apps see is a [`Handle`]
//! onto the executor: `wake_at` records a waker, and the loop wakes it when its time comes.
//!
//! ```
//! use morgana::{Clock, Duration, Spawn};
//! use morgana_rt::{Executor, VirtualTime};
//!
//! let time = VirtualTime::new();
//! let exec = Executor::new(time.clone());
//! let h = exec.handle();
//! let out = exec.block_on(&mut time.park(), async {
//!     h.spawn({
//!         let h = h.clone();
//!         async move { h.sleep(Duration::from_secs(600)).await }
//!     });
//!     h.sleep(Duration::from_secs(600)).await;
//!     h.now()
//! });
//! assert_eq!(out.unwrap().as_millis(), 600_000);
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod executor;
mod log_format;
mod virtual_time;

pub use executor::{Entropy, Executor, Handle, Idle, Park, RtPlatform, Stalled, TimeSource};
pub use log_format::LogLine;
pub use virtual_time::{VirtualPark, VirtualTime};
