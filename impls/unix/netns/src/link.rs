//! A userspace link emulator, for kernels without `netem`: [`Link`] forwards Ethernet frames
//! between one device on side A and one or more on side B, with seeded loss, delay, jitter,
//! reordering and a rate limit, set per direction ([`LinkConfig`], [`Impairment`]).
//!
//! A [`Port`] is either the device end of a TAP interface ([`Port::tap`]: the kernel side, in
//! some namespace, is an ordinary interface with addresses, e.g. a Linux client's or server's)
//! or an `AF_PACKET` socket on an interface ([`Port::packet`]: e.g. the kernel side of the TAP
//! a unikernel opened with `--net tap:`, so the emulator stands between the unikernel and
//! everything else). Frames from A go to the B port that sent from their destination MAC
//! (learned, as a switch does), or to every B port when that is unknown or a broadcast; frames
//! from any B port go to A. So one emulator can carry a unikernel and a Linux peer on the same
//! emulated wire, and a comparison between them crosses the same impairments, the same rate
//! limit and the same queue.
//!
//! Loss is decided per *wire segment*: a frame longer than the wire MTU (a TSO/GSO super-frame)
//! is cut into MTU-sized TCP segments first (IPv4 or IPv6 TCP: sequence numbers, lengths, flags
//! and checksums rewritten), each dropped, queued and delayed on its own; any other oversized
//! frame is counted as `ceil(len / mtu)` wire segments, each diced independently, and is lost
//! if any of them is. An offload cannot make one loss decision stand for forty packets.
//!
//! Per direction, in this order: the loss dice; the rate limit (a token bucket of `burst`
//! bytes, FIFO, tail drop once more than `queue` bytes wait); then `delay` plus up to `jitter`
//! (uniform) of propagation, never overtaking an earlier frame, except that with probability
//! `reorder` a frame is held `reorder_delay` longer so later ones overtake it. The random
//! numbers come from a SplitMix64 seeded by [`LinkConfig::new`]'s seed and the direction: the
//! same seed and the same sequence of frames give the same drops and delays.
//!
//! Each direction runs in a thread of its own, polling with nanosecond timeouts (timer slack 1
//! µs); [`Link::stats`] reads the counters while it runs, [`Link::stop`] at the end.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Netns, sys};

const ETH: usize = 14;
/// Longest frame read from a port: a 64 KiB IP packet and its Ethernet header, with room.
const FRAME_BUF: usize = 65536 + 256 + sys::VNET_HDR_LEN;
/// Most frames read from one port before the due ones are sent.
const BATCH: usize = 64;
/// Longest a direction's thread sleeps before looking at its stop flag and configuration.
const IDLE: Duration = Duration::from_millis(5);
/// Bytes a direction may hold in its delay line before it drops (memory, not a link property).
const MAX_IN_FLIGHT: usize = 256 << 20;

/// One device the emulator reads frames from and writes frames to.
#[derive(Debug)]
pub struct Port {
    file: File,
    what: String,
    /// Frames carry a `virtio_net_hdr` first (a packet socket's, see [`Port::packet`]).
    vnet: bool,
}

impl Port {
    /// The device end of the TAP interface `ifname` in `ns` (create it first with
    /// [`Netns::tap`]): the kernel hands it whole, checksummed frames no longer than the
    /// interface's MTU, and takes frames written to it as received on that interface.
    pub fn tap(ns: &Netns, ifname: &str) -> Port {
        let file = ns
            .enter(|| -> io::Result<File> {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                    .open("/dev/net/tun")?;
                sys::tun_attach(file.as_fd(), ifname)?;
                Ok(file)
            })
            .unwrap_or_else(|e| panic!("cannot attach to TAP {ifname} in {}: {e}", ns.name()));
        Port { file, what: format!("TAP {ifname} in {}", ns.name()), vnet: false }
    }

    /// An `AF_PACKET` socket on the interface `ifname` in `ns`: frames the interface receives
    /// are read, frames written are sent out of it. On the kernel side of a TAP that a
    /// unikernel holds, that puts the emulator between the unikernel and the rest. The
    /// unikernel may use the TAP's offloads: the socket reads each frame with its
    /// `virtio_net_hdr`, so a checksum left to be finished is finished here, and super-frames
    /// are cut into wire segments as any oversized TCP frame is.
    pub fn packet(ns: &Netns, ifname: &str) -> Port {
        let fd = ns
            .enter(|| sys::packet_socket(ifname))
            .unwrap_or_else(|e| panic!("cannot open a packet socket on {ifname} in {}: {e}", ns.name()));
        Port { file: File::from(fd), what: format!("packet socket on {ifname} in {}", ns.name()), vnet: true }
    }

    fn try_clone(&self) -> Port {
        let file = self.file.try_clone().unwrap_or_else(|e| panic!("cannot duplicate {}: {e}", self.what));
        Port { file, what: self.what.clone(), vnet: self.vnet }
    }

    /// The frame in `buf[..n]` as read from this port: past its `virtio_net_hdr`, if it has
    /// one, with a checksum the header leaves unfinished finished. `None` if it is too short
    /// to be a frame, or its header points outside it.
    fn frame<'b>(&self, buf: &'b mut [u8], n: usize) -> Option<&'b [u8]> {
        if !self.vnet {
            return (n >= ETH).then_some(&buf[..n]);
        }
        let (hdr, frame) = buf[..n].split_at_mut_checked(sys::VNET_HDR_LEN)?;
        if frame.len() < ETH {
            return None;
        }
        const NEEDS_CSUM: u8 = 1;
        if hdr[0] & NEEDS_CSUM != 0 {
            // The field holds the pseudo-header's sum; the sum from `start` covers the rest.
            let start = usize::from(u16::from_le_bytes([hdr[6], hdr[7]]));
            let at = start + usize::from(u16::from_le_bytes([hdr[8], hdr[9]]));
            if at + 2 > frame.len() {
                return None;
            }
            let c = fold(sum16(&frame[start..], 0));
            put16(frame, at, c);
        }
        Some(frame)
    }

    /// Write one frame; whether the device took it.
    fn send(&self, frame: &[u8]) -> bool {
        if self.vnet {
            let hdr = [0u8; sys::VNET_HDR_LEN];
            let iov = [io::IoSlice::new(&hdr), io::IoSlice::new(frame)];
            (&self.file).write_vectored(&iov).is_ok_and(|n| n == hdr.len() + frame.len())
        } else {
            (&self.file).write(frame).is_ok()
        }
    }
}

/// What one direction of the link does to the frames crossing it. The default is a perfect
/// wire: no loss, no delay, no rate limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    loss: f64,
    delay: Duration,
    jitter: Duration,
    reorder: f64,
    reorder_delay: Duration,
    rate: Option<u64>,
    burst: usize,
    queue: usize,
}

impl Default for Impairment {
    fn default() -> Self {
        Self {
            loss: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(1),
            rate: None,
            burst: 0,
            queue: 1 << 20,
        }
    }
}

impl Impairment {
    /// Drop each wire segment with probability `fraction` (0.1: 10 %).
    pub fn loss(mut self, fraction: f64) -> Self {
        assert!((0.0..=1.0).contains(&fraction), "loss is a fraction from 0 to 1: {fraction}");
        self.loss = fraction;
        self
    }

    /// Delay every frame by `delay` (one way; a round trip crosses both directions).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Add up to `jitter` of extra delay, uniformly at random (order is kept).
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Hold a frame back `by` more with probability `fraction`, so later frames overtake it.
    pub fn reorder(mut self, fraction: f64, by: Duration) -> Self {
        assert!((0.0..=1.0).contains(&fraction), "reorder is a fraction from 0 to 1: {fraction}");
        self.reorder = fraction;
        self.reorder_delay = by;
        self
    }

    /// Limit the direction to `bits_per_s` (frame bytes, Ethernet header included), with a
    /// token bucket of `burst` bytes (0: one frame).
    pub fn rate(mut self, bits_per_s: u64, burst: usize) -> Self {
        assert!(bits_per_s > 0, "a rate limit of 0 bits/s");
        self.rate = Some(bits_per_s);
        self.burst = burst;
        self
    }

    /// Bytes that may wait for the rate limit before frames are dropped at the tail (default 1
    /// MiB).
    pub fn queue(mut self, bytes: usize) -> Self {
        self.queue = bytes;
        self
    }
}

impl fmt::Display for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loss {}%, delay {:?}", self.loss * 100.0, self.delay)?;
        if !self.jitter.is_zero() {
            write!(f, " + up to {:?}", self.jitter)?;
        }
        if self.reorder > 0.0 {
            write!(f, ", {}% held back {:?}", self.reorder * 100.0, self.reorder_delay)?;
        }
        if let Some(rate) = self.rate {
            write!(f, ", {} Mbit/s, queue {} KiB", rate as f64 / 1e6, self.queue / 1024)?;
        }
        Ok(())
    }
}

/// Both directions of a [`Link`], its seed and its wire MTU.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    seed: u64,
    wire_mtu: usize,
    a_to_b: Impairment,
    b_to_a: Impairment,
}

impl LinkConfig {
    /// A perfect link both ways, wire MTU 1500 (IP bytes per frame), random numbers from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed, wire_mtu: 1500, a_to_b: Impairment::default(), b_to_a: Impairment::default() }
    }

    /// The same impairment in both directions.
    pub fn both(self, imp: Impairment) -> Self {
        self.a_to_b(imp.clone()).b_to_a(imp)
    }

    /// What frames from A to B go through.
    pub fn a_to_b(mut self, imp: Impairment) -> Self {
        self.a_to_b = imp;
        self
    }

    /// What frames from B to A go through.
    pub fn b_to_a(mut self, imp: Impairment) -> Self {
        self.b_to_a = imp;
        self
    }

    /// The largest IP packet one wire segment carries; longer frames are segmented or counted.
    pub fn wire_mtu(mut self, mtu: usize) -> Self {
        assert!(mtu >= 68, "a wire MTU of {mtu}");
        self.wire_mtu = mtu;
        self
    }

    fn direction(&self, dir: usize) -> &Impairment {
        if dir == A_TO_B { &self.a_to_b } else { &self.b_to_a }
    }
}

/// What one direction did, counted since the link started or was last [`Link::set`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Frames read from the ingress port(s).
    pub frames: u64,
    /// Wire segments those make (more than `frames` when some were longer than the wire MTU).
    pub segments: u64,
    /// Frames longer than the wire MTU (segmented, or counted as several segments).
    pub oversized: u64,
    /// Wire segments the loss dice dropped.
    pub lost: u64,
    /// Wire segments dropped because the rate limiter's queue was full.
    pub queue_dropped: u64,
    /// Frames the egress device refused (its queue full, or down).
    pub egress_dropped: u64,
    /// Frames written to the egress port(s) (a frame flooded to several B ports counts once).
    pub forwarded: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Frames held for any time before they went out (delay, jitter, rate limit).
    pub delayed: u64,
    /// Frames held back so that later ones overtook them.
    pub reordered: u64,
}

impl DirectionStats {
    /// The fraction of wire segments dropped by the loss dice.
    pub fn loss_fraction(&self) -> f64 {
        if self.segments == 0 { 0.0 } else { self.lost as f64 / self.segments as f64 }
    }
}

/// The counters of both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// From the A port to the B ports.
    pub a_to_b: DirectionStats,
    /// From the B ports to the A port.
    pub b_to_a: DirectionStats,
}

impl fmt::Display for LinkStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, s) in [("A->B", &self.a_to_b), ("B->A", &self.b_to_a)] {
            writeln!(
                f,
                "{name}: {} frames ({} wire segments, {} oversized), {} lost ({:.2}%), {} queue drops, {} \
                 egress drops, {} forwarded ({} bytes), {} delayed, {} reordered",
                s.frames,
                s.segments,
                s.oversized,
                s.lost,
                s.loss_fraction() * 100.0,
                s.queue_dropped,
                s.egress_dropped,
                s.forwarded,
                s.bytes,
                s.delayed,
                s.reordered
            )?;
        }
        Ok(())
    }
}

const A_TO_B: usize = 0;
const B_TO_A: usize = 1;

struct Shared {
    stop: AtomicBool,
    generation: AtomicU64,
    config: Mutex<LinkConfig>,
    taken: [AtomicU64; 2],
    stats: [Mutex<DirectionStats>; 2],
    /// MAC address → B port, learned from the frames B ports send.
    macs: Mutex<Vec<([u8; 6], usize)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running link emulator: two threads, one per direction. Stopped on drop.
pub struct Link {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link").field("config", &*lock(&self.shared.config)).finish_non_exhaustive()
    }
}

impl Link {
    /// Start forwarding between `a` and the ports `b` (at least one) through `config`.
    pub fn start(a: Port, b: Vec<Port>, config: LinkConfig) -> Link {
        assert!(!b.is_empty(), "a link needs a port on side B");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(1),
            config: Mutex::new(config),
            taken: [AtomicU64::new(0), AtomicU64::new(0)],
            stats: Default::default(),
            macs: Mutex::new(Vec::new()),
        });
        let start = Instant::now();
        let b_out: Vec<Port> = b.iter().map(Port::try_clone).collect();
        let a_out = a.try_clone();
        let threads = [(A_TO_B, vec![a], b_out), (B_TO_A, b, vec![a_out])]
            .into_iter()
            .map(|(dir, ingress, egress)| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(if dir == A_TO_B { "link a->b" } else { "link b->a" }.into())
                    .spawn(move || pump(&shared, dir, &ingress, &egress, start))
                    .expect("spawn a link thread")
            })
            .collect();
        let link = Link { shared, threads };
        link.wait_taken(1);
        link
    }

    /// Change the configuration (in-flight frames keep their times); waits until both
    /// directions use it. The counters start again from zero, and the random numbers from the
    /// new seed.
    pub fn set(&self, config: LinkConfig) {
        *lock(&self.shared.config) = config;
        let generation = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.wait_taken(generation);
    }

    fn wait_taken(&self, generation: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.shared.taken.iter().any(|t| t.load(Ordering::Acquire) < generation) {
            assert!(
                self.threads.iter().all(|t| !t.is_finished()),
                "a link thread ended (it panics when a port fails: see its message above)"
            );
            assert!(Instant::now() < deadline, "the link threads did not take a new configuration in 10 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> LinkStats {
        LinkStats { a_to_b: *lock(&self.shared.stats[A_TO_B]), b_to_a: *lock(&self.shared.stats[B_TO_A]) }
    }

    /// Stop forwarding (frames still in the delay line are dropped, not counted); the final
    /// counters.
    pub fn stop(mut self) -> LinkStats {
        self.halt();
        self.stats()
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One direction's thread: read, shape, send, until stopped.
fn pump(shared: &Shared, dir: usize, ingress: &[Port], egress: &[Port], start: Instant) {
    sys::set_timer_slack(Duration::from_micros(1));
    let mut shaper = Shaper::new(Impairment::default(), 1500, 0);
    let mut generation = 0;
    let mut buf = vec![0u8; FRAME_BUF];
    let fds: Vec<BorrowedFd<'_>> = ingress.iter().map(|p| p.file.as_fd()).collect();
    let mut ready = vec![false; fds.len()];
    while !shared.stop.load(Ordering::Acquire) {
        let g = shared.generation.load(Ordering::Acquire);
        if g != generation {
            let config = lock(&shared.config).clone();
            let seed = config.seed ^ (dir as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            shaper.reconfigure(config.direction(dir).clone(), config.wire_mtu, seed);
            *lock(&shared.stats[dir]) = shaper.stats;
            generation = g;
            shared.taken[dir].store(g, Ordering::Release);
        }
        let now = start.elapsed();
        let timeout = shaper.next_due().map_or(IDLE, |d| d.saturating_sub(now).min(IDLE));
        if timeout.is_zero() {
            ready.iter_mut().for_each(|r| *r = true);
        } else if let Err(e) = sys::poll_readable(&fds, &mut ready, Some(timeout)) {
            panic!("link: poll: {e}");
        }
        let mut failed = false;
        for (i, port) in ingress.iter().enumerate().filter(|(i, _)| ready[*i]) {
            for _ in 0..BATCH {
                match (&port.file).read(&mut buf) {
                    Ok(n) => {
                        if let Some(frame) = port.frame(&mut buf, n) {
                            if dir == B_TO_A {
                                learn(shared, &frame[6..12], i);
                            }
                            shaper.admit(start.elapsed(), frame);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // A TAP whose interface is down reads as an error: wait, do not spin.
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
        }
        let now = start.elapsed();
        while let Some(frame) = shaper.pop_due(now) {
            let sent = if dir == B_TO_A {
                egress[0].send(&frame)
            } else {
                match lookup(shared, &frame[..6]) {
                    Some(port) => egress[port].send(&frame),
                    // Broadcast, multicast or not yet learned: to every B port, as a switch floods.
                    None => egress.iter().filter(|p| p.send(&frame)).count() > 0,
                }
            };
            if sent {
                shaper.stats.forwarded += 1;
                shaper.stats.bytes += frame.len() as u64;
            } else {
                shaper.stats.egress_dropped += 1;
            }
        }
        *lock(&shared.stats[dir]) = shaper.stats;
        if failed {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn learn(shared: &Shared, mac: &[u8], port: usize) {
    let Ok(mac) = <[u8; 6]>::try_from(mac) else { return };
    if mac[0] & 1 != 0 {
        return;
    }
    let mut macs = lock(&shared.macs);
    match macs.iter_mut().find(|(m, _)| *m == mac) {
        Some((_, p)) => *p = port,
        None => macs.push((mac, port)),
    }
}

fn lookup(shared: &Shared, mac: &[u8]) -> Option<usize> {
    if mac[0] & 1 != 0 {
        return None;
    }
    lock(&shared.macs).iter().find(|(m, _)| m[..] == *mac).map(|(_, p)| *p)
}

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
struct Held {
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
struct Shaper {
    imp: Impairment,
    mtu: usize,
    rng: Rng,
    /// Token bucket: when the bucket would be full again.
    tat: Duration,
    last_departure: Duration,
    last_due: Duration,
    seq: u64,
    held: BinaryHeap<Held>,
    held_bytes: usize,
    stats: DirectionStats,
}

fn transmit_time(bytes: usize, bits_per_s: u64) -> Duration {
    let ns = bytes as u128 * 8 * 1_000_000_000 / u128::from(bits_per_s);
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

impl Shaper {
    fn new(imp: Impairment, mtu: usize, seed: u64) -> Self {
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
    fn reconfigure(&mut self, imp: Impairment, mtu: usize, seed: u64) {
        self.imp = imp;
        self.mtu = mtu;
        self.rng = Rng(seed);
        self.stats = DirectionStats::default();
    }

    /// A frame arrives at `now`.
    fn admit(&mut self, now: Duration, frame: &[u8]) {
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
    fn segment(&mut self, now: Duration, frame: Vec<u8>, wire: usize) {
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
    fn next_due(&self) -> Option<Duration> {
        self.held.peek().map(|h| h.due)
    }

    /// The next frame due by `now`.
    fn pop_due(&mut self, now: Duration) -> Option<Vec<u8>> {
        if self.held.peek()?.due > now {
            return None;
        }
        let h = self.held.pop()?;
        self.held_bytes -= h.frame.len();
        Some(h.frame)
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// The ones' complement sum of `data` added to `acc`, not yet folded.
fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Cut an IPv4 or IPv6 TCP frame longer than `mtu` IP bytes into wire-sized segments, as a
/// NIC's TSO would: the same headers, payload in `mtu - headers` pieces, sequence numbers,
/// lengths, IPv4 ids and checksums rewritten, FIN and PSH on the last piece only, CWR on the
/// first. `None` for anything else (not TCP, IPv4 fragments or options it cannot tell,
/// IPv6 extension headers, VLAN tags).
fn segment_tcp(frame: &[u8], mtu: usize) -> Option<Vec<Vec<u8>>> {
    if frame.len() < ETH + 40 {
        return None;
    }
    let (ip_len, v6) = match be16(frame, 12) {
        0x0800 => {
            let ihl = usize::from(frame[ETH] & 0x0f) * 4;
            let fragment = be16(frame, ETH + 6) & 0x3fff != 0;
            if frame[ETH] >> 4 != 4 || ihl < 20 || frame[ETH + 9] != 6 || fragment {
                return None;
            }
            (ihl, false)
        }
        0x86dd if frame[ETH + 6] == 6 => (40, true),
        _ => return None,
    };
    let tcp = ETH + ip_len;
    let doff = usize::from(*frame.get(tcp + 12)? >> 4) * 4;
    let payload_at = tcp + doff;
    let ip_total =
        if v6 { 40 + usize::from(be16(frame, ETH + 4)) } else { usize::from(be16(frame, ETH + 2)) };
    // A TSO super-frame may carry a length of 0 (more than 64 KiB): the frame's end then.
    let end = if ip_total <= ip_len { frame.len() } else { (ETH + ip_total).min(frame.len()) };
    if doff < 20 || payload_at >= end {
        return None;
    }
    let mss = mtu.checked_sub(ip_len + doff).filter(|&m| m > 0)?;
    let payload = &frame[payload_at..end];
    let seq = u32::from_be_bytes(frame[tcp + 4..tcp + 8].try_into().ok()?);
    let flags = frame[tcp + 13];
    let pieces = payload.len().div_ceil(mss);
    let segments = payload
        .chunks(mss)
        .enumerate()
        .map(|(i, chunk)| {
            let mut s = Vec::with_capacity(payload_at + chunk.len());
            s.extend_from_slice(&frame[..payload_at]);
            s.extend_from_slice(chunk);
            let tcp_len = doff + chunk.len();
            let pseudo = if v6 {
                put16(&mut s, ETH + 4, tcp_len as u16);
                sum16(&s[ETH + 8..ETH + 40], 6 + tcp_len as u64)
            } else {
                put16(&mut s, ETH + 2, (ip_len + tcp_len) as u16);
                let id = be16(&s, ETH + 4).wrapping_add(i as u16);
                put16(&mut s, ETH + 4, id);
                put16(&mut s, ETH + 10, 0);
                let c = fold(sum16(&s[ETH..tcp], 0));
                put16(&mut s, ETH + 10, c);
                sum16(&s[ETH + 12..ETH + 20], 6 + tcp_len as u64)
            };
            s[tcp + 4..tcp + 8].copy_from_slice(&seq.wrapping_add((i * mss) as u32).to_be_bytes());
            let mut f = flags;
            if i + 1 < pieces {
                f &= !(TCP_FIN | TCP_PSH);
            }
            if i > 0 {
                f &= !TCP_CWR;
            }
            s[tcp + 13] = f;
            put16(&mut s, tcp + 16, 0);
            let c = fold(sum16(&s[tcp..], pseudo));
            put16(&mut s, tcp + 16, c);
            s
        })
        .collect();
    Some(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn frame(len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[12] = 0x08;
        f[13] = 0x06; // ARP: not TCP, so an oversized one is counted, not cut.
        f
    }

    fn drops(seed: u64) -> Vec<bool> {
        let mut s = Shaper::new(Impairment::default().loss(0.1), 1500, seed);
        (0..1000)
            .map(|_| {
                let before = s.stats.lost;
                s.admit(Duration::ZERO, &frame(100));
                s.stats.lost != before
            })
            .collect()
    }

    #[test]
    fn the_same_seed_drops_the_same_frames_and_the_rate_is_the_one_asked_for() {
        assert_eq!(drops(7), drops(7));
        assert_ne!(drops(7), drops(8));
        let mut s = Shaper::new(Impairment::default().loss(0.1), 1500, 1);
        for _ in 0..100_000 {
            s.admit(Duration::ZERO, &frame(60));
        }
        // 10 % of 100 000: 10 000 ± 95 (one standard deviation); ± 600 is over 6.
        assert!((9_400..=10_600).contains(&s.stats.lost), "{:?}", s.stats);
        assert_eq!(s.stats.lost + s.held.len() as u64, 100_000);
    }

    #[test]
    fn delay_holds_a_frame_exactly_that_long_and_jitter_keeps_order() {
        let mut s = Shaper::new(Impairment::default().delay(ms(20)).jitter(ms(5)), 1500, 3);
        for i in 0..100u8 {
            let mut f = frame(60);
            f[20] = i;
            s.admit(ms(u64::from(i) / 10), &f);
        }
        assert!(s.pop_due(ms(19)).is_none(), "released before its delay");
        let mut order = Vec::new();
        let mut now = ms(19);
        while !s.held.is_empty() {
            now += Duration::from_micros(100);
            while let Some(f) = s.pop_due(now) {
                order.push(f[20]);
            }
        }
        assert_eq!(order, (0..100).collect::<Vec<_>>());
        assert!(now <= ms(9 + 20 + 5) + ms(1), "held too long: {now:?}");
    }

    #[test]
    fn reordering_lets_later_frames_overtake() {
        let mut s = Shaper::new(Impairment::default().reorder(0.2, ms(3)), 1500, 5);
        for i in 0..200u8 {
            let mut f = frame(60);
            f[20] = i;
            s.admit(Duration::from_micros(u64::from(i) * 100), &f);
        }
        let mut order = Vec::new();
        while let Some(f) = s.pop_due(ms(1000)) {
            order.push(f[20]);
        }
        assert_eq!(order.len(), 200);
        assert!(order.windows(2).any(|w| w[0] > w[1]), "nothing reordered");
        assert!(s.stats.reordered > 10 && s.stats.reordered < 80, "{:?}", s.stats);
    }

    #[test]
    fn the_rate_limit_spaces_frames_and_a_full_queue_drops_at_the_tail() {
        // 12 Mbit/s: a 1500-byte frame takes 1 ms on the wire.
        let mut s = Shaper::new(Impairment::default().rate(12_000_000, 0).queue(15_000), 1500, 0);
        for _ in 0..100 {
            s.admit(Duration::ZERO, &frame(1500));
        }
        // 10 frames' worth may wait, so 11 or 12 get through a burst of 100 at once.
        let kept = s.held.len();
        assert!((10..=12).contains(&kept), "{kept} kept, {:?}", s.stats);
        assert_eq!(s.stats.queue_dropped as usize, 100 - kept);
        let mut times = Vec::new();
        let mut now = Duration::ZERO;
        while !s.held.is_empty() {
            now += Duration::from_micros(10);
            while s.pop_due(now).is_some() {
                times.push(now);
            }
        }
        assert!(times.windows(2).all(|w| w[1] - w[0] >= Duration::from_micros(990)), "{times:?}");
    }

    fn tcp_superframe(v6: bool, payload: usize) -> Vec<u8> {
        let ip_len = if v6 { 40 } else { 20 };
        let mut f = vec![0u8; ETH + ip_len + 20 + payload];
        if v6 {
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            f[ETH] = 0x60;
            put16(&mut f, ETH + 4, (20 + payload) as u16);
            f[ETH + 6] = 6;
            f[ETH + 7] = 64;
            f[ETH + 23] = 1;
            f[ETH + 39] = 2;
        } else {
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[ETH] = 0x45;
            put16(&mut f, ETH + 2, (20 + 20 + payload) as u16);
            put16(&mut f, ETH + 4, 1000);
            f[ETH + 6] = 0x40; // DF
            f[ETH + 8] = 64;
            f[ETH + 9] = 6;
            f[ETH + 12..ETH + 20].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        }
        let tcp = ETH + ip_len;
        f[tcp + 4..tcp + 8].copy_from_slice(&0xffff_f000u32.to_be_bytes());
        f[tcp + 12] = 5 << 4;
        f[tcp + 13] = 0x10 | TCP_PSH | TCP_FIN | TCP_CWR;
        for (i, b) in f[tcp + 20..].iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        f
    }

    #[test]
    fn a_tcp_superframe_is_cut_into_valid_wire_segments_each_diced_on_its_own() {
        for v6 in [false, true] {
            let big = tcp_superframe(v6, 4000);
            let ip_len = if v6 { 40 } else { 20 };
            let tcp = ETH + ip_len;
            let segs = segment_tcp(&big, 1500).expect("cut");
            let mss = 1500 - ip_len - 20;
            assert_eq!(segs.len(), 4000usize.div_ceil(mss));
            let mut payload = Vec::new();
            for (i, s) in segs.iter().enumerate() {
                assert!(s.len() <= ETH + 1500);
                let tcp_len = s.len() - tcp;
                let pseudo = if v6 {
                    assert_eq!(usize::from(be16(s, ETH + 4)), tcp_len);
                    sum16(&s[ETH + 8..ETH + 40], 6 + tcp_len as u64)
                } else {
                    assert_eq!(usize::from(be16(s, ETH + 2)), s.len() - ETH);
                    assert_eq!(fold(sum16(&s[ETH..tcp], 0)), 0, "IPv4 header checksum");
                    sum16(&s[ETH + 12..ETH + 20], 6 + tcp_len as u64)
                };
                assert_eq!(fold(sum16(&s[tcp..], pseudo)), 0, "TCP checksum of segment {i}");
                let seq = u32::from_be_bytes(s[tcp + 4..tcp + 8].try_into().unwrap());
                assert_eq!(seq, 0xffff_f000u32.wrapping_add((i * mss) as u32));
                let last = i + 1 == segs.len();
                assert_eq!(s[tcp + 13] & (TCP_FIN | TCP_PSH) != 0, last);
                assert_eq!(s[tcp + 13] & TCP_CWR != 0, i == 0);
                payload.extend_from_slice(&s[tcp + 20..]);
            }
            assert_eq!(payload, big[tcp + 20..]);
            // In the shaper, every piece is a wire segment of its own.
            let mut s = Shaper::new(Impairment::default().loss(0.5), 1500, 9);
            for _ in 0..100 {
                s.admit(Duration::ZERO, &big);
            }
            assert_eq!((s.stats.frames, s.stats.oversized, s.stats.segments), (100, 100, 300));
            assert_eq!(s.stats.lost + s.held.len() as u64, 300);
        }
    }

    #[test]
    fn an_oversized_frame_that_cannot_be_cut_counts_as_several_segments() {
        let mut s = Shaper::new(Impairment::default().loss(0.1), 1500, 2);
        for _ in 0..1000 {
            s.admit(Duration::ZERO, &frame(ETH + 9000));
        }
        assert_eq!(s.stats.segments, 6000);
        // A frame survives only if all six of its segments do: 0.9^6 = 53 % of them.
        let kept = s.held.len();
        assert!((450..=610).contains(&kept), "{kept} of 1000 kept");
    }
}
