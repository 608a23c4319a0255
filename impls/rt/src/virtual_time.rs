//! Virtual time: a clock that only moves when every task is waiting.

use alloc::rc::Rc;
use core::cell::Cell;
use core::time::Duration;

use morgana::Instant;

use crate::executor::{Park, Stalled, TimeSource};

/// A simulated clock shared by an executor and its [`VirtualPark`].
#[derive(Clone, Debug, Default)]
pub struct VirtualTime {
    now: Rc<Cell<Instant>>,
    epoch: Duration,
}

/// POSIX time of the virtual origin: 2026-01-01T00:00:00Z.
const DEFAULT_EPOCH: Duration = Duration::from_secs(1_767_225_600);

impl VirtualTime {
    /// A clock at [`Instant::ZERO`] whose wall time starts at 2026-01-01T00:00:00Z.
    pub fn new() -> Self {
        Self::with_epoch(DEFAULT_EPOCH)
    }

    /// A clock at [`Instant::ZERO`] whose wall time starts at `epoch` (POSIX time).
    pub fn with_epoch(epoch: Duration) -> Self {
        Self { now: Rc::new(Cell::new(Instant::ZERO)), epoch }
    }

    /// Move the clock forward to `at` (never backwards).
    pub fn advance_to(&self, at: Instant) {
        self.now.set(self.now.get().max(at));
    }

    /// Move the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.advance_to(self.now.get() + d);
    }

    /// A park hook that jumps this clock to each next deadline, with no time limit.
    pub fn park(&self) -> VirtualPark {
        VirtualPark { time: self.clone(), limit: Instant::MAX }
    }

    /// A park hook that reports [`Stalled::TimeLimit`] instead of jumping past `limit`.
    pub fn park_until(&self, limit: Instant) -> VirtualPark {
        VirtualPark { time: self.clone(), limit }
    }
}

impl TimeSource for VirtualTime {
    fn now(&self) -> Instant {
        self.now.get()
    }
    fn now_unix(&self) -> Duration {
        self.epoch + self.now.get().since_origin()
    }
}

/// Parks by jumping virtual time to the next deadline; reports a deadlock when there is none.
#[derive(Debug)]
pub struct VirtualPark {
    time: VirtualTime,
    limit: Instant,
}

impl Park for VirtualPark {
    fn park(&mut self, deadline: Option<Instant>) -> Result<(), Stalled> {
        match deadline {
            None => Err(Stalled::Deadlock { at: self.time.now() }),
            Some(next) if next > self.limit => Err(Stalled::TimeLimit { limit: self.limit, next }),
            Some(next) => {
                self.time.advance_to(next);
                Ok(())
            }
        }
    }
}
