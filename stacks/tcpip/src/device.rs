//! A `morgana::Net` seen as a smoltcp `Device`, for the length of one runner poll.
//!
//! The adapter carries the runner's task `Context`, so a device that has no frame (or no room)
//! registers the runner's waker: that is what makes the runner wake on device readiness instead
//! of polling on a tick.

use core::num::NonZeroUsize;
use core::task::Context;

use morgana::net::Net;
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// smoltcp's view of `net`'s capabilities (smoltcp counts the Ethernet header in the MTU).
///
/// Checksum offload leaves TCP and UDP checksums to the device; TCP segmentation offload lets
/// smoltcp (feature `segmentation-offload`) build TCP frames up to the device's limit, whose
/// segment size reaches the device through [`morgana::TxToken::set_segment_size`]. Frames
/// longer than the MTU that a device with receive offload delivers need nothing here: smoltcp
/// takes an IP packet of any length its header gives.
pub(crate) fn capabilities<N: Net>(net: &N) -> DeviceCapabilities {
    let caps = net.capabilities();
    let mut out = DeviceCapabilities::default();
    out.medium = Medium::Ethernet;
    out.max_transmission_unit = caps.max_frame_len();
    if caps.checksum_offload {
        let mut c = ChecksumCapabilities::ignored();
        // The IPv4 header (20 bytes) and ICMP stay with the stack.
        c.ipv4 = Checksum::Both;
        c.icmpv4 = Checksum::Both;
        c.icmpv6 = Checksum::Both;
        out.checksum = c;
        // An IP packet's length field has 16 bits: no super-frame beyond that.
        let tso = caps.tso_max_frame_len.min(usize::from(u16::MAX) + morgana::net::ETHERNET_HEADER_LEN);
        if tso > caps.max_frame_len() {
            out.segmentation.tcpv4 = NonZeroUsize::new(tso);
            out.segmentation.tcpv6 = NonZeroUsize::new(tso);
        }
    }
    out
}

/// `net` and the runner's context, as a smoltcp device.
pub(crate) struct Adapter<'a, 'c, N> {
    pub net: &'a mut N,
    pub cx: &'a mut Context<'c>,
    pub caps: &'a DeviceCapabilities,
    /// The device had no room for a frame: its waker will tell the runner when it has.
    pub tx_blocked: bool,
}

impl<N: Net> phy::Device for Adapter<'_, '_, N> {
    type RxToken<'b>
        = Rx<N::RxToken<'b>>
    where
        Self: 'b;
    type TxToken<'b>
        = Tx<N::TxToken<'b>>
    where
        Self: 'b;

    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.net.receive(self.cx).map(|(rx, tx)| (Rx(rx), Tx(tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Self::TxToken<'_>> {
        let tx = self.net.transmit(self.cx);
        self.tx_blocked |= tx.is_none();
        tx.map(Tx)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

pub(crate) struct Rx<T>(T);

impl<T: morgana::RxToken> phy::RxToken for Rx<T> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        self.0.consume(|buf| f(buf))
    }
}

pub(crate) struct Tx<T>(T);

impl<T: morgana::TxToken> phy::TxToken for Tx<T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.0.consume(len, f)
    }

    fn set_meta(&mut self, meta: phy::PacketMeta) {
        if let Some(mss) = meta.segmentation_offload_size {
            self.0.set_segment_size(mss.get());
        }
    }
}
