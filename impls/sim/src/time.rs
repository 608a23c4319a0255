//! One clock for the world; each node reads it through its own skew and drift.

use std::cell::Cell;
use std::rc::Rc;

use morgana::{Duration, Instant};
use morgana_rt::TimeSource;

/// POSIX time of the world's origin: 2026-01-01T00:00:00Z (as `morgana_rt::VirtualTime`).
pub const EPOCH: Duration = Duration::from_secs(1_767_225_600);

/// How a node's clock differs from the world's: ahead by `offset`, running `drift_ppm` parts
/// per million fast (negative: slow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Skew {
    /// How far ahead the node's clock starts.
    pub offset: Duration,
    /// Parts per million fast (at most ±100,000).
    pub drift_ppm: i32,
}

const PPM: i128 = 1_000_000;

impl Skew {
    fn drift(&self) -> i128 {
        i128::from(self.drift_ppm.clamp(-100_000, 100_000))
    }

    /// The node's reading at world time `world`.
    pub fn local(&self, world: Instant) -> Instant {
        if self.drift_ppm == 0 {
            return world.saturating_add(self.offset);
        }
        let w = i128::from(world.as_nanos());
        let local = self.offset.as_nanos() as i128 + w + w * self.drift() / PPM;
        Instant::from_nanos(local.clamp(0, i128::from(u64::MAX)) as u64)
    }

    /// The first world time at which the node reads `local` or later.
    pub fn world(&self, local: Instant) -> Instant {
        if local == Instant::MAX {
            return Instant::MAX;
        }
        if self.drift_ppm == 0 {
            return Instant::from_nanos(local.as_nanos().saturating_sub(self.offset.as_nanos() as u64));
        }
        let since = i128::from(local.as_nanos()) - self.offset.as_nanos() as i128;
        if since <= 0 {
            return Instant::ZERO;
        }
        let denom = PPM + self.drift();
        let mut w = ((since * PPM + denom - 1) / denom).clamp(0, i128::from(u64::MAX - 1)) as u64;
        // Rounding in `local` may leave it a nanosecond short.
        while self.local(Instant::from_nanos(w)) < local {
            w += 1;
        }
        while w > 0 && self.local(Instant::from_nanos(w - 1)) >= local {
            w -= 1;
        }
        Instant::from_nanos(w)
    }
}

/// The world's clock, shared by everything in it.
#[derive(Debug, Clone, Default)]
pub struct WorldClock {
    now: Rc<Cell<Instant>>,
}

impl WorldClock {
    /// World time.
    pub fn now(&self) -> Instant {
        self.now.get()
    }

    /// Move to `at` (never backwards).
    pub fn advance_to(&self, at: Instant) {
        self.now.set(self.now.get().max(at));
    }

    /// A node's view of this clock.
    pub fn node(&self, skew: Skew) -> NodeTime {
        NodeTime { world: self.clone(), skew }
    }
}

/// A node's clock: the world's, skewed. The executor's `TimeSource`.
#[derive(Debug, Clone)]
pub struct NodeTime {
    world: WorldClock,
    skew: Skew,
}

impl NodeTime {
    /// Its skew.
    pub fn skew(&self) -> Skew {
        self.skew
    }

    /// The world's clock underneath.
    pub fn world(&self) -> WorldClock {
        self.world.clone()
    }
}

impl TimeSource for NodeTime {
    fn now(&self) -> Instant {
        self.skew.local(self.world.now())
    }

    fn now_unix(&self) -> Duration {
        EPOCH + self.now().since_origin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_deadline_maps_to_the_first_world_time_that_reaches_it() {
        for skew in [
            Skew::default(),
            Skew { offset: Duration::from_millis(1234), drift_ppm: 0 },
            Skew { offset: Duration::from_nanos(7), drift_ppm: 200 },
            Skew { offset: Duration::ZERO, drift_ppm: -150 },
            Skew { offset: Duration::from_secs(3), drift_ppm: 99_999 },
        ] {
            for local in [0u64, 1, 999, 1_000_000_007, 600_000_000_000, 3_000_000_001] {
                let local = Instant::from_nanos(local);
                let w = skew.world(local);
                assert!(skew.local(w) >= local, "{skew:?} {local}");
                if w > Instant::ZERO {
                    assert!(skew.local(Instant::from_nanos(w.as_nanos() - 1)) < local, "{skew:?} {local}");
                }
            }
        }
        let fast = Skew { offset: Duration::ZERO, drift_ppm: 1000 };
        assert_eq!(fast.local(Instant::from_millis(1000)), Instant::from_millis(1001), "0.1 % fast");
    }
}
