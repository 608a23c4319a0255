//! Packet capture in memory: frames in the pcap format (nanosecond timestamps, Ethernet link
//! type) that Wireshark and tcpdump read, recorded by whoever sees them (the simulator's switch).
//! To capture a `Net`'s own traffic, wrap it in `morgana_layers::PcapWriter`.
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

use alloc::vec::Vec;

use morgana::Instant;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_their_times_and_lengths() {
        let mut pcap = Pcap::new();
        pcap.record(Instant::from_nanos(2_500_000_000), &[0xaa; 60]);
        let long = [0x55; 70_000];
        pcap.record(Instant::from_nanos(2_500_000_007), &long);
        assert_eq!(pcap.frames(), 2);
        let b = pcap.bytes();
        let word = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        assert_eq!((word(20), word(24), word(28), word(32), word(36)), (1, 2, 500_000_000, 60, 60));
        let second = 24 + 16 + 60;
        // Cut at the snap length, the original length kept.
        assert_eq!(
            (word(second), word(second + 4), word(second + 8), word(second + 12)),
            (2, 500_000_007, 65_535, 70_000)
        );
        assert_eq!(b.len(), second + 16 + 65_535);
    }
}
