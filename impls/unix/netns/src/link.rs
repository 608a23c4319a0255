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

mod segment;
mod shaper;
#[cfg(test)]
mod tests;

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

use segment::{fold, put16, sum16};
use shaper::Shaper;

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
