//! # morgana-vnet: the virtio-net header
//!
//! The `struct virtio_net_hdr` that leads every frame on a TAP opened with `IFF_VNET_HDR` and
//! every frame on a virtio-net queue, and the checksum work it moves between the stack and the
//! device (the host kernel, or the hypervisor's virtio-net): `morgana-unix`'s TAP device and
//! `morgana-virtio-drivers`' virtio-net both use it. `no_std`, no unsafe code.
//!
//! Layout (10 bytes, the legacy header without `num_buffers`, which a virtio 1.0 device adds
//! after them and which is 0 on what a driver sends; multi-byte fields in the host's byte order,
//! which is what the kernel uses unless told otherwise with `TUNSETVNETLE/BE`, and on x86_64 the
//! little-endian order virtio 1.0 asks for):
//!
//! | offset | field | meaning here |
//! |---|---|---|
//! | 0 | `flags` (u8) | 1 `NEEDS_CSUM`: the L4 checksum field holds only the pseudo-header sum, the rest is for whoever delivers the frame; 2 `DATA_VALID`: the kernel checked the checksum |
//! | 1 | `gso_type` (u8) | 0 none, 1 TCPv4, 4 TCPv6 (0x80 ECN bit): the frame is a TCP super-frame, to be cut into segments of `gso_size` payload bytes |
//! | 2 | `hdr_len` (u16) | Ethernet + IP + TCP header length, repeated in front of each segment |
//! | 4 | `gso_size` (u16) | payload bytes per wire segment (the MSS) |
//! | 6 | `csum_start` (u16) | offset of the L4 header from the start of the Ethernet frame |
//! | 8 | `csum_offset` (u16) | offset of the checksum field in it (16 TCP, 6 UDP) |
//!
//! A super-frame of `len` bytes stands for `ceil((len - hdr_len) / gso_size)` frames on a wire,
//! each `hdr_len` + at most `gso_size` bytes long: that is how a link emulator counts them.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Length of the header before each frame.
pub const HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`.
pub const F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ETH: usize = morgana::net::ETHERNET_HEADER_LEN;

/// A `struct virtio_net_hdr` (its first 10 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `NEEDS_CSUM`, `DATA_VALID`.
    pub flags: u8,
    /// `GSO_TCPV4`, `GSO_TCPV6` or 0.
    pub gso_type: u8,
    /// Header bytes repeated in front of each segment.
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS).
    pub gso_size: u16,
    /// Where the checksummed L4 header starts in the frame.
    pub csum_start: u16,
    /// Where its checksum field is, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// The header at the start of `b` (at least [`HDR_LEN`] bytes).
    pub fn read(b: &[u8]) -> Self {
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }

    /// Store the header at the start of `b`.
    pub fn write(&self, b: &mut [u8]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        for (i, v) in [(2, self.hdr_len), (4, self.gso_size), (6, self.csum_start), (8, self.csum_offset)] {
            b[i..i + 2].copy_from_slice(&v.to_ne_bytes());
        }
    }
}

/// Where a frame's TCP or UDP header is, and what its pseudo-header adds up to.
struct L4 {
    /// Offset of the L4 header in the frame.
    start: usize,
    /// L4 length (header and payload), from the IP header.
    len: usize,
    proto: u8,
    ipv6: bool,
    /// Ones'-complement sum of the pseudo-header, not folded.
    pseudo: u32,
}

fn be16(b: &[u8], i: usize) -> u32 {
    u32::from(u16::from_be_bytes([b[i], b[i + 1]]))
}

/// Unfolded ones'-complement sum of `b` as big-endian 16-bit words (an odd last byte padded).
fn sum(b: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        acc += (v >> 48) + ((v >> 32) & 0xffff) + ((v >> 16) & 0xffff) + (v & 0xffff);
    }
    let rest = words.remainder();
    for c in rest.chunks(2) {
        acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The TCP or UDP segment in an Ethernet frame (IPv4 without fragments, or IPv6 after its
/// hop-by-hop, routing and destination options headers), if it is one and its lengths add up.
fn locate(f: &[u8]) -> Option<L4> {
    if f.len() < ETH {
        return None;
    }
    match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 => {
            let ip = f.get(ETH..)?;
            if ip.len() < 20 || ip[0] >> 4 != 4 {
                return None;
            }
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = be16(ip, 2) as usize;
            let fragment = be16(ip, 6) & 0x3fff != 0;
            if ihl < 20 || total < ihl || total > ip.len() || fragment {
                return None;
            }
            let proto = ip[9];
            let len = total - ihl;
            let pseudo = sum(&ip[12..20]) + u32::from(proto) + len as u32;
            Some(L4 { start: ETH + ihl, len, proto, ipv6: false, pseudo })
        }
        0x86dd => {
            let ip = f.get(ETH..)?;
            if ip.len() < 40 || ip[0] >> 4 != 6 {
                return None;
            }
            let payload = be16(ip, 4) as usize;
            if 40 + payload > ip.len() {
                return None;
            }
            let (mut next, mut at) = (ip[6], 40);
            // Hop-by-hop, routing, destination options: (length + 1) × 8 bytes each.
            while matches!(next, 0 | 43 | 60) {
                let h = ip.get(at..at + 2)?;
                next = h[0];
                at += (usize::from(h[1]) + 1) * 8;
            }
            if at > 40 + payload {
                return None;
            }
            let len = 40 + payload - at;
            let pseudo = sum(&ip[8..40]) + u32::from(next) + len as u32;
            Some(L4 { start: ETH + at, len, proto: next, ipv6: true, pseudo })
        }
        _ => None,
    }
}

fn checksum_field(proto: u8) -> Option<usize> {
    match proto {
        TCP => Some(16),
        UDP => Some(6),
        _ => None,
    }
}

/// Hand a frame's TCP or UDP checksum to the kernel: store the pseudo-header sum in its
/// checksum field and return the header that says so (`NEEDS_CSUM`), with a TCP segment
/// longer than `mss` marked for segmentation (`gso_type`, `gso_size`). Other frames (ARP,
/// ICMP, whose checksums the stack filled) get an empty header.
pub fn offload_tx(f: &mut [u8], mss: Option<u16>) -> VnetHdr {
    let Some(l4) = locate(f) else { return VnetHdr::default() };
    let Some(field) = checksum_field(l4.proto) else { return VnetHdr::default() };
    let min_header = if l4.proto == TCP { 20 } else { 8 };
    if l4.len < min_header {
        return VnetHdr::default();
    }
    let at = l4.start + field;
    f[at..at + 2].copy_from_slice(&fold(l4.pseudo).to_be_bytes());
    let mut hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: l4.start as u16,
        csum_offset: field as u16,
        ..VnetHdr::default()
    };
    if let (TCP, Some(mss)) = (l4.proto, mss) {
        let header = usize::from(f[l4.start + 12] >> 4) * 4;
        if mss > 0 && header >= 20 && l4.len > header + usize::from(mss) {
            hdr.gso_type = if l4.ipv6 { GSO_TCPV6 } else { GSO_TCPV4 };
            hdr.gso_size = mss;
            hdr.hdr_len = (l4.start + header) as u16;
        }
    }
    hdr
}

/// Whether a received frame may go to a stack that leaves TCP and UDP checksums to the device:
/// the kernel vouched for it (`NEEDS_CSUM`: it comes from this host; `DATA_VALID`: checked), or
/// its checksum is right, or it has none that is ours to check (not TCP or UDP; an IPv4 UDP
/// datagram without a checksum).
pub fn rx_checksum_ok(hdr: &VnetHdr, f: &[u8]) -> bool {
    if hdr.flags & (F_NEEDS_CSUM | F_DATA_VALID) != 0 {
        return true;
    }
    let Some(l4) = locate(f) else { return true };
    let Some(field) = checksum_field(l4.proto) else { return true };
    let seg = &f[l4.start..l4.start + l4.len];
    if seg.len() < field + 2 {
        return false;
    }
    if l4.proto == UDP && !l4.ipv6 && seg[6..8] == [0, 0] {
        return true;
    }
    fold(l4.pseudo + sum(seg)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + TCP frame with `payload`, its TCP checksum complete.
    fn tcp4(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let total = 20 + 20 + payload.len();
        let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, TCP, 0, 0];
        ip.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&ip);
        let mut tcp = vec![0u8; 20];
        tcp[0..4].copy_from_slice(&[0x12, 0x34, 0x00, 0x07]);
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        f.extend_from_slice(&tcp);
        f.extend_from_slice(payload);
        let l4 = locate(&f).unwrap();
        let c = !fold(l4.pseudo + sum(&f[34..]));
        f[50..52].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn the_header_round_trips_in_the_kernels_layout() {
        let h =
            VnetHdr { flags: 1, gso_type: 4, hdr_len: 74, gso_size: 1440, csum_start: 54, csum_offset: 16 };
        let mut b = [0u8; HDR_LEN];
        h.write(&mut b);
        assert_eq!(b[..2], [1, 4]);
        assert_eq!(b[4..6], 1440u16.to_ne_bytes());
        assert_eq!(VnetHdr::read(&b), h);
    }

    #[test]
    fn a_sent_segment_carries_the_pseudo_header_sum_the_kernel_completes() {
        let good = tcp4(b"hello, kernel");
        let mut f = good.clone();
        f[50..52].copy_from_slice(&[0, 0]);
        let h = offload_tx(&mut f, None);
        assert_eq!((h.flags, h.gso_type, h.csum_start, h.csum_offset), (F_NEEDS_CSUM, 0, 34, 16));
        // What the kernel does with NEEDS_CSUM: sum from csum_start on, the field included.
        let done = !fold(sum(&f[34..]));
        assert_eq!(done.to_be_bytes(), good[50..52], "the checksum the frame would have had");
    }

    #[test]
    fn a_long_tcp_segment_is_marked_for_segmentation_and_a_short_one_is_not() {
        let mut big = tcp4(&[7u8; 5000]);
        let h = offload_tx(&mut big, Some(1460));
        assert_eq!((h.gso_type, h.gso_size, h.hdr_len), (GSO_TCPV4, 1460, 54));
        let mut small = tcp4(&[7u8; 1000]);
        assert_eq!(offload_tx(&mut small, Some(1460)).gso_type, 0);
        // Not TCP or UDP: nothing to offload.
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(offload_tx(&mut arp, Some(1460)), VnetHdr::default());
    }

    #[test]
    fn received_checksums_are_checked_unless_the_kernel_vouches_for_them() {
        let mut f = tcp4(b"payload");
        let none = VnetHdr::default();
        assert!(rx_checksum_ok(&none, &f));
        f[60] ^= 1;
        assert!(!rx_checksum_ok(&none, &f), "a corrupted segment is caught");
        let vouched = VnetHdr { flags: F_DATA_VALID, ..none };
        assert!(rx_checksum_ok(&vouched, &f));
    }
}
