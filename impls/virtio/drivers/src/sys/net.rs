//! The virtio-net receive and transmit queues and the buffers the device holds (virtio 1.2,
//! 5.1.6).

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::{DeviceStatus, Transport};
use virtio_drivers::{Error, Hal};

use crate::features::{self, VERSION_1};

/// `VIRTIO_NET_F_MAC`: the device has a MAC address in its configuration space.
pub const F_MAC: u64 = 1 << 5;

/// Descriptors per queue, and so receive buffers posted (transmit buffers are half as many).
pub const QUEUE_SIZE: usize = 32;
/// Bytes per buffer: a virtio-net header and a 1514-byte frame fit.
pub const BUF: usize = 1536 + 64;

const RX: u16 = 0;
const TX: u16 = 1;

struct Slot {
    buf: Box<[u8]>,
    /// `Some` while the device owns the buffer.
    token: Option<u16>,
    /// Bytes handed to the device (transmit), needed to complete the request.
    len: usize,
}

impl Slot {
    fn new() -> Self {
        Self { buf: vec![0u8; BUF].into_boxed_slice(), token: None, len: 0 }
    }
}

/// A virtio-net device with its receive and transmit buffers.
pub struct NetQueues<H: Hal, T: Transport> {
    transport: T,
    rxq: VirtQueue<H, QUEUE_SIZE>,
    txq: VirtQueue<H, QUEUE_SIZE>,
    rx: Vec<Slot>,
    tx: Vec<Slot>,
    /// Bytes of `struct virtio_net_hdr` before each frame: 12, or 10 on a legacy device.
    hdr: usize,
    mac: [u8; 6],
}

impl<H: Hal, T: Transport> NetQueues<H, T> {
    /// Negotiate, read the MAC address, set up both queues and post every receive buffer.
    /// `Err(Unsupported)` for a device without a MAC address.
    pub fn new(mut transport: T) -> Result<Self, Error> {
        let features = features::negotiate(&mut transport, F_MAC)?;
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
        let hdr = if features.has(VERSION_1) { 12 } else { 10 };
        let mut q = Self {
            transport,
            rxq,
            txq,
            rx: (0..QUEUE_SIZE).map(|_| Slot::new()).collect(),
            tx: (0..QUEUE_SIZE / 2).map(|_| Slot::new()).collect(),
            hdr,
            mac,
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

    /// Acknowledge the device's interrupt.
    pub fn ack(&mut self) {
        self.transport.ack_interrupt();
    }

    /// Largest frame a buffer holds.
    pub fn max_frame(&self) -> usize {
        BUF - self.hdr
    }

    fn post_rx(&mut self, i: usize) -> Result<(), Error> {
        let slot = &mut self.rx[i];
        if slot.token.is_none() && slot.buf.len() == BUF {
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

    /// The next received frame: `(slot, offset, len)`; the slot stays out of the device until
    /// [`repost`](Self::repost). `Some(Err(..))` for a completion the device got wrong.
    pub fn poll_rx(&mut self) -> Option<Result<(usize, usize, usize), Error>> {
        let token = self.rxq.peek_used()?;
        let Some(i) = self.rx.iter().position(|s| s.token == Some(token)) else {
            return Some(Err(Error::WrongToken));
        };
        let slot = &mut self.rx[i];
        // SAFETY: the same buffer that `add` returned `token` for.
        let done = unsafe { self.rxq.pop_used(token, &[], &mut [&mut slot.buf[..]]) };
        slot.token = None;
        let hdr = self.hdr;
        Some(match done {
            Ok(len) if (len as usize) >= hdr && (len as usize) <= BUF => Ok((i, hdr, len as usize - hdr)),
            Ok(_) | Err(_) => {
                self.repost(i);
                Err(Error::IoError)
            }
        })
    }

    /// Take a received buffer out while the stack reads it (the slot is not in the device).
    pub fn take_rx(&mut self, slot: usize) -> Box<[u8]> {
        let s = &mut self.rx[slot];
        if s.token.is_some() { Box::default() } else { core::mem::take(&mut s.buf) }
    }

    /// Put a buffer from [`take_rx`](Self::take_rx) back and give it to the device.
    pub fn give_rx(&mut self, slot: usize, buf: Box<[u8]>) {
        if self.rx[slot].token.is_none() && buf.len() == BUF {
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

    /// Take a free transmit buffer out to fill it: `(slot, buffer, offset of the frame)`.
    pub fn take_tx(&mut self) -> Option<(usize, Box<[u8]>, usize)> {
        let slot = self.tx_free()?;
        Some((slot, core::mem::take(&mut self.tx[slot].buf), self.hdr))
    }

    /// Put a buffer from [`take_tx`](Self::take_tx) back and send the `len`-byte frame in it.
    /// `QueueFull` if the device has no room for it (the frame is not sent).
    pub fn give_tx(&mut self, slot: usize, buf: Box<[u8]>, len: usize) -> Result<(), Error> {
        let total = self.hdr + len;
        let s = &mut self.tx[slot];
        if s.token.is_some() || buf.len() != BUF {
            return Err(Error::InvalidParam);
        }
        s.buf = buf;
        if total > BUF {
            return Err(Error::InvalidParam);
        }
        // No offloads: an all-zero header.
        s.buf[..self.hdr].fill(0);
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
