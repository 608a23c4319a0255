//! Seeded faults around any `Net`, the way smoltcp's `FaultInjector` wraps a device.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::task::Context;

use morgana::net::{Capabilities, LinkState, Net, NetStats, RxToken};
use morgana::{Clock, Duration, Instant};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Which faults to inject on frames the wrapped device receives. Probabilities are 0.0 to 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultConfig {
    /// Probability that a frame is dropped.
    pub loss: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back so that later frames overtake it.
    pub reorder: f64,
    /// Probability that one bit of a frame is flipped.
    pub corrupt: f64,
    /// Delay added to every frame.
    pub delay: Duration,
    /// Extra random delay, uniform in `0..jitter`.
    pub jitter: Duration,
}

impl FaultConfig {
    /// A configuration with the same probability of loss, duplication and reordering.
    pub fn lossy(p: f64) -> Self {
        Self { loss: p, duplicate: p, reorder: p, ..Self::default() }
    }
}

/// Counts of the faults injected so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultStats {
    /// Frames seen from the wrapped device.
    pub seen: u64,
    /// Frames dropped.
    pub lost: u64,
    /// Frames delivered twice.
    pub duplicated: u64,
    /// Frames held back for reordering.
    pub reordered: u64,
    /// Frames with a flipped bit.
    pub corrupted: u64,
}

struct Held {
    release: Instant,
    frame: Vec<u8>,
}

/// How long a reordered frame is held back beyond the configured delay.
const REORDER_HOLD: Duration = Duration::from_millis(1);

/// A `Net` that injects seeded faults into what `inner` receives.
///
/// Wrap both ends of a link to fault both directions. Faults are decided by a ChaCha8 stream
/// seeded by the caller, so a failing run replays exactly.
pub struct FaultyNet<N, C> {
    inner: N,
    clock: C,
    config: FaultConfig,
    rng: ChaCha8Rng,
    held: VecDeque<Held>,
    stats: FaultStats,
}

impl<N: Net, C: Clock> FaultyNet<N, C> {
    /// Wrap `inner`, reading time from `clock`, with faults drawn from `seed`.
    pub fn new(inner: N, clock: C, config: FaultConfig, seed: u64) -> Self {
        Self {
            inner,
            clock,
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            held: VecDeque::new(),
            stats: FaultStats::default(),
        }
    }

    /// Faults injected so far.
    pub fn fault_stats(&self) -> FaultStats {
        self.stats
    }

    /// Change the faults from now on.
    pub fn set_config(&mut self, config: FaultConfig) {
        self.config = config;
    }

    /// The wrapped device.
    pub fn inner(&self) -> &N {
        &self.inner
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn hold(&mut self, release: Instant, frame: Vec<u8>) {
        let at = self.held.iter().position(|h| h.release > release).unwrap_or(self.held.len());
        self.held.insert(at, Held { release, frame });
    }

    fn admit(&mut self, mut frame: Vec<u8>) {
        self.stats.seen += 1;
        if self.chance(self.config.loss) {
            self.stats.lost += 1;
            return;
        }
        if !frame.is_empty() && self.chance(self.config.corrupt) {
            let bit = self.rng.next_u64() as usize % (frame.len() * 8);
            frame[bit / 8] ^= 1 << (bit % 8);
            self.stats.corrupted += 1;
        }
        let mut release = self.clock.now() + self.config.delay;
        let jitter = self.config.jitter.as_nanos() as u64;
        if jitter > 0 {
            release += Duration::from_nanos(self.rng.next_u64() % jitter);
        }
        if self.chance(self.config.reorder) {
            self.stats.reordered += 1;
            release += REORDER_HOLD;
        }
        if self.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            self.hold(release, frame.clone());
        }
        self.hold(release, frame);
    }
}

/// A frame released by the fault injector.
pub struct HeldRx(Vec<u8>);

impl RxToken for HeldRx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        f(&mut self.0)
    }
}

impl<N: Net, C: Clock> Net for FaultyNet<N, C> {
    type RxToken<'a>
        = HeldRx
    where
        Self: 'a;
    type TxToken<'a>
        = N::TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(HeldRx, N::TxToken<'_>)> {
        loop {
            let Some((rx, _)) = self.inner.receive(cx) else { break };
            let frame = rx.consume(|f| f.to_vec());
            self.admit(frame);
        }
        let now = self.clock.now();
        match self.held.front() {
            Some(h) if h.release <= now => {}
            Some(h) => {
                self.clock.wake_at(h.release, cx.waker());
                return None;
            }
            None => return None,
        }
        let tx = self.inner.transmit(cx)?;
        let frame = self.held.pop_front().map(|h| h.frame).unwrap_or_default();
        Some((HeldRx(frame), tx))
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<N::TxToken<'_>> {
        self.inner.transmit(cx)
    }

    fn link_state(&mut self, cx: &mut Context<'_>) -> LinkState {
        self.inner.link_state(cx)
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }

    fn stats(&self) -> NetStats {
        let mut s = self.inner.stats();
        s.rx_dropped += self.stats.lost;
        s
    }
}
