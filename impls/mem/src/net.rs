//! Ethernet ports joined by a learning switch.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::task::{Context, Waker};

use morgana::net::{Capabilities, LinkState, Net, NetStats, RxToken, TxToken};

/// Frames a port queues before it drops (a receiver that never reads cannot eat all memory).
const QUEUE_FRAMES: usize = 1024;

struct Port {
    mac: [u8; 6],
    up: bool,
    inbox: VecDeque<Vec<u8>>,
    waker: Option<Waker>,
    stats: NetStats,
}

struct Fabric {
    caps: Capabilities,
    ports: Vec<Port>,
    /// MAC address -> port, learned from source addresses.
    table: Vec<([u8; 6], usize)>,
}

impl Fabric {
    fn forward(&mut self, from: usize, frame: &[u8]) {
        let (dst, src) = (&frame[..6], &frame[6..12]);
        let src: [u8; 6] = src.try_into().unwrap_or_default();
        // Only a unicast source is learned: a frame claiming to come from the broadcast (or a
        // multicast) address must not steer every broadcast to its port (IEEE 802.1D), as the
        // tcpip fuzz target's liveness check found.
        if !is_group(&src) {
            match self.table.iter_mut().find(|(m, _)| *m == src) {
                Some(entry) => entry.1 = from,
                None => self.table.push((src, from)),
            }
        }
        let known = self.table.iter().find(|(m, _)| m[..] == *dst).map(|(_, p)| *p);
        for (i, port) in self.ports.iter_mut().enumerate() {
            let wanted = match known {
                Some(p) => p == i,
                None => i != from,
            };
            if !wanted || i == from {
                continue;
            }
            if !port.up || port.inbox.len() >= QUEUE_FRAMES {
                port.stats.rx_dropped += 1;
                continue;
            }
            port.inbox.push_back(frame.to_vec());
            if let Some(w) = port.waker.take() {
                w.wake();
            }
        }
    }
}

/// Whether `mac` is a group (broadcast or multicast) address: the I/G bit of its first octet.
fn is_group(mac: &[u8]) -> bool {
    mac.first().is_some_and(|b| b & 1 == 1)
}

/// A learning Ethernet switch with any number of ports.
#[derive(Clone)]
pub struct Switch {
    fabric: Rc<RefCell<Fabric>>,
}

impl Default for Switch {
    fn default() -> Self {
        Self::new(Capabilities::default())
    }
}

impl Switch {
    /// A switch whose ports all have `caps`.
    pub fn new(caps: Capabilities) -> Self {
        Self { fabric: Rc::new(RefCell::new(Fabric { caps, ports: Vec::new(), table: Vec::new() })) }
    }

    /// Plug in a new port with address `mac`.
    pub fn port(&self, mac: [u8; 6]) -> MemNet {
        let mut f = self.fabric.borrow_mut();
        f.ports.push(Port { mac, up: true, inbox: VecDeque::new(), waker: None, stats: NetStats::default() });
        MemNet { fabric: self.fabric.clone(), index: f.ports.len() - 1 }
    }
}

/// Two ports on their own switch: a virtual cable.
pub fn pair(mac_a: [u8; 6], mac_b: [u8; 6]) -> (MemNet, MemNet) {
    let switch = Switch::default();
    (switch.port(mac_a), switch.port(mac_b))
}

/// One port of a [`Switch`].
pub struct MemNet {
    fabric: Rc<RefCell<Fabric>>,
    index: usize,
}

impl MemNet {
    /// Unplug (`false`) or plug back (`true`) the cable: a network partition.
    pub fn set_link(&self, up: bool) {
        let mut f = self.fabric.borrow_mut();
        let port = &mut f.ports[self.index];
        port.up = up;
        if !up {
            port.inbox.clear();
        }
        if let Some(w) = port.waker.take() {
            w.wake();
        }
    }
}

/// A received frame, owned.
pub struct MemRx(Vec<u8>);

impl RxToken for MemRx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        f(&mut self.0)
    }
}

/// Room to send one frame from a port.
pub struct MemTx<'a>(&'a MemNet);

impl TxToken for MemTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        let mut fabric = self.0.fabric.borrow_mut();
        let max = fabric.caps.max_frame_len();
        let port = &mut fabric.ports[self.0.index];
        if len > max || len < 14 || !port.up {
            port.stats.tx_dropped += 1;
            return r;
        }
        port.stats.tx_frames += 1;
        port.stats.tx_bytes += len as u64;
        fabric.forward(self.0.index, &buf);
        r
    }
}

impl Net for MemNet {
    type RxToken<'a> = MemRx;
    type TxToken<'a> = MemTx<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(MemRx, MemTx<'_>)> {
        let mut f = self.fabric.borrow_mut();
        let port = &mut f.ports[self.index];
        match port.inbox.pop_front() {
            Some(frame) => {
                port.stats.rx_frames += 1;
                port.stats.rx_bytes += frame.len() as u64;
                drop(f);
                Some((MemRx(frame), MemTx(self)))
            }
            None => {
                port.waker = Some(cx.waker().clone());
                None
            }
        }
    }

    fn transmit(&mut self, _cx: &mut Context<'_>) -> Option<MemTx<'_>> {
        Some(MemTx(self))
    }

    fn link_state(&mut self, cx: &mut Context<'_>) -> LinkState {
        let mut f = self.fabric.borrow_mut();
        let port = &mut f.ports[self.index];
        port.waker = Some(cx.waker().clone());
        if port.up { LinkState::Up } else { LinkState::Down }
    }

    fn capabilities(&self) -> Capabilities {
        self.fabric.borrow().caps
    }

    fn mac(&self) -> [u8; 6] {
        self.fabric.borrow().ports[self.index].mac
    }

    fn stats(&self) -> NetStats {
        self.fabric.borrow().ports[self.index].stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(port: &mut MemNet, frame: &[u8]) {
        let mut cx = Context::from_waker(Waker::noop());
        let tx = port.transmit(&mut cx).expect("the switch always takes a frame");
        tx.consume(frame.len(), |buf| buf.copy_from_slice(frame));
    }

    fn received(port: &mut MemNet) -> usize {
        let mut cx = Context::from_waker(Waker::noop());
        let mut n = 0;
        while let Some((rx, _)) = port.receive(&mut cx) {
            rx.consume(|_| ());
            n += 1;
        }
        n
    }

    /// Found by the tcpip fuzz target: a frame from `ff:ff:ff:ff:ff:ff` taught the switch that
    /// the broadcast address lived on the sender's port, and from then on no other port heard
    /// a broadcast (an ARP request), so no new peer could reach a stack.
    #[test]
    fn a_group_source_address_is_not_learned() {
        let switch = Switch::default();
        let mut a = switch.port([2, 0, 0, 0, 0, 1]);
        let mut b = switch.port([2, 0, 0, 0, 0, 2]);
        let mut c = switch.port([2, 0, 0, 0, 0, 3]);
        let mut spoof = [0xffu8; 14];
        spoof[12..].copy_from_slice(&[0x08, 0x06]);
        send(&mut a, &spoof);
        let mut multicast = spoof;
        multicast[6..12].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
        send(&mut a, &multicast);
        assert_eq!((received(&mut b), received(&mut c)), (2, 2));
        let mut arp = [0xffu8; 14];
        arp[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 3]);
        send(&mut c, &arp);
        assert_eq!((received(&mut a), received(&mut b)), (1, 1), "a broadcast reaches every other port");
    }
}
