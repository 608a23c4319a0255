//! [`Net`] on a virtio-net device.

use alloc::boxed::Box;
use alloc::vec;
use core::cell::RefCell;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::Context;

use morgana::net::{Capabilities, LinkState, Net, NetStats, RxToken, TxToken};
use morgana::{Clock, Duration};
use virtio_drivers::transport::Transport;
use virtio_drivers::{Error, Hal};

use crate::Interrupt;
use crate::sys::net::NetQueues;

struct Inner<H: Hal, T: Transport> {
    q: NetQueues<H, T>,
    stats: NetStats,
}

/// A virtio-net interface. 32 receive buffers stay posted; 16 frames may be in flight to the
/// device, and with all 16 out [`Net::transmit`] has no token until the device sends one (its
/// interrupt wakes the task).
pub struct VirtioNet<H: Hal, T: Transport, I: Interrupt> {
    inner: RefCell<Inner<H, T>>,
    line: I,
    caps: Capabilities,
    mac: [u8; 6],
}

impl<H: Hal, T: Transport, I: Interrupt> VirtioNet<H, T, I> {
    /// Initialise the virtio-net device behind `transport`, which interrupts on `line`.
    /// `Err(Unsupported)` for a device without a MAC address (`VIRTIO_NET_F_MAC`).
    pub fn new(transport: T, line: I) -> Result<Self, Error> {
        let q = NetQueues::new(transport)?;
        let mac = q.mac();
        let caps = Capabilities::ethernet(1500);
        debug_assert!(caps.max_frame_len() <= q.max_frame());
        Ok(Self { inner: RefCell::new(Inner { q, stats: NetStats::default() }), line, caps, mac })
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
        let max = self.caps.max_frame_len();
        let mut inner = self.inner.borrow_mut();
        loop {
            match inner.q.poll_rx()? {
                Ok((slot, offset, len)) if len <= max => {
                    drop(inner);
                    let rx = VirtioRx { inner: &self.inner, slot, offset, len };
                    return Some((rx, VirtioTx { inner: &self.inner, max }));
                }
                Ok((slot, _, _)) => {
                    inner.q.repost(slot);
                    inner.stats.rx_dropped += 1;
                }
                Err(_) => inner.stats.rx_dropped += 1,
            }
        }
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<VirtioTx<'_, H, T>> {
        self.service(cx);
        let free = self.inner.borrow().q.tx_free().is_some();
        free.then_some(VirtioTx { inner: &self.inner, max: self.caps.max_frame_len() })
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

/// A received frame, still in the device's receive buffer.
pub struct VirtioRx<'a, H: Hal, T: Transport> {
    inner: &'a RefCell<Inner<H, T>>,
    slot: usize,
    offset: usize,
    len: usize,
}

impl<H: Hal, T: Transport> RxToken for VirtioRx<'_, H, T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        // The buffer is taken out while `f` runs: a stack answers from inside `f` with the
        // transmit token, which needs the device too.
        let mut buf = self.inner.borrow_mut().q.take_rx(self.slot);
        let r = f(&mut buf[self.offset..self.offset + self.len]);
        let mut inner = self.inner.borrow_mut();
        inner.q.give_rx(self.slot, buf);
        inner.stats.rx_frames += 1;
        inner.stats.rx_bytes += self.len as u64;
        r
    }
}

impl<H: Hal, T: Transport> Drop for VirtioRx<'_, H, T> {
    fn drop(&mut self) {
        // Unconsumed: hand the buffer back (consume already did, making this a no-op).
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.q.repost(self.slot);
        }
    }
}

/// Room to send one frame.
pub struct VirtioTx<'a, H: Hal, T: Transport> {
    inner: &'a RefCell<Inner<H, T>>,
    max: usize,
}

impl<H: Hal, T: Transport> TxToken for VirtioTx<'_, H, T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let slot = if len <= self.max { self.inner.borrow_mut().q.take_tx() } else { None };
        let Some((slot, mut buf, offset)) = slot else {
            // Too long, or every transmit buffer is in flight: run `f` on scratch space, drop.
            let mut scratch: Box<[u8]> = vec![0u8; len].into_boxed_slice();
            let r = f(&mut scratch);
            self.inner.borrow_mut().stats.tx_dropped += 1;
            return r;
        };
        let r = f(&mut buf[offset..offset + len]);
        let mut inner = self.inner.borrow_mut();
        match inner.q.give_tx(slot, buf, len) {
            Ok(()) => {
                TX_IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
                inner.stats.tx_frames += 1;
                inner.stats.tx_bytes += len as u64;
            }
            Err(_) => inner.stats.tx_dropped += 1,
        }
        r
    }
}
