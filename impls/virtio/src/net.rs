//! [`Net`] on a virtio-net device.

use alloc::boxed::Box;
use alloc::vec;
use core::cell::RefCell;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::Context;

use morgana::net::{Capabilities, LinkState, Net, NetStats, RxToken, TxToken};
use morgana::{Clock, Duration};

use crate::irq::IrqLine;
use crate::sys::virtio::NetQueues;

struct Inner {
    q: NetQueues,
    stats: NetStats,
}

/// A virtio-net interface (over virtio-mmio or virtio-pci).
pub struct VirtioNet {
    inner: RefCell<Inner>,
    line: IrqLine,
    caps: Capabilities,
    mac: [u8; 6],
}

impl VirtioNet {
    pub(crate) fn new(q: NetQueues, line: IrqLine) -> Self {
        let mac = q.mac();
        let caps = Capabilities::ethernet(1500);
        debug_assert!(caps.max_frame_len() <= q.max_frame());
        Self { inner: RefCell::new(Inner { q, stats: NetStats::default() }), line, caps, mac }
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
/// The hypervisor sends them asynchronously, but stops the machine at once when the app exits:
/// without this, the last frames an app sends (its answer to the last ping, say) could be lost.
/// The stack's runner, still spawned, reclaims finished frames when the device interrupts.
pub(crate) async fn drain_tx<C: Clock>(clock: &C, within: Duration) {
    let deadline = clock.now() + within;
    while TX_IN_FLIGHT.load(Ordering::Relaxed) > 0 && clock.now() < deadline {
        clock.sleep(Duration::from_millis(1)).await;
    }
}

impl Net for VirtioNet {
    type RxToken<'a> = VirtioRx<'a>;
    type TxToken<'a> = VirtioTx<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(VirtioRx<'_>, VirtioTx<'_>)> {
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

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<VirtioTx<'_>> {
        self.service(cx);
        let free = self.inner.borrow().q.tx_free().is_some();
        free.then_some(VirtioTx { inner: &self.inner, max: self.caps.max_frame_len() })
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        // VIRTIO_NET_F_STATUS is not negotiated by virtio-drivers: the link is always up.
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
pub struct VirtioRx<'a> {
    inner: &'a RefCell<Inner>,
    slot: usize,
    offset: usize,
    len: usize,
}

impl RxToken for VirtioRx<'_> {
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

impl Drop for VirtioRx<'_> {
    fn drop(&mut self) {
        // Unconsumed: hand the buffer back (consume already did, making this a no-op).
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.q.repost(self.slot);
        }
    }
}

/// Room to send one frame.
pub struct VirtioTx<'a> {
    inner: &'a RefCell<Inner>,
    max: usize,
}

impl TxToken for VirtioTx<'_> {
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
