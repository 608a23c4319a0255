//! Packet capture: frames in the pcap format (nanosecond timestamps, Ethernet link type) that
//! Wireshark and tcpdump read, and a `Net` that captures everything it sends and receives (as
//! smoltcp's `PcapWriter` wraps a device).
//!
//! ```
//! use morgana::Instant;
//! use morgana_mem::Pcap;
//!
//! let mut pcap = Pcap::new();
//! pcap.record(Instant::from_millis(1500), &[0xff; 60]);
//! let bytes = pcap.bytes();
//! assert_eq!(&bytes[..4], &0xa1b2_3c4du32.to_le_bytes()); // nanosecond pcap, little-endian
//! assert_eq!(bytes.len(), 24 + 16 + 60);
//! ```

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::task::Context;

use morgana::net::{Capabilities, LinkState, Net, NetStats, RxToken, TxToken};
use morgana::{Clock, Instant};

/// The pcap magic for nanosecond timestamps.
const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// `LINKTYPE_ETHERNET`.
const LINKTYPE_ETHERNET: u32 = 1;
/// Bytes kept of each frame.
const SNAPLEN: u32 = 65_535;

/// A capture in memory: a pcap header, then one record per frame.
#[derive(Debug, Clone)]
pub struct Pcap {
    bytes: Vec<u8>,
    frames: u64,
}

impl Default for Pcap {
    fn default() -> Self {
        Self::new()
    }
}

impl Pcap {
    /// An empty capture (the header only).
    pub fn new() -> Self {
        let mut bytes = Vec::with_capacity(4096);
        for word in [MAGIC_NS.to_le_bytes(), [2, 0, 4, 0], [0; 4], [0; 4]] {
            bytes.extend_from_slice(&word);
        }
        bytes.extend_from_slice(&SNAPLEN.to_le_bytes());
        bytes.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        Self { bytes, frames: 0 }
    }

    /// Add `frame`, seen at `at`.
    pub fn record(&mut self, at: Instant, frame: &[u8]) {
        let ns = at.as_nanos();
        let kept = frame.len().min(SNAPLEN as usize);
        let sec = u32::try_from(ns / 1_000_000_000).unwrap_or(u32::MAX);
        let nsec = (ns % 1_000_000_000) as u32;
        for v in [sec, nsec, kept as u32, u32::try_from(frame.len()).unwrap_or(u32::MAX)] {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.bytes.extend_from_slice(&frame[..kept]);
        self.frames += 1;
    }

    /// Frames recorded.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The capture file's contents.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A `Net` that records every frame `inner` sends and receives into a shared [`Pcap`].
pub struct PcapNet<N, C> {
    inner: N,
    clock: C,
    pcap: Rc<RefCell<Pcap>>,
}

impl<N: Net, C: Clock> PcapNet<N, C> {
    /// Capture `inner`'s traffic into `pcap`, stamped by `clock`.
    pub fn new(inner: N, clock: C, pcap: Rc<RefCell<Pcap>>) -> Self {
        Self { inner, clock, pcap }
    }
}

/// A received frame, recorded when consumed.
pub struct PcapRx<'a, T, C> {
    inner: T,
    clock: &'a C,
    pcap: &'a Rc<RefCell<Pcap>>,
}

impl<T: RxToken, C: Clock> RxToken for PcapRx<'_, T, C> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        let (clock, pcap) = (self.clock, self.pcap);
        self.inner.consume(|frame| {
            pcap.borrow_mut().record(clock.now(), frame);
            f(frame)
        })
    }
}

/// Room to send a frame, recorded when filled.
pub struct PcapTx<'a, T, C> {
    inner: T,
    clock: &'a C,
    pcap: &'a Rc<RefCell<Pcap>>,
}

impl<T: TxToken, C: Clock> TxToken for PcapTx<'_, T, C> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let (clock, pcap) = (self.clock, self.pcap);
        self.inner.consume(len, |frame| {
            let r = f(frame);
            pcap.borrow_mut().record(clock.now(), frame);
            r
        })
    }
}

impl<N: Net, C: Clock> Net for PcapNet<N, C> {
    type RxToken<'a>
        = PcapRx<'a, N::RxToken<'a>, C>
    where
        Self: 'a;
    type TxToken<'a>
        = PcapTx<'a, N::TxToken<'a>, C>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.inner.receive(cx)?;
        let (clock, pcap) = (&self.clock, &self.pcap);
        Some((PcapRx { inner: rx, clock, pcap }, PcapTx { inner: tx, clock, pcap }))
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Self::TxToken<'_>> {
        let tx = self.inner.transmit(cx)?;
        Some(PcapTx { inner: tx, clock: &self.clock, pcap: &self.pcap })
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
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ManualClock, pair};
    use core::task::Waker;
    use morgana::Duration;

    #[test]
    fn both_directions_are_captured_with_their_times() {
        let clock = ManualClock::new(Duration::ZERO);
        let (a, mut b) = pair([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let pcap = Rc::new(RefCell::new(Pcap::new()));
        let mut a = PcapNet::new(a, clock.clone(), pcap.clone());
        let mut cx = Context::from_waker(Waker::noop());
        clock.advance(Duration::from_millis(2_500));
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        a.transmit(&mut cx).unwrap().consume(60, |buf| buf.copy_from_slice(&frame));
        let (rx, tx) = b.receive(&mut cx).expect("b hears a");
        rx.consume(|_| ());
        let mut back = [0u8; 42];
        back[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        tx.consume(42, |buf| buf.copy_from_slice(&back));
        clock.advance(Duration::from_nanos(7));
        a.receive(&mut cx).expect("a hears b").0.consume(|_| ());
        let pcap = pcap.borrow();
        assert_eq!(pcap.frames(), 2);
        let b = pcap.bytes();
        let word = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        assert_eq!((word(20), word(24), word(28), word(32), word(36)), (1, 2, 500_000_000, 60, 60));
        let second = 24 + 16 + 60;
        assert_eq!((word(second), word(second + 4), word(second + 8)), (2, 500_000_007, 42));
        assert_eq!(&b[second + 16..second + 16 + 6], &[2, 0, 0, 0, 0, 1]);
    }
}
