//! [`Net`] on a virtio-net device.

use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::Context;

use morgana::net::{Capabilities, LinkState, Net, NetStats, RxToken, TxToken};
use morgana::{Clock, Duration};
use virtio_drivers::transport::Transport;
use virtio_drivers::{Error, Hal};

use morgana_vnet::VnetHdr;

use crate::Interrupt;
use crate::sys::net::{NetQueues, Received, SUPER_FRAME};

pub use crate::sys::net::Offloads;

struct Inner<H: Hal, T: Transport> {
    q: NetQueues<H, T>,
    stats: NetStats,
}

/// A virtio-net interface. Receive buffers stay posted; 16 frames may be in flight to the
/// device, and with all 16 out [`Net::transmit`] has no token until the device sends one (its
/// interrupt wakes the task).
///
/// Offloads, where the device offers them (QEMU does with a TAP back end, not with user
/// networking), as `morgana-unix` uses them on a TAP: with `VIRTIO_NET_F_CSUM` the stack leaves
/// TCP and UDP checksums to the device ([`Capabilities::checksum_offload`]): a frame sent
/// carries the pseudo-header sum and `NEEDS_CSUM`, one received is trusted when the device
/// marks it (`GUEST_CSUM`) and checked here otherwise; with `HOST_TSO4` and `HOST_TSO6` the
/// stack hands over TCP segments of up to 64 KiB, which the device cuts
/// ([`Capabilities::tso_max_frame_len`]); with `GUEST_TSO4/6` and `MRG_RXBUF` the device may
/// deliver super-frames of up to 64 KiB across several receive buffers
/// ([`Capabilities::rx_max_frame_len`]).
pub struct VirtioNet<H: Hal, T: Transport, I: Interrupt> {
    inner: RefCell<Inner<H, T>>,
    line: I,
    caps: Capabilities,
    mac: [u8; 6],
    offloads: Offloads,
}

impl<H: Hal, T: Transport, I: Interrupt> VirtioNet<H, T, I> {
    /// Initialise the virtio-net device behind `transport`, which interrupts on `line`, with the
    /// offloads it offers. `Err(Unsupported)` for a device without a MAC address
    /// (`VIRTIO_NET_F_MAC`).
    pub fn new(transport: T, line: I) -> Result<Self, Error> {
        let q = NetQueues::new(transport)?;
        let mac = q.mac();
        let offloads = q.offloads();
        let mut caps = Capabilities::ethernet(1500);
        debug_assert!(caps.max_frame_len() <= q.max_frame());
        caps.checksum_offload = offloads.checksum;
        if offloads.tso {
            caps.tso_max_frame_len = SUPER_FRAME;
        }
        if offloads.rx_super_frames {
            caps.rx_max_frame_len = SUPER_FRAME;
        }
        Ok(Self { inner: RefCell::new(Inner { q, stats: NetStats::default() }), line, caps, mac, offloads })
    }

    /// The offloads the device and the driver agreed on.
    pub fn offloads(&self) -> Offloads {
        self.offloads
    }

    fn tx(&self) -> VirtioTx<'_, H, T> {
        VirtioTx {
            inner: &self.inner,
            max: self.caps.max_frame_len(),
            tso_max: self.caps.tso_max_frame_len,
            checksum: self.caps.checksum_offload,
            mss: None,
        }
    }

    fn service(&self, cx: &mut Context<'_>) {
        self.line.service(cx.waker(), || self.inner.borrow_mut().q.ack());
        let done = self.inner.borrow_mut().q.reclaim_tx();
        if done > 0 {
            TX_IN_FLIGHT.fetch_sub(done, Ordering::Relaxed);
        }
    }
}

/// Frames handed to any virtio-net device and not yet sent by it.
static TX_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Wait, for at most `within`, until every virtio-net device has sent the frames handed to it.
///
/// A hypervisor sends them asynchronously, but stops the machine at once when the app exits:
/// without this, the last frames an app sends (its answer to the last ping, say) could be lost.
/// The stack's runner, still spawned, reclaims finished frames when the device interrupts.
pub async fn drain_tx<C: Clock>(clock: &C, within: Duration) {
    let deadline = clock.now() + within;
    while TX_IN_FLIGHT.load(Ordering::Relaxed) > 0 && clock.now() < deadline {
        clock.sleep(Duration::from_millis(1)).await;
    }
}

impl<H: Hal, T: Transport, I: Interrupt> Net for VirtioNet<H, T, I> {
    type RxToken<'a>
        = VirtioRx<'a, H, T>
    where
        Self: 'a;
    type TxToken<'a>
        = VirtioTx<'a, H, T>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(VirtioRx<'_, H, T>, VirtioTx<'_, H, T>)> {
        self.service(cx);
        let max = self.caps.max_rx_frame_len();
        let mut inner = self.inner.borrow_mut();
        loop {
            let (frame, head) = match inner.q.poll_rx()? {
                Ok(r) => r,
                Err(_) => {
                    inner.stats.rx_dropped += 1;
                    continue;
                }
            };
            let hdr = VnetHdr::read(&head);
            let ok = {
                let bytes = match &frame {
                    Received::Slot { slot, offset, len } => inner.q.rx_bytes(*slot, *offset, *len),
                    Received::Merged(v) => &v[..],
                };
                bytes.len() <= max
                    && bytes.len() >= morgana::net::ETHERNET_HEADER_LEN
                    && (!self.caps.checksum_offload || morgana_vnet::rx_checksum_ok(&hdr, bytes))
            };
            if !ok {
                if let Received::Slot { slot, .. } = frame {
                    inner.q.repost(slot);
                }
                inner.stats.rx_dropped += 1;
                continue;
            }
            drop(inner);
            let rx = VirtioRx { inner: &self.inner, frame: Some(frame) };
            return Some((rx, self.tx()));
        }
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<VirtioTx<'_, H, T>> {
        self.service(cx);
        let free = self.inner.borrow().q.tx_free().is_some();
        free.then(|| self.tx())
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        // VIRTIO_NET_F_STATUS is not negotiated: the link is always up.
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn stats(&self) -> NetStats {
        self.inner.borrow().stats
    }
}

/// A received frame: still in the device's receive buffer, or gathered from several.
pub struct VirtioRx<'a, H: Hal, T: Transport> {
    inner: &'a RefCell<Inner<H, T>>,
    frame: Option<Received>,
}

impl<H: Hal, T: Transport> RxToken for VirtioRx<'_, H, T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        let (r, len) = match self.frame.take() {
            Some(Received::Slot { slot, offset, len }) => {
                // The buffer is taken out while `f` runs: a stack answers from inside `f` with
                // the transmit token, which needs the device too.
                let mut buf = self.inner.borrow_mut().q.take_rx(slot);
                let r = f(&mut buf[offset..offset + len]);
                self.inner.borrow_mut().q.give_rx(slot, buf);
                (r, len)
            }
            Some(Received::Merged(mut v)) => (f(&mut v), v.len()),
            None => (f(&mut []), 0),
        };
        let mut inner = self.inner.borrow_mut();
        inner.stats.rx_frames += 1;
        inner.stats.rx_bytes += len as u64;
        r
    }
}

impl<H: Hal, T: Transport> Drop for VirtioRx<'_, H, T> {
    fn drop(&mut self) {
        // Unconsumed: hand the buffer back (consume took the frame, making this a no-op).
        if let Some(Received::Slot { slot, .. }) = self.frame
            && let Ok(mut inner) = self.inner.try_borrow_mut()
        {
            inner.q.repost(slot);
        }
    }
}

/// Room to send one frame.
pub struct VirtioTx<'a, H: Hal, T: Transport> {
    inner: &'a RefCell<Inner<H, T>>,
    max: usize,
    tso_max: usize,
    checksum: bool,
    mss: Option<u16>,
}

impl<H: Hal, T: Transport> TxToken for VirtioTx<'_, H, T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let max = if self.mss.is_some() && self.tso_max > 0 { self.tso_max } else { self.max };
        let slot = if len <= max { self.inner.borrow_mut().q.take_tx(len) } else { None };
        let Some((slot, mut buf, offset)) = slot else {
            // Too long, or every transmit buffer is in flight: run `f` on scratch space, drop.
            let mut scratch: Vec<u8> = vec![0u8; len];
            let r = f(&mut scratch);
            self.inner.borrow_mut().stats.tx_dropped += 1;
            return r;
        };
        let frame = &mut buf[offset..offset + len];
        let r = f(frame);
        let hdr = if self.checksum { morgana_vnet::offload_tx(frame, self.mss) } else { VnetHdr::default() };
        let mut head = [0u8; 10];
        hdr.write(&mut head);
        let mut inner = self.inner.borrow_mut();
        match inner.q.give_tx(slot, buf, len, head) {
            Ok(()) => {
                TX_IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
                inner.stats.tx_frames += 1;
                inner.stats.tx_bytes += len as u64;
            }
            Err(_) => inner.stats.tx_dropped += 1,
        }
        r
    }

    fn set_segment_size(&mut self, mss: u16) {
        self.mss = Some(mss);
    }
}
