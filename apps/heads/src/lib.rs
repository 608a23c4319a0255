//! `heads`: two sleeps run concurrently and are joined (mirage-skeleton tutorial/lwt/heads1).
//!
//! "Heads" after one second, "Tails" after two, then "Finished" after two seconds in all, not
//! three: the sleeps overlap.
#![no_std]
#![forbid(unsafe_code)]

use core::convert::Infallible;

use morgana::{Clock, Duration, Platform};
use morgana_args::ArgSpec;

/// `heads` takes no arguments of its own.
pub const ARGS: &[ArgSpec] = &[];

/// Join a one-second and a two-second sleep and report the elapsed time.
pub async fn start<P: Platform>(platform: P) -> Result<(), Infallible> {
    let clock = platform.clock();
    let started = clock.now();
    let heads = async {
        clock.sleep(Duration::from_secs(1)).await;
        log::info!("Heads");
    };
    let tails = async {
        clock.sleep(Duration::from_secs(2)).await;
        log::info!("Tails");
    };
    futures::join!(heads, tails);
    log::info!("Finished after {:.3}s", (clock.now() - started).as_secs_f64());
    Ok(())
}
