//! `Net`: an Ethernet interface, polled with a task `Context`.
//!
//! The shape is smoltcp's `phy::Device` and embassy's `embassy-net-driver`: the device lends its
//! own buffer to a closure through a token, so a frame goes from the wire to the stack without a
//! copy. When no token is available the device stores the context's waker and wakes it once one
//! is. One task drives a given `Net` (a stack's runner); it is never shared.
//!
//! ```
//! use core::task::Context;
//! use morgana::net::{Net, RxToken, TxToken};
//!
//! /// Bounce every received frame back to the sender, swapping the MAC addresses.
//! fn reflect<N: Net>(net: &mut N, cx: &mut Context<'_>) {
//!     while let Some((rx, tx)) = net.receive(cx) {
//!         let mut frame = [0u8; 1514];
//!         let len = rx.consume(|buf| {
//!             frame[..buf.len()].copy_from_slice(buf);
//!             buf.len()
//!         });
//!         if len < 14 {
//!             continue;
//!         }
//!         tx.consume(len, |out| {
//!             out.copy_from_slice(&frame[..len]);
//!             out[..6].copy_from_slice(&frame[6..12]);
//!             out[6..12].copy_from_slice(&frame[..6]);
//!         });
//!     }
//! }
//! ```

use core::task::Context;

/// Length of an Ethernet header (destination, source, EtherType).
pub const ETHERNET_HEADER_LEN: usize = 14;

/// A network interface that sends and receives Ethernet frames.
pub trait Net {
    /// Token for one received frame.
    type RxToken<'a>: RxToken
    where
        Self: 'a;
    /// Token for sending one frame.
    type TxToken<'a>: TxToken
    where
        Self: 'a;

    /// A received frame together with a token to answer it, or `None` after registering the
    /// waker of `cx` to be woken when a frame arrives.
    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)>;

    /// A token to send one frame, or `None` after registering the waker of `cx` to be woken when
    /// there is room again.
    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Self::TxToken<'_>>;

    /// Whether the link is up; a change wakes the waker of `cx`.
    fn link_state(&mut self, cx: &mut Context<'_>) -> LinkState;

    /// MTU and offloads.
    fn capabilities(&self) -> Capabilities;

    /// The interface's MAC address.
    fn mac(&self) -> [u8; 6];

    /// Counters since the device was opened.
    fn stats(&self) -> NetStats;
}

/// A received frame, lent by the device.
pub trait RxToken {
    /// Call `f` with the frame (Ethernet header included) and return its result.
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R;
}

/// Room for one frame to send, lent by the device.
pub trait TxToken {
    /// Call `f` with a buffer of exactly `len` bytes to fill, then send it.
    ///
    /// A `len` above [`Capabilities::max_frame_len`] is not sent: `f` still runs (on scratch
    /// space), and the frame is counted in [`NetStats::tx_dropped`]. The one exception is a TCP
    /// frame for which [`set_segment_size`](Self::set_segment_size) was called on a device with
    /// [`Capabilities::tso_max_frame_len`]: it may be that long.
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R;

    /// Ask the device to send the frame about to be filled, a TCP segment longer than the MTU
    /// allows, as TCP segments of `mss` payload bytes each (TCP segmentation offload).
    ///
    /// Only for a device whose [`Capabilities::tso_max_frame_len`] is not zero; the default
    /// ignores it, which is right for every device without the offload (no stack gives them a
    /// frame longer than the MTU). A token that wraps another must pass it on, as it passes on
    /// [`Net::capabilities`].
    fn set_segment_size(&mut self, mss: u16) {
        let _ = mss;
    }
}

/// Link state of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// The link is down: frames are neither sent nor received.
    Down,
    /// The link is up.
    Up,
}

/// What an interface can carry, and the work it takes off the stack (offloads).
///
/// [`Capabilities::ethernet`] and [`Default`] offer no offloads: a device that has some sets
/// the fields it has on top.
///
/// ```
/// use morgana::net::Capabilities;
///
/// let plain = Capabilities::default();
/// assert_eq!((plain.mtu, plain.checksum_offload, plain.tso_max_frame_len), (1500, false, 0));
/// assert_eq!(plain.max_rx_frame_len(), 1514, "no frame longer than the MTU");
///
/// // A TAP whose kernel granted checksums, TSO and coalesced receive (see morgana-unix).
/// let mut tap = Capabilities::ethernet(1500);
/// tap.checksum_offload = true;
/// tap.tso_max_frame_len = 65549;
/// tap.rx_max_frame_len = 65549;
/// assert_eq!((tap.max_frame_len(), tap.max_rx_frame_len()), (1514, 65549));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Largest IP packet the link carries (1500 on Ethernet).
    pub mtu: usize,
    /// Whether the device fills the TCP and UDP checksums of the frames it sends and checks
    /// those of the frames it delivers (dropping bad ones), so the stack does neither. The IPv4
    /// header checksum (20 bytes) and ICMP's stay with the stack.
    pub checksum_offload: bool,
    /// TCP segmentation offload (TSO): the longest TCP frame, Ethernet header included, that
    /// the device takes after [`TxToken::set_segment_size`] and sends as segments that fit the
    /// MTU. 0 (no offload) unless [`checksum_offload`](Self::checksum_offload) is set too.
    pub tso_max_frame_len: usize,
    /// Receive offload (GRO/LRO): the longest frame, Ethernet header included, that the device
    /// may deliver, consecutive TCP segments of one connection coalesced into one frame longer
    /// than the MTU. 0 (no offload): no frame is longer than
    /// [`max_frame_len`](Self::max_frame_len).
    pub rx_max_frame_len: usize,
}

impl Capabilities {
    /// Capabilities of an Ethernet link with the given MTU and no offloads.
    pub const fn ethernet(mtu: usize) -> Self {
        Self { mtu, checksum_offload: false, tso_max_frame_len: 0, rx_max_frame_len: 0 }
    }

    /// Largest frame, Ethernet header included, that fits the MTU: the longest the device sends
    /// or delivers without offloads.
    pub const fn max_frame_len(&self) -> usize {
        self.mtu + ETHERNET_HEADER_LEN
    }

    /// Largest frame the device may deliver: [`max_frame_len`](Self::max_frame_len), or
    /// [`rx_max_frame_len`](Self::rx_max_frame_len) if the device coalesces received segments.
    pub const fn max_rx_frame_len(&self) -> usize {
        if self.rx_max_frame_len > self.max_frame_len() {
            self.rx_max_frame_len
        } else {
            self.max_frame_len()
        }
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::ethernet(1500)
    }
}

/// Frame and byte counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames received and handed to the stack.
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Received frames dropped (too long, no buffer, injected loss).
    pub rx_dropped: u64,
    /// Frames not sent (too long, no room, injected loss).
    pub tx_dropped: u64,
}

impl<T: Net + ?Sized> Net for &mut T {
    type RxToken<'a>
        = T::RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = T::TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        T::receive(self, cx)
    }
    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Self::TxToken<'_>> {
        T::transmit(self, cx)
    }
    fn link_state(&mut self, cx: &mut Context<'_>) -> LinkState {
        T::link_state(self, cx)
    }
    fn capabilities(&self) -> Capabilities {
        T::capabilities(self)
    }
    fn mac(&self) -> [u8; 6] {
        T::mac(self)
    }
    fn stats(&self) -> NetStats {
        T::stats(self)
    }
}
