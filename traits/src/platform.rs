//! `Platform`: what every target hands an app besides its devices.
//!
//! Threading a clock, an RNG and a spawner through every functor is noise (Mirage learned this in
//! 4.9), so an app takes one bundle with associated types instead of five type parameters. Each
//! part stays swappable: the virtual clock and a seeded RNG in tests, the system ones on unix.
//!
//! ```
//! use morgana::{Clock, Duration, Platform, Spawn};
//!
//! /// Start a heartbeat task, then do the app's work.
//! async fn start<P: Platform>(p: P) {
//!     let clock = p.clock();
//!     p.spawn(async move {
//!         loop {
//!             clock.sleep(Duration::from_secs(10)).await;
//!         }
//!     });
//! }
//! ```

use core::future::Future;

use rand_core::{CryptoRng, RngCore};

use crate::time::{Clock, WallClock};

/// Run tasks beside the current one.
pub trait Spawn {
    /// Start `task`; it runs until it completes or the app ends.
    fn spawn(&self, task: impl Future<Output = ()> + 'static);
}

/// A target's clock, entropy and task spawner.
pub trait Platform: Spawn + Clone + 'static {
    /// Monotonic and wall clock.
    type Clock: Clock + WallClock + Clone + 'static;
    /// Cryptographically secure randomness.
    type Rng: RngCore + CryptoRng + 'static;

    /// A handle on the clock.
    fn clock(&self) -> Self::Clock;

    /// A random number generator (a fresh handle onto the platform's entropy).
    fn rng(&self) -> Self::Rng;

    /// The heap's size and use now, where the platform has a heap of a known size (bare metal:
    /// the RAM the image leaves free). `None` on a host, where memory is the operating system's.
    /// Code that allocates infallibly (rustls) derives its budgets from it.
    fn heap(&self) -> Option<HeapUsage> {
        None
    }
}

/// A heap's size and the bytes allocated from it, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapUsage {
    /// Bytes allocated.
    pub used: usize,
    /// Bytes the heap can hold in all.
    pub size: usize,
}
