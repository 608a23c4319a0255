//! Swarm testing: the seed chooses which faults are on and how strong, so that different
//! seeds explore different mixes (TigerBeetle's VOPR; "Swarm Testing", Groce et al. 2012). A
//! scenario gives the strongest faults it tolerates; each is then on or off at even odds, and
//! when on its strength is drawn up to that maximum.

use std::fmt;

use morgana::Duration;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::fabric::{LinkFaults, unit};
use crate::time::Skew;

/// The fault mix of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Swarm {
    /// Whether the mix was drawn (swarm mode) or is the scenario's as given.
    pub drawn: bool,
    /// Every link's faults.
    pub links: LinkFaults,
    /// At a crash, each unflushed sector is lost with the first probability, and one not lost
    /// is torn with the second.
    pub power_cut: (f64, f64),
    /// Largest clock drift, parts per million either way (0: clocks agree).
    pub drift_ppm: i32,
    /// Largest clock offset.
    pub offset: Duration,
    /// Whether the scenario should also partition the network at random.
    pub partitions: bool,
    /// Whether the scenario should also crash nodes at random (where it can).
    pub crashes: bool,
    /// How strong each of a disk's faults is, as a share of what its node gives
    /// ([`NodeSpec::disk_faults`](crate::NodeSpec::disk_faults)): flipped reads, misdirected
    /// reads, misdirected writes (1: as given, 0: off).
    pub disk: [f64; 3],
}

impl Swarm {
    /// The scenario's faults as given: no skew, every unflushed write lost at a crash.
    pub fn off(links: LinkFaults) -> Self {
        Self {
            drawn: false,
            links,
            power_cut: (1.0, 0.0),
            drift_ppm: 0,
            offset: Duration::ZERO,
            partitions: false,
            crashes: false,
            disk: [1.0; 3],
        }
    }

    /// A mix drawn from `seed`, each link fault at most `max`'s.
    pub fn draw(seed: u64, max: LinkFaults) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5_a4a4);
        let mut pick = |p: f64| if rng.next_u32() & 1 == 1 { unit(&mut rng) * p } else { 0.0 };
        let links = LinkFaults {
            loss: pick(max.loss),
            duplicate: pick(max.duplicate),
            reorder: pick(max.reorder),
            corrupt: pick(max.corrupt),
            ..max
        };
        let power_cut = (unit(&mut rng), unit(&mut rng) * 0.5);
        let on = |rng: &mut ChaCha8Rng| rng.next_u32() & 1 == 1;
        let drift_ppm = if on(&mut rng) { (rng.next_u32() % 500) as i32 } else { 0 };
        let offset =
            if on(&mut rng) { Duration::from_millis(rng.next_u64() % 10_000) } else { Duration::ZERO };
        let (partitions, crashes) = (on(&mut rng), on(&mut rng));
        let disk = [(); 3].map(|()| if on(&mut rng) { unit(&mut rng) } else { 0.0 });
        Self { drawn: true, links, power_cut, drift_ppm, offset, partitions, crashes, disk }
    }

    /// Node `node`'s clock skew, from the seed, within the mix's bounds.
    pub fn skew(&self, seed: u64, node: usize) -> Skew {
        if self.drift_ppm == 0 && self.offset.is_zero() {
            return Skew::default();
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5_cee0 ^ (node as u64) << 40);
        let drift = self.drift_ppm.max(1) as u32;
        let drift_ppm = (rng.next_u32() % (2 * drift + 1)) as i32 - drift as i32;
        let offset = Duration::from_nanos(rng.next_u64() % (self.offset.as_nanos() as u64 + 1));
        Skew { offset, drift_ppm }
    }
}

impl fmt::Display for Swarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.links;
        let pct = |p: f64| if p == 0.0 { "off".to_string() } else { format!("{:.2}%", p * 100.0) };
        write!(
            f,
            "loss {}, duplicate {}, reorder {}, corrupt {}, latency {:?}, drift ±{} ppm, offset ≤{} ms, \
             power cut: lose {:.2} tear {:.2}, disk faults (of the node's): flip {} misread {} miswrite {}, partitions {}, crashes {}",
            pct(l.loss),
            pct(l.duplicate),
            pct(l.reorder),
            pct(l.corrupt),
            l.latency,
            self.drift_ppm,
            self.offset.as_millis(),
            self.power_cut.0,
            self.power_cut.1,
            pct(self.disk[0]),
            pct(self.disk[1]),
            pct(self.disk[2]),
            if self.partitions { "on" } else { "off" },
            if self.crashes { "on" } else { "off" },
        )
    }
}
