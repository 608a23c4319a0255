//! The virtio-net receive and transmit queues and the buffers the device holds (virtio 1.2,
//! 5.1.6), with the offloads a device may offer: checksums both ways, TCP segmentation of what
//! is sent, and TCP super-frames received across merged buffers.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::{DeviceStatus, Transport};
use virtio_drivers::{Error, Hal};

use crate::features::{self, Features, VERSION_1};

/// `VIRTIO_NET_F_CSUM`: the device completes partial checksums of what is sent.
pub const F_CSUM: u64 = 1 << 0;
/// `VIRTIO_NET_F_GUEST_CSUM`: the device may deliver partial or already-checked checksums.
pub const F_GUEST_CSUM: u64 = 1 << 1;
/// `VIRTIO_NET_F_MAC`: the device has a MAC address in its configuration space.
pub const F_MAC: u64 = 1 << 5;
/// `VIRTIO_NET_F_GUEST_TSO4`: the device may deliver IPv4 TCP super-frames.
pub const F_GUEST_TSO4: u64 = 1 << 7;
/// `VIRTIO_NET_F_GUEST_TSO6`: the same for IPv6.
pub const F_GUEST_TSO6: u64 = 1 << 8;
/// `VIRTIO_NET_F_HOST_TSO4`: the device segments IPv4 TCP super-frames it is given.
pub const F_HOST_TSO4: u64 = 1 << 11;
/// `VIRTIO_NET_F_HOST_TSO6`: the same for IPv6.
pub const F_HOST_TSO6: u64 = 1 << 12;
/// `VIRTIO_NET_F_MRG_RXBUF`: a received frame may span several receive buffers.
pub const F_MRG_RXBUF: u64 = 1 << 15;

/// Receive descriptors (and at most this many receive buffers posted).
const RX_QUEUE: usize = 64;
/// Transmit descriptors; half as many frames may be in flight.
const TX_QUEUE: usize = 32;
/// Receive buffers without merged buffers: each holds a header and a 1518-byte frame.
const RX_BUFS: usize = 32;
/// Bytes per buffer: a virtio-net header and a 1514-byte frame (with a VLAN tag) fit.
pub const BUF: usize = 1536 + 64;
/// Bytes per receive buffer when a frame may span several (17 for a 64 KiB super-frame).
const MRG_BUF: usize = 4096;
/// Longest frame with an offload, Ethernet header included: an IP length has 16 bits.
pub const SUPER_FRAME: usize = u16::MAX as usize + morgana::net::ETHERNET_HEADER_LEN;

const RX: u16 = 0;
const TX: u16 = 1;

/// Which features to accept of those `offered`: the MAC, and the offloads that come with what
/// they depend on (TSO needs the checksum offload of its direction; super-frames received are
/// taken only across merged buffers, so no buffer has to be 64 KiB).
fn choose(offered: u64) -> u64 {
    let has = |f: u64| offered & f == f;
    let mut want = F_MAC | F_CSUM | F_GUEST_CSUM;
    if has(F_CSUM | F_HOST_TSO4 | F_HOST_TSO6) {
        want |= F_HOST_TSO4 | F_HOST_TSO6;
    }
    if has(F_GUEST_CSUM | F_MRG_RXBUF) && offered & (F_GUEST_TSO4 | F_GUEST_TSO6) != 0 {
        want |= F_MRG_RXBUF | F_GUEST_TSO4 | F_GUEST_TSO6;
    }
    want
}

/// The offloads a virtio-net device and the driver agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offloads {
    /// The device fills TCP/UDP checksums of frames sent with `NEEDS_CSUM` (`VIRTIO_NET_F_CSUM`).
    pub checksum: bool,
    /// The device segments TCP super-frames (`HOST_TSO4` and `HOST_TSO6`).
    pub tso: bool,
    /// The device may deliver TCP super-frames (`GUEST_TSO4/6` with `MRG_RXBUF`).
    pub rx_super_frames: bool,
}

struct Slot {
    buf: Box<[u8]>,
    /// `Some` while the device owns the buffer.
    token: Option<u16>,
    /// Bytes handed to the device (transmit), needed to complete the request.
    len: usize,
}

impl Slot {
    fn new(len: usize) -> Self {
        Self { buf: vec![0u8; len].into_boxed_slice(), token: None, len: 0 }
    }
}

/// A received frame, out of the device.
pub enum Received {
    /// In receive buffer `slot`, at `offset`, `len` bytes; the slot stays out of the device
    /// until [`NetQueues::repost`].
    Slot {
        /// Which receive buffer.
        slot: usize,
        /// Where the frame starts in it (after the header).
        offset: usize,
        /// The frame's length.
        len: usize,
    },
    /// Gathered from several merged buffers (already given back to the device).
    Merged(Vec<u8>),
}

/// A virtio-net device with its receive and transmit buffers.
pub struct NetQueues<H: Hal, T: Transport> {
    transport: T,
    rxq: VirtQueue<H, RX_QUEUE>,
    txq: VirtQueue<H, TX_QUEUE>,
    rx: Vec<Slot>,
    tx: Vec<Slot>,
    /// Bytes of each receive buffer.
    rx_buf: usize,
    /// Bytes of `struct virtio_net_hdr` before each frame: 12, or 10 on a legacy device
    /// without merged buffers.
    hdr: usize,
    mac: [u8; 6],
    features: Features,
}

impl<H: Hal, T: Transport> NetQueues<H, T> {
    /// Negotiate, read the MAC address, set up both queues and post every receive buffer.
    /// `Err(Unsupported)` for a device without a MAC address.
    pub fn new(mut transport: T) -> Result<Self, Error> {
        let features = features::negotiate_with(&mut transport, choose)?;
        if !features.has(F_MAC) {
            transport.set_status(DeviceStatus::FAILED);
            return Err(Error::Unsupported);
        }
        let mac = transport.read_consistent(|| {
            let mut mac = [0u8; 6];
            for (i, b) in mac.iter_mut().enumerate() {
                *b = transport.read_config_space(i)?;
            }
            Ok(mac)
        })?;
        let rxq = VirtQueue::new(&mut transport, RX, false, false)?;
        let txq = VirtQueue::new(&mut transport, TX, false, false)?;
        features::ready(&mut transport);
        let merged = features.has(F_MRG_RXBUF);
        let hdr = if features.has(VERSION_1) || merged { 12 } else { 10 };
        let (bufs, rx_buf) = if merged { (RX_QUEUE, MRG_BUF) } else { (RX_BUFS, BUF) };
        let mut q = Self {
            transport,
            rxq,
            txq,
            rx: (0..bufs).map(|_| Slot::new(rx_buf)).collect(),
            tx: (0..TX_QUEUE / 2).map(|_| Slot::new(BUF)).collect(),
            rx_buf,
            hdr,
            mac,
            features,
        };
        for i in 0..q.rx.len() {
            q.post_rx(i)?;
        }
        q.notify_rx();
        Ok(q)
    }

    /// The device's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The offloads negotiated.
    pub fn offloads(&self) -> Offloads {
        let f = self.features;
        Offloads {
            checksum: f.has(F_CSUM),
            tso: f.has(F_CSUM | F_HOST_TSO4 | F_HOST_TSO6),
            rx_super_frames: f.has(F_MRG_RXBUF) && f.accepted & (F_GUEST_TSO4 | F_GUEST_TSO6) != 0,
        }
    }

    /// Acknowledge the device's interrupt.
    pub fn ack(&mut self) {
        self.transport.ack_interrupt();
    }

    /// Largest frame a buffer holds without an offload.
    pub fn max_frame(&self) -> usize {
        BUF - self.hdr
    }

    fn post_rx(&mut self, i: usize) -> Result<(), Error> {
        let slot = &mut self.rx[i];
        if slot.token.is_none() && slot.buf.len() == self.rx_buf {
            // SAFETY: the buffer is owned by `self.rx` and not touched again until the device
            // returns this token (`poll_rx`), or the device is reset (`Drop`).
            slot.token = Some(unsafe { self.rxq.add(&[], &mut [&mut slot.buf[..]])? });
        }
        Ok(())
    }

    fn notify_rx(&mut self) {
        if self.rxq.should_notify() {
            self.transport.notify(RX);
        }
    }

    /// Take the next used receive buffer out of the device: `(slot, bytes written)`.
    fn pop_rx(&mut self) -> Option<Result<(usize, usize), Error>> {
        let token = self.rxq.peek_used()?;
        let Some(i) = self.rx.iter().position(|s| s.token == Some(token)) else {
            return Some(Err(Error::WrongToken));
        };
        let slot = &mut self.rx[i];
        // SAFETY: the same buffer that `add` returned `token` for.
        let done = unsafe { self.rxq.pop_used(token, &[], &mut [&mut slot.buf[..]]) };
        slot.token = None;
        Some(match done {
            Ok(len) if len as usize <= self.rx_buf => Ok((i, len as usize)),
            Ok(_) => {
                self.repost(i);
                Err(Error::IoError)
            }
            Err(e) => Err(e),
        })
    }

    /// The next received frame and the header the device gave it (its first 10 bytes).
    /// `Some(Err(..))` for a completion the device got wrong (the buffers are given back).
    pub fn poll_rx(&mut self) -> Option<Result<(Received, [u8; 10]), Error>> {
        let (i, len) = match self.pop_rx()? {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        let hdr = self.hdr;
        if len < hdr {
            self.repost(i);
            return Some(Err(Error::IoError));
        }
        let mut head = [0u8; 10];
        head.copy_from_slice(&self.rx[i].buf[..10]);
        let count = if self.features.has(F_MRG_RXBUF) {
            u16::from_le_bytes([self.rx[i].buf[10], self.rx[i].buf[11]]).max(1)
        } else {
            1
        };
        if count == 1 {
            return Some(Ok((Received::Slot { slot: i, offset: hdr, len: len - hdr }, head)));
        }
        // A frame across `count` buffers: gather it and give every buffer back.
        let mut frame = Vec::with_capacity(usize::from(count) * self.rx_buf);
        frame.extend_from_slice(&self.rx[i].buf[hdr..len]);
        self.repost(i);
        for _ in 1..count {
            match self.pop_rx() {
                Some(Ok((j, n))) => {
                    frame.extend_from_slice(&self.rx[j].buf[..n]);
                    self.repost(j);
                }
                // The device announced more buffers than it used: drop the frame.
                _ => return Some(Err(Error::IoError)),
            }
        }
        Some(Ok((Received::Merged(frame), head)))
    }

    /// The `len` bytes at `offset` of receive buffer `slot` (one [`poll_rx`](Self::poll_rx)
    /// returned, not yet given back).
    pub fn rx_bytes(&self, slot: usize, offset: usize, len: usize) -> &[u8] {
        self.rx[slot].buf.get(offset..offset + len).unwrap_or(&[])
    }

    /// Take a received buffer out while the stack reads it (the slot is not in the device).
    pub fn take_rx(&mut self, slot: usize) -> Box<[u8]> {
        let s = &mut self.rx[slot];
        if s.token.is_some() { Box::default() } else { core::mem::take(&mut s.buf) }
    }

    /// Put a buffer from [`take_rx`](Self::take_rx) back and give it to the device.
    pub fn give_rx(&mut self, slot: usize, buf: Box<[u8]>) {
        if self.rx[slot].token.is_none() && buf.len() == self.rx_buf {
            self.rx[slot].buf = buf;
        }
        self.repost(slot);
    }

    /// Give a receive buffer back to the device.
    pub fn repost(&mut self, slot: usize) {
        // A failure leaves the slot out of the ring; the others keep receiving.
        let _ = self.post_rx(slot);
        self.notify_rx();
    }

    /// Collect finished transmissions; how many.
    pub fn reclaim_tx(&mut self) -> usize {
        let mut done = 0;
        while let Some(token) = self.txq.peek_used() {
            let Some(slot) = self.tx.iter_mut().find(|s| s.token == Some(token)) else { break };
            // SAFETY: the same buffer and length that `add` returned `token` for.
            let _ = unsafe { self.txq.pop_used(token, &[&slot.buf[..slot.len]], &mut []) };
            slot.token = None;
            done += 1;
        }
        done
    }

    /// A free transmit buffer, if there is one.
    pub fn tx_free(&self) -> Option<usize> {
        self.tx.iter().position(|s| s.token.is_none() && !s.buf.is_empty())
    }

    /// Take a free transmit buffer out to fill with a `len`-byte frame: `(slot, buffer, offset
    /// of the frame)`. A buffer too small for a super-frame is replaced by one that fits any.
    pub fn take_tx(&mut self, len: usize) -> Option<(usize, Box<[u8]>, usize)> {
        let slot = self.tx_free()?;
        let mut buf = core::mem::take(&mut self.tx[slot].buf);
        if buf.len() < self.hdr + len {
            buf = vec![0u8; self.hdr + SUPER_FRAME.max(len)].into_boxed_slice();
        }
        Some((slot, buf, self.hdr))
    }

    /// Put a buffer from [`take_tx`](Self::take_tx) back and send the `len`-byte frame in it
    /// behind `head` (the first 10 bytes of its header; `num_buffers` is 0).
    pub fn give_tx(&mut self, slot: usize, buf: Box<[u8]>, len: usize, head: [u8; 10]) -> Result<(), Error> {
        let total = self.hdr + len;
        let s = &mut self.tx[slot];
        if s.token.is_some() || buf.len() < BUF {
            return Err(Error::InvalidParam);
        }
        s.buf = buf;
        if total > s.buf.len() {
            return Err(Error::InvalidParam);
        }
        s.buf[..10].copy_from_slice(&head);
        s.buf[10..self.hdr].fill(0);
        // SAFETY: the buffer is owned by `self.tx` and not touched until `reclaim_tx` sees the
        // token come back, or the device is reset (`Drop`).
        let token = unsafe { self.txq.add(&[&s.buf[..total]], &mut [])? };
        s.token = Some(token);
        s.len = total;
        if self.txq.should_notify() {
            self.transport.notify(TX);
        }
        Ok(())
    }
}

impl<H: Hal, T: Transport> Drop for NetQueues<H, T> {
    fn drop(&mut self) {
        // Reset first: the device stops using the queues and the buffers before they are freed.
        self.transport.set_status(DeviceStatus::empty());
        self.transport.queue_unset(RX);
        self.transport.queue_unset(TX);
    }
}
