//! Ethernet ports joined by a learning switch.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

use morgana::net::Capabilities;

use crate::port::{Medium, Port, PortNet};

/// Frames a port queues before it drops (a receiver that never reads cannot eat all memory).
const QUEUE_FRAMES: usize = 1024;

/// What a [`Switch`]'s ports share: their states and the learned addresses.
pub struct Fabric {
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
            port.deliver(frame.to_vec());
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
        f.ports.push(Port::new(mac));
        PortNet::new(self.fabric.clone(), f.ports.len() - 1)
    }
}

/// Two ports on their own switch: a virtual cable.
pub fn pair(mac_a: [u8; 6], mac_b: [u8; 6]) -> (MemNet, MemNet) {
    let switch = Switch::default();
    (switch.port(mac_a), switch.port(mac_b))
}

/// One port of a [`Switch`].
pub type MemNet = PortNet<Fabric>;

impl Medium for Fabric {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn port(&mut self, index: usize) -> &mut Port {
        &mut self.ports[index]
    }

    fn carry(&mut self, from: usize, frame: &[u8]) {
        self.forward(from, frame);
    }
}

#[cfg(test)]
mod tests {
    use core::task::{Context, Waker};

    use morgana::net::{Net, RxToken, TxToken};

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
