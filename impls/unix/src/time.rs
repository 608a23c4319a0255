//! System clocks, and a park that sleeps the thread until the next deadline.

use std::time::{Duration, Instant as StdInstant, UNIX_EPOCH};

use morgana::Instant;
use morgana_rt::{Park, Stalled, TimeSource};

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

/// Parks by sleeping the thread until the next deadline; with no deadline and nothing that can
/// wake a task from outside, the app can never continue, which is reported as a stall.
#[derive(Debug, Clone, Copy)]
pub struct SleepPark {
    time: SystemTime,
}

impl SleepPark {
    /// A park for executors reading `time`.
    pub fn new(time: SystemTime) -> Self {
        Self { time }
    }
}

impl Park for SleepPark {
    fn park(&mut self, deadline: Option<Instant>) -> Result<(), Stalled> {
        match deadline {
            Some(at) => {
                let wait = self.time.to_std(at).saturating_duration_since(StdInstant::now());
                std::thread::sleep(wait);
                Ok(())
            }
            None => Err(Stalled::Deadlock { at: self.time.now() }),
        }
    }
}
