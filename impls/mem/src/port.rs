//! One Ethernet port of a medium that carries frames between ports, and the [`Net`] over it:
//! the learning [`Switch`](crate::Switch) here and the simulator's world are such media, and
//! their NICs are the same [`PortNet`].

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::task::{Context, Waker};

use morgana::net::{Capabilities, LinkState, Net, NetStats, RxToken, TxToken};

/// A port's state on its medium: address, cable, the frames waiting for it, its counters.
pub struct Port {
    /// The NIC's MAC address.
    pub mac: [u8; 6],
    /// Whether the cable is in (a port that is down neither sends nor receives).
    pub up: bool,
    /// Frames delivered to the port and not yet received.
    pub inbox: VecDeque<Vec<u8>>,
    /// The task waiting for a frame or a link change.
    pub waker: Option<Waker>,
    /// What the port sent, received and dropped.
    pub stats: NetStats,
}

impl Port {
    /// A port with address `mac`, cable in, nothing waiting.
    pub fn new(mac: [u8; 6]) -> Self {
        Self { mac, up: true, inbox: VecDeque::new(), waker: None, stats: NetStats::default() }
    }

    /// Queue `frame` for the port and wake its reader.
    pub fn deliver(&mut self, frame: Vec<u8>) {
        self.inbox.push_back(frame);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// What carries frames between ports.
pub trait Medium {
    /// What every port's NIC offers.
    fn capabilities(&self) -> Capabilities;
    /// Port `index`.
    fn port(&mut self, index: usize) -> &mut Port;
    /// Carry `frame`, sent by port `from` (its counters already say so).
    fn carry(&mut self, from: usize, frame: &[u8]);
}

/// The NIC on one port of a [`Medium`].
pub struct PortNet<M> {
    medium: Rc<RefCell<M>>,
    index: usize,
}

impl<M: Medium> PortNet<M> {
    /// The NIC on port `index` of `medium`.
    pub fn new(medium: Rc<RefCell<M>>, index: usize) -> Self {
        Self { medium, index }
    }

    /// Unplug (`false`) or plug back (`true`) the cable: a network partition. Frames waiting
    /// for an unplugged port are lost.
    pub fn set_link(&self, up: bool) {
        let mut m = self.medium.borrow_mut();
        let port = m.port(self.index);
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
pub struct PortRx(Vec<u8>);

impl RxToken for PortRx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        f(&mut self.0)
    }
}

/// Room to send one frame from a port.
pub struct PortTx<'a, M>(&'a PortNet<M>);

impl<M: Medium> TxToken for PortTx<'_, M> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        let mut medium = self.0.medium.borrow_mut();
        let max = medium.capabilities().max_frame_len();
        let port = medium.port(self.0.index);
        if len > max || len < 14 || !port.up {
            port.stats.tx_dropped += 1;
            return r;
        }
        port.stats.tx_frames += 1;
        port.stats.tx_bytes += len as u64;
        medium.carry(self.0.index, &buf);
        r
    }
}

impl<M: Medium> Net for PortNet<M> {
    type RxToken<'a>
        = PortRx
    where
        Self: 'a;
    type TxToken<'a>
        = PortTx<'a, M>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(PortRx, PortTx<'_, M>)> {
        let mut m = self.medium.borrow_mut();
        let port = m.port(self.index);
        match port.inbox.pop_front() {
            Some(frame) => {
                port.stats.rx_frames += 1;
                port.stats.rx_bytes += frame.len() as u64;
                drop(m);
                Some((PortRx(frame), PortTx(self)))
            }
            None => {
                port.waker = Some(cx.waker().clone());
                None
            }
        }
    }

    fn transmit(&mut self, _cx: &mut Context<'_>) -> Option<PortTx<'_, M>> {
        Some(PortTx(self))
    }

    fn link_state(&mut self, cx: &mut Context<'_>) -> LinkState {
        let mut m = self.medium.borrow_mut();
        let port = m.port(self.index);
        port.waker = Some(cx.waker().clone());
        if port.up { LinkState::Up } else { LinkState::Down }
    }

    fn capabilities(&self) -> Capabilities {
        self.medium.borrow().capabilities()
    }

    fn mac(&self) -> [u8; 6] {
        self.medium.borrow_mut().port(self.index).mac
    }

    fn stats(&self) -> NetStats {
        self.medium.borrow_mut().port(self.index).stats
    }
}
