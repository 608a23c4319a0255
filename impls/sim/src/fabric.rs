//! The world's network: one learning Ethernet switch, a directed link between every pair of
//! nodes with its own faults, and a queue of frames in flight ordered by arrival time.
//!
//! A frame a node sends is switched (by destination MAC, flooded when unknown or broadcast);
//! on each link it takes, the link's faults are drawn from the world's fault stream: cut by a
//! partition, lost, corrupted (a bit flipped), duplicated, delayed by the latency distribution,
//! and held back to be overtaken (reordering). Without reordering a link is FIFO, as a queue on
//! a wire is. Every step is a trace event; every frame a node sends goes into the switch's pcap
//! once, as it enters the switch (what became of it on each link is in the trace).

use std::cell::RefCell;
use std::collections::BinaryHeap;
use std::rc::Rc;

use morgana::net::Capabilities;
use morgana::{Duration, Instant};
use morgana_mem::Pcap;
use morgana_mem::port::{Medium, Port, PortNet};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::time::WorldClock;
use crate::trace::{DropWhy, Event, Trace, digest};

/// Frames a receiver queues before the switch drops for it.
const QUEUE_FRAMES: usize = 4096;

/// How long a link takes to carry a frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Always this long.
    Fixed(Duration),
    /// Uniform between the two.
    Uniform(Duration, Duration),
    /// `base` plus an exponentially distributed extra of mean `mean` (a queue's tail), capped at
    /// ten means.
    Exponential {
        /// The floor.
        base: Duration,
        /// Mean of the extra.
        mean: Duration,
    },
}

impl Default for Latency {
    fn default() -> Self {
        Self::Fixed(Duration::from_micros(100))
    }
}

impl Latency {
    fn sample(&self, rng: &mut ChaCha8Rng) -> Duration {
        match *self {
            Self::Fixed(d) => d,
            Self::Uniform(lo, hi) => {
                let span = hi.saturating_sub(lo).as_nanos() as u64;
                lo + Duration::from_nanos(if span == 0 { 0 } else { rng.next_u64() % (span + 1) })
            }
            Self::Exponential { base, mean } => {
                let u = unit(rng).max(1e-12);
                let extra = (-u.ln()).min(10.0) * mean.as_nanos() as f64;
                base + Duration::from_nanos(extra as u64)
            }
        }
    }
}

/// A uniform draw in [0, 1).
pub(crate) fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The faults of one direction of a link. Probabilities are 0.0 to 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkFaults {
    /// A frame is lost.
    pub loss: f64,
    /// A frame arrives twice (the copy with its own latency).
    pub duplicate: f64,
    /// A frame is held back by `reorder_by` so that later ones overtake it.
    pub reorder: f64,
    /// How long a reordered frame is held back.
    pub reorder_by: Duration,
    /// One bit of a frame is flipped.
    pub corrupt: f64,
    /// The latency distribution.
    pub latency: Latency,
}

impl LinkFaults {
    /// A clean link with a fixed latency.
    pub fn latency(d: Duration) -> Self {
        Self { latency: Latency::Fixed(d), ..Self::default() }
    }

    /// The same with loss, duplication and reordering each at `p` (reordered by a millisecond).
    pub fn lossy(mut self, p: f64) -> Self {
        self.loss = p;
        self.duplicate = p;
        self.reorder = p;
        self.reorder_by = Duration::from_millis(1);
        self
    }
}

#[derive(Debug, Clone)]
struct Link {
    faults: LinkFaults,
    up: bool,
    /// The latest arrival scheduled (a link without reordering keeps its order).
    last: Instant,
}

struct InFlight {
    at: Instant,
    seq: u64,
    to: usize,
    frame: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    /// Earliest first in a max-heap.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// The switch, its links and the frames in flight.
pub struct Fabric {
    clock: WorldClock,
    trace: Rc<RefCell<Trace>>,
    rng: ChaCha8Rng,
    caps: Capabilities,
    ports: Vec<Port>,
    /// `links[from][to]`.
    links: Vec<Vec<Link>>,
    default: LinkFaults,
    table: Vec<([u8; 6], usize)>,
    in_flight: BinaryHeap<InFlight>,
    seq: u64,
    pcap: Option<Pcap>,
}

impl Fabric {
    /// A switch with no ports; new links get `default`.
    pub fn new(clock: WorldClock, trace: Rc<RefCell<Trace>>, seed: u64, default: LinkFaults) -> Self {
        Self {
            clock,
            trace,
            rng: ChaCha8Rng::seed_from_u64(seed),
            caps: Capabilities::default(),
            ports: Vec::new(),
            links: Vec::new(),
            default,
            table: Vec::new(),
            in_flight: BinaryHeap::new(),
            seq: 0,
            pcap: None,
        }
    }

    /// Capture every frame sent.
    pub fn capture(&mut self) {
        self.pcap = Some(Pcap::new());
    }

    /// The capture, if on.
    pub fn pcap(&self) -> Option<&Pcap> {
        self.pcap.as_ref()
    }

    /// Add a port (a node's NIC), its links to and from every other port at the default faults.
    pub fn add_port(&mut self, mac: [u8; 6]) -> usize {
        let link = Link { faults: self.default, up: true, last: Instant::ZERO };
        for row in &mut self.links {
            row.push(link.clone());
        }
        self.links.push(vec![link; self.ports.len() + 1]);
        self.ports.push(Port { up: false, ..Port::new(mac) });
        self.ports.len() - 1
    }

    /// Plug a port in (a node booted) or out (it crashed: its queue is lost).
    pub fn set_port(&mut self, port: usize, up: bool) {
        let p = &mut self.ports[port];
        p.up = up;
        p.inbox.clear();
        if let Some(w) = p.waker.take() {
            w.wake();
        }
    }

    /// The faults of the link `from` → `to`.
    pub fn set_faults(&mut self, from: usize, to: usize, faults: LinkFaults) {
        self.links[from][to].faults = faults;
    }

    /// The faults of the link `from` → `to`.
    pub fn faults(&self, from: usize, to: usize) -> LinkFaults {
        self.links[from][to].faults
    }

    /// Cut (`up: false`) or heal the link `from` → `to`.
    pub fn set_link(&mut self, from: usize, to: usize, up: bool) {
        if self.links[from][to].up != up {
            self.links[from][to].up = up;
            let now = self.clock.now();
            self.trace.borrow_mut().push(now, Event::Link { from: from as u16, to: to as u16, up });
        }
    }

    /// Whether the link `from` → `to` passes frames.
    pub fn link_up(&self, from: usize, to: usize) -> bool {
        self.links[from][to].up
    }

    /// Ports.
    pub fn ports(&self) -> usize {
        self.ports.len()
    }

    /// When the next frame arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.peek().map(|f| f.at)
    }

    /// Frames in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && unit(&mut self.rng) < p
    }

    fn send(&mut self, from: usize, frame: &[u8]) {
        let (dst, src) = (&frame[..6], &frame[6..12]);
        let src: [u8; 6] = src.try_into().unwrap_or_default();
        if src[0] & 1 == 0 {
            match self.table.iter_mut().find(|(m, _)| *m == src) {
                Some(e) => e.1 = from,
                None => self.table.push((src, from)),
            }
        }
        let known = self.table.iter().find(|(m, _)| m[..] == *dst).map(|(_, p)| *p);
        let targets: Vec<usize> = match known {
            Some(p) if p != from => vec![p],
            Some(_) => Vec::new(),
            None => (0..self.ports.len()).filter(|&p| p != from).collect(),
        };
        let now = self.clock.now();
        if let Some(p) = &mut self.pcap {
            p.record(now, frame);
        }
        let digest = digest(frame);
        for to in targets {
            let seq = self.next_seq();
            let mut trace = self.trace.borrow_mut();
            trace.push(
                now,
                Event::Sent { seq, from: from as u16, to: to as u16, len: frame.len() as u32, digest },
            );
            let link = self.links[from][to].clone();
            if !link.up {
                trace.push(now, Event::Dropped { seq, why: DropWhy::Partition });
                continue;
            }
            drop(trace);
            let f = link.faults;
            if self.chance(f.loss) {
                self.trace.borrow_mut().push(now, Event::Dropped { seq, why: DropWhy::Loss });
                continue;
            }
            let mut bytes = frame.to_vec();
            if self.chance(f.corrupt) {
                let bit = (self.rng.next_u64() % (bytes.len() as u64 * 8)) as u32;
                bytes[bit as usize / 8] ^= 1 << (bit % 8);
                self.trace.borrow_mut().push(now, Event::Corrupted { seq, bit });
            }
            let mut at = now + f.latency.sample(&mut self.rng);
            if self.chance(f.reorder) {
                at += f.reorder_by;
            } else {
                at = at.max(link.last);
                self.links[from][to].last = at;
            }
            if self.chance(f.duplicate) {
                let copy = self.next_seq();
                self.trace.borrow_mut().push(now, Event::Duplicated { seq, copy });
                let later = at.max(now + f.latency.sample(&mut self.rng));
                self.in_flight.push(InFlight { at: later, seq: copy, to, frame: bytes.clone() });
            }
            self.in_flight.push(InFlight { at, seq, to, frame: bytes });
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Deliver every frame due by now; how many arrived.
    pub fn deliver_due(&mut self) -> usize {
        let now = self.clock.now();
        let mut n = 0;
        while self.in_flight.peek().is_some_and(|f| f.at <= now) {
            let Some(f) = self.in_flight.pop() else { break };
            let port = &mut self.ports[f.to];
            let why = if !port.up {
                Some(DropWhy::Down)
            } else if port.inbox.len() >= QUEUE_FRAMES {
                port.stats.rx_dropped += 1;
                Some(DropWhy::Queue)
            } else {
                None
            };
            let mut trace = self.trace.borrow_mut();
            if let Some(why) = why {
                trace.push(now, Event::Dropped { seq: f.seq, why });
                continue;
            }
            trace.push(now, Event::Delivered { seq: f.seq });
            port.deliver(f.frame);
            n += 1;
        }
        n
    }
}

/// A node's NIC on the world's switch.
pub type SimNet = PortNet<Fabric>;

impl Medium for Fabric {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn port(&mut self, index: usize) -> &mut Port {
        &mut self.ports[index]
    }

    fn carry(&mut self, from: usize, frame: &[u8]) {
        self.send(from, frame);
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Waker};

    use morgana::net::{Net, RxToken, TxToken};

    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    struct Bed {
        clock: WorldClock,
        fabric: Rc<RefCell<Fabric>>,
        a: SimNet,
        b: SimNet,
    }

    fn new_bed(faults: LinkFaults) -> Bed {
        let clock = WorldClock::default();
        let trace = Rc::new(RefCell::new(Trace::new()));
        let fabric = Rc::new(RefCell::new(Fabric::new(clock.clone(), trace, 7, faults)));
        for mac in [A, B] {
            let p = fabric.borrow_mut().add_port(mac);
            fabric.borrow_mut().set_port(p, true);
        }
        let (a, b) = (SimNet::new(fabric.clone(), 0), SimNet::new(fabric.clone(), 1));
        Bed { clock, fabric, a, b }
    }

    /// Send frames numbered `0..n` from `from` to `to` (the number in the payload).
    fn send(net: &mut SimNet, dst: [u8; 6], src: [u8; 6], n: u32) {
        let mut cx = Context::from_waker(Waker::noop());
        for i in 0..n {
            net.transmit(&mut cx).unwrap().consume(64, |f| {
                f[..6].copy_from_slice(&dst);
                f[6..12].copy_from_slice(&src);
                f[14..18].copy_from_slice(&i.to_le_bytes());
            });
        }
    }

    /// Let a second pass and take what arrived, by number.
    fn arrived(bed: &mut Bed, to_b: bool) -> Vec<u32> {
        bed.clock.advance_to(bed.clock.now() + Duration::from_secs(1));
        bed.fabric.borrow_mut().deliver_due();
        let net = if to_b { &mut bed.b } else { &mut bed.a };
        let mut cx = Context::from_waker(Waker::noop());
        let mut got = Vec::new();
        while let Some((rx, _)) = net.receive(&mut cx) {
            rx.consume(|f| got.push(u32::from_le_bytes(f[14..18].try_into().unwrap())));
        }
        got
    }

    #[test]
    fn a_one_way_cut_stops_one_direction_only() {
        let mut bed = new_bed(LinkFaults::latency(Duration::from_millis(1)));
        bed.fabric.borrow_mut().set_link(0, 1, false);
        send(&mut bed.a, B, A, 3);
        send(&mut bed.b, A, B, 3);
        assert_eq!(arrived(&mut bed, true), Vec::<u32>::new(), "a -> b is cut");
        assert_eq!(arrived(&mut bed, false), [0, 1, 2], "b -> a passes");
        bed.fabric.borrow_mut().set_link(0, 1, true);
        send(&mut bed.a, B, A, 2);
        assert_eq!(arrived(&mut bed, true), [0, 1], "healed");
    }

    #[test]
    fn jitter_keeps_a_link_in_order_and_reordering_does_not() {
        let jitter = LinkFaults {
            latency: Latency::Uniform(Duration::from_millis(1), Duration::from_millis(30)),
            ..LinkFaults::default()
        };
        let mut bed = new_bed(jitter);
        send(&mut bed.a, B, A, 200);
        assert_eq!(arrived(&mut bed, true), (0..200).collect::<Vec<_>>());
        let mut bed = new_bed(LinkFaults { reorder: 0.3, reorder_by: Duration::from_millis(5), ..jitter });
        send(&mut bed.a, B, A, 200);
        let got = arrived(&mut bed, true);
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..200).collect::<Vec<_>>(), "every frame arrives");
        assert_ne!(got, sorted, "some overtaken");
    }

    #[test]
    fn loss_duplication_and_a_down_receiver() {
        let mut bed = new_bed(LinkFaults { loss: 0.5, ..LinkFaults::default() });
        send(&mut bed.a, B, A, 1000);
        let n = arrived(&mut bed, true).len();
        assert!((400..600).contains(&n), "about half lost: {n} arrived");
        let mut bed = new_bed(LinkFaults { duplicate: 1.0, ..LinkFaults::default() });
        send(&mut bed.a, B, A, 10);
        assert_eq!(arrived(&mut bed, true).len(), 20, "each twice");
        bed.fabric.borrow_mut().set_port(1, false);
        send(&mut bed.a, B, A, 10);
        assert_eq!(arrived(&mut bed, true).len(), 0, "nothing reaches a crashed node");
    }
}
