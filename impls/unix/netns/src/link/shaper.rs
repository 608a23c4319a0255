//! A direction's randomness, rate limit and delay line: the token bucket, the FIFO queue with
//! its tail drop, and the frames held until they are due.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::time::Duration;

use super::segment::segment_tcp;
use super::{DirectionStats, ETH, Impairment, MAX_IN_FLIGHT};

/// SplitMix64: small, fast, and the same numbers for the same seed everywhere.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

/// A frame waiting in the delay line, ordered by when it is due (then by arrival).
pub(super) struct Held {
    due: Duration,
    seq: u64,
    frame: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    // Reversed: BinaryHeap is a max-heap, and the earliest is wanted first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// One direction's impairments, on a clock given by the caller (time since the link started):
/// no devices, so it is tested on its own.
pub(super) struct Shaper {
    imp: Impairment,
    mtu: usize,
    rng: Rng,
    /// Token bucket: when the bucket would be full again.
    tat: Duration,
    last_departure: Duration,
    last_due: Duration,
    seq: u64,
    pub(super) held: BinaryHeap<Held>,
    held_bytes: usize,
    pub(super) stats: DirectionStats,
}

pub(super) fn transmit_time(bytes: usize, bits_per_s: u64) -> Duration {
    let ns = bytes as u128 * 8 * 1_000_000_000 / u128::from(bits_per_s);
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

impl Shaper {
    pub(super) fn new(imp: Impairment, mtu: usize, seed: u64) -> Self {
        Self {
            imp,
            mtu,
            rng: Rng(seed),
            tat: Duration::ZERO,
            last_departure: Duration::ZERO,
            last_due: Duration::ZERO,
            seq: 0,
            held: BinaryHeap::new(),
            held_bytes: 0,
            stats: DirectionStats::default(),
        }
    }

    /// New impairments, seed and counters; the frames held keep their times.
    pub(super) fn reconfigure(&mut self, imp: Impairment, mtu: usize, seed: u64) {
        self.imp = imp;
        self.mtu = mtu;
        self.rng = Rng(seed);
        self.stats = DirectionStats::default();
    }

    /// A frame arrives at `now`.
    pub(super) fn admit(&mut self, now: Duration, frame: &[u8]) {
        self.stats.frames += 1;
        if frame.len() <= ETH + self.mtu {
            return self.segment(now, frame.to_vec(), 1);
        }
        self.stats.oversized += 1;
        match segment_tcp(frame, self.mtu) {
            Some(segments) => segments.into_iter().for_each(|s| self.segment(now, s, 1)),
            None => {
                let wire = (frame.len() - ETH).div_ceil(self.mtu);
                self.segment(now, frame.to_vec(), wire);
            }
        }
    }

    /// Shape one frame that stands for `wire` wire segments (1 unless it is an oversized frame
    /// that could not be cut).
    pub(super) fn segment(&mut self, now: Duration, frame: Vec<u8>, wire: usize) {
        let wire = wire as u64;
        self.stats.segments += wire;
        let lost = (0..wire).filter(|_| self.rng.chance(self.imp.loss)).count() as u64;
        if lost > 0 {
            self.stats.lost += lost;
            return;
        }
        let mut departure = now;
        if let Some(rate) = self.imp.rate {
            let size = frame.len();
            let burst = self.imp.burst.max(size);
            let earliest = self.tat.saturating_sub(transmit_time(burst - size, rate));
            let start = now.max(self.last_departure).max(earliest);
            let waiting = (start - now).as_nanos() * u128::from(rate) / 8 / 1_000_000_000;
            if waiting > self.imp.queue as u128 {
                self.stats.queue_dropped += wire;
                return;
            }
            self.tat = self.tat.max(start) + transmit_time(size, rate);
            self.last_departure = start;
            departure = start + transmit_time(size, rate);
        }
        if self.held_bytes + frame.len() > MAX_IN_FLIGHT {
            self.stats.queue_dropped += wire;
            return;
        }
        let mut due = departure + self.imp.delay;
        if !self.imp.jitter.is_zero() {
            due += self.imp.jitter.mul_f64(self.rng.unit());
        }
        if self.rng.chance(self.imp.reorder) {
            due = due.max(self.last_due) + self.imp.reorder_delay;
            self.stats.reordered += 1;
        } else {
            due = due.max(self.last_due);
            self.last_due = due;
        }
        if due > now {
            self.stats.delayed += 1;
        }
        self.seq += 1;
        self.held_bytes += frame.len();
        self.held.push(Held { due, seq: self.seq, frame });
    }

    /// When the next held frame is due.
    pub(super) fn next_due(&self) -> Option<Duration> {
        self.held.peek().map(|h| h.due)
    }

    /// The next frame due by `now`.
    pub(super) fn pop_due(&mut self, now: Duration) -> Option<Vec<u8>> {
        if self.held.peek()?.due > now {
            return None;
        }
        let h = self.held.pop()?;
        self.held_bytes -= h.frame.len();
        Some(h.frame)
    }
}
