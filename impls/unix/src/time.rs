//! System clocks: `CLOCK_MONOTONIC` for timers, `CLOCK_REALTIME` for POSIX time, and the
//! thread's CPU clock for benchmarks.

use std::time::{Duration, Instant as StdInstant, UNIX_EPOCH};

use morgana::Instant;
use morgana_rt::TimeSource;

/// The host's monotonic clock (origin: when this value was made) and its real-time clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemTime {
    origin: StdInstant,
}

impl SystemTime {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self { origin: StdInstant::now() }
    }

    /// The host instant corresponding to `at` on this clock.
    pub fn to_std(&self, at: Instant) -> StdInstant {
        self.origin + at.since_origin()
    }
}

impl Default for SystemTime {
    fn default() -> Self {
        Self::new()
    }
}

impl TimeSource for SystemTime {
    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn now_unix(&self) -> Duration {
        std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
    }
}

/// CPU time the calling thread has run, to the nanosecond (`CLOCK_THREAD_CPUTIME_ID`); `None`
/// where the clock is unavailable. Unlike `/proc/thread-self/schedstat`, which the kernel
/// brings up to date only at scheduler ticks (every 4 ms at 250 Hz), it counts the current
/// slice too, so short benchmark runs are not rounded to whole ticks.
pub fn thread_cpu_time() -> Option<Duration> {
    crate::sys::thread_cpu_time().ok()
}
