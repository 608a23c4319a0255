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
}
