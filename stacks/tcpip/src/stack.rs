//! The shared state ([`Inner`]), the handle apps hold ([`Stack`]), and building a stack. The
//! task that drives it is in `runner`, the TCP connections' lifecycle in `lifecycle`, the
//! listeners in `listen`, DHCP in `dhcp`.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell, RefMut};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::task::{Context, Waker};

use morgana::net::Net;
use morgana::rand_core::RngCore;
use morgana::{Clock, Platform, StackError};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, dns, tcp};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Cidr, Ipv6Cidr};

use crate::config::{Config, Ipv4Mode};
use crate::device::{self, Adapter};
use crate::lifecycle::{Orphan, Timers, Tracked};
use crate::listen::ListenSlot;
use crate::runner::Runner;

/// First port handed out for outgoing connections and unbound sockets (IANA's dynamic range).
const EPHEMERAL_FIRST: u16 = 49152;

pub(crate) fn smol_instant(at: morgana::Instant) -> SmolInstant {
    SmolInstant::from_micros(i64::try_from(at.as_micros()).unwrap_or(i64::MAX))
}

pub(crate) fn smol_duration(d: morgana::Duration) -> SmolDuration {
    SmolDuration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Everything the stack's handles and its runner share.
pub(crate) struct Inner {
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    pub config: Config,
    /// `config`'s TCP timers, converted.
    pub(crate) timers: Timers,
    /// Largest IP packet the link carries.
    pub ip_mtu: usize,
    /// Last time the runner polled: the clock as socket operations see it.
    pub now: SmolInstant,
    pub(crate) runner: Option<Waker>,
    /// The runner was woken and has not polled since: further wakes are redundant.
    pub(crate) runner_woken: Cell<bool>,
    pub tracked: Vec<Tracked>,
    /// Dropped connections finishing their close.
    pub(crate) orphans: Vec<Orphan>,
    pub listeners: Vec<Option<ListenSlot>>,
    pub(crate) dhcp: Option<SocketHandle>,
    pub dns: Option<SocketHandle>,
    /// Tasks waiting for the addresses to change (DHCP).
    pub(crate) config_waiters: Vec<Waker>,
    /// DNS servers from the DHCP lease.
    pub(crate) learned_dns: Vec<Ipv4Addr>,
    /// With DHCP and no lease: since when we have been asking.
    pub(crate) lease_asked: SmolInstant,
    /// With DHCP: no lease came within [`LEASE_WAIT`] of asking, so waiters give up.
    pub(crate) lease_overdue: bool,
    pub(crate) next_port: u16,
    pub(crate) link_up: bool,
    /// What [`Stack::counters`] reports, besides what the sockets count themselves.
    pub(crate) counted: Counted,
}

/// Counts the stack keeps for [`Stack::counters`].
#[derive(Debug, Default)]
pub(crate) struct Counted {
    /// The device's counters, copied by the runner at each pass.
    pub net: morgana::NetStats,
    pub accepted: u64,
    pub refused: u64,
    /// Retransmissions of the sockets already removed.
    pub retransmits_retired: u64,
}

/// The stack's counters, for a person reading why a service is slow: its device's frames and
/// drops, connections open, accepted and refused, and retransmissions (loss on the path).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// The device's frames, bytes and drops (as of the runner's last pass).
    pub net: morgana::NetStats,
    /// TCP connections open now (handshake done, not yet closed), accepted or connected.
    pub open: u64,
    /// Connections accepted from listeners since start.
    pub accepted: u64,
    /// New connections turned away for lack of memory: a listener slot left without a socket
    /// (its SYNs wait, clients retry), or `connect` failing with `NoResources`.
    pub refused: u64,
    /// Retransmissions started since start (timeouts, loss probes, fast retransmits).
    pub retransmits: u64,
}

impl Inner {
    /// Ask the runner to poll the interface soon (socket buffers changed).
    pub fn wake_runner(&self) {
        if let Some(w) = &self.runner
            && !self.runner_woken.replace(true)
        {
            w.wake_by_ref();
        }
    }

    /// A TCP socket with the configured buffers and timers; `None` when the heap cannot give
    /// its buffers and keep [`Config::memory_reserve`] bytes free beside them.
    pub fn new_tcp_socket(&self) -> Option<tcp::Socket<'static>> {
        let c = &self.config;
        // Held while the buffers are taken: all three must fit at once.
        let reserve = zeroed(c.memory_reserve)?;
        let (rx, tx) = (zeroed(c.tcp_rx_buffer.max(1))?, zeroed(c.tcp_tx_buffer.max(1))?);
        drop(reserve);
        let mut s = tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
        // The handshake's timeout; `track` switches to the connection's once established.
        s.set_timeout(Some(smol_duration(c.tcp_connect_timeout)));
        s.set_nagle_enabled(c.tcp_nagle);
        s.set_min_rto(smol_duration(c.tcp_min_rto));
        s.set_rx_buffer_limit(c.tcp_buffer_max.max(c.tcp_rx_buffer));
        s.set_congestion_control(c.tcp_congestion.smoltcp());
        Some(s)
    }

    /// A free port for a new socket, `in_use` telling which are taken.
    pub fn ephemeral_port(&mut self, in_use: impl Fn(&Self, u16) -> bool) -> Result<u16, StackError> {
        let span = u16::MAX - EPHEMERAL_FIRST + 1;
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port == u16::MAX { EPHEMERAL_FIRST } else { port + 1 };
            if !in_use(self, port) {
                return Ok(port);
            }
        }
        Err(StackError::NoResources)
    }

    /// Whether a TCP socket (listening or connected) uses local port `port`.
    pub fn tcp_port_in_use(&self, port: u16) -> bool {
        self.listeners.iter().flatten().any(|l| l.port == port)
            || self.sockets.iter().any(|(_, s)| match s {
                smoltcp::socket::Socket::Tcp(t) => {
                    t.local_endpoint().is_some_and(|e| e.port == port)
                        || (t.state() == tcp::State::Listen && t.listen_endpoint().port == port)
                }
                _ => false,
            })
    }

    /// `Ok` if packets to `dst` have a source address and a way out.
    pub fn check_route(&self, dst: IpAddress) -> Result<(), StackError> {
        if dst.is_unspecified() {
            return Err(StackError::InvalidInput);
        }
        let on_link = self.iface.ip_addrs().iter().any(|c| c.contains_addr(&dst));
        let routed = match dst {
            IpAddress::Ipv4(a) => {
                a.is_broadcast()
                    || a.is_multicast()
                    || (self.iface.ipv4_addr().is_some()
                        && self.iface.routes().get_default_ipv4_route().is_some())
            }
            IpAddress::Ipv6(a) => a.is_multicast() || self.iface.routes().get_default_ipv6_route().is_some(),
        };
        if on_link || routed { Ok(()) } else { Err(StackError::NoRoute) }
    }

    /// The DNS socket, made on first use: an idle one would cost every poll a little.
    pub fn dns_socket(&mut self) -> SocketHandle {
        if let Some(h) = self.dns {
            return h;
        }
        let queries: Vec<Option<dns::DnsQuery>> = (0..self.config.dns_queries.max(1)).map(|_| None).collect();
        let h = self.sockets.add(dns::Socket::new(&self.dns_server_list(), queries));
        self.dns = Some(h);
        h
    }
}

/// A handle on a running stack: open connections, listen, bind UDP sockets, resolve names.
/// Cheap to clone; every clone is the same stack.
#[derive(Clone)]
pub struct Stack {
    pub(crate) inner: Rc<RefCell<Inner>>,
}

impl Stack {
    pub(crate) fn borrow(&self) -> RefMut<'_, Inner> {
        self.inner.borrow_mut()
    }

    /// The stack's counters now (a pass over its sockets: for a log line, not a data path).
    pub fn counters(&self) -> Counters {
        let inner = self.borrow();
        let (mut open, mut retransmits) = (0, inner.counted.retransmits_retired);
        for (_, s) in inner.sockets.iter() {
            if let smoltcp::socket::Socket::Tcp(t) = s {
                retransmits += t.retransmits();
                use tcp::State::*;
                open += u64::from(matches!(
                    t.state(),
                    Established | FinWait1 | FinWait2 | CloseWait | Closing | LastAck
                ));
            }
        }
        let c = &inner.counted;
        Counters { net: c.net, open, accepted: c.accepted, refused: c.refused, retransmits }
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        match self.borrow().iface.hardware_addr() {
            HardwareAddress::Ethernet(EthernetAddress(mac)) => mac,
        }
    }

    /// The interface's IPv4 address and prefix length, once it has one.
    pub fn ipv4(&self) -> Option<(Ipv4Addr, u8)> {
        self.borrow().iface.ip_addrs().iter().find_map(|c| match c {
            IpCidr::Ipv4(c) => Some((c.address(), c.prefix_len())),
            IpCidr::Ipv6(_) => None,
        })
    }

    /// The interface's IPv6 addresses (the link-local one first).
    pub fn ipv6(&self) -> Vec<Ipv6Addr> {
        let inner = self.borrow();
        inner
            .iface
            .ip_addrs()
            .iter()
            .filter_map(|c| match c {
                IpCidr::Ipv6(c) => Some(c.address()),
                IpCidr::Ipv4(_) => None,
            })
            .collect()
    }

    /// Sockets the stack holds (connections, listeners' pools, connections still closing, UDP,
    /// DNS, DHCP): for diagnostics and leak checks.
    pub fn sockets_in_use(&self) -> usize {
        self.borrow().sockets.iter().count()
    }

    /// The DNS servers queried: the configured ones, then those DHCP gave.
    pub fn dns_servers(&self) -> Vec<IpAddr> {
        let inner = self.borrow();
        let mut out = inner.config.dns_servers.clone();
        out.extend(inner.learned_dns.iter().map(|&a| IpAddr::V4(a)));
        out
    }
}

/// Build a stack over `net`, reading time from `clock`. The stack does nothing until the
/// [`Runner`] runs.
pub fn new<N: Net, C: Clock>(net: N, clock: C, config: Config) -> (Stack, Runner<N, C>) {
    let caps = device::capabilities(&net);
    let mut mac = net.mac();
    if !EthernetAddress(mac).is_unicast() {
        log::error!("the network device's MAC {:02x?} is not unicast: clearing its multicast bit", mac);
        mac[0] &= !1;
    }
    let now = smol_instant(clock.now());
    let mut iface_config = smoltcp::iface::Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    iface_config.random_seed = config.seed;
    let mut noop = Context::from_waker(Waker::noop());
    let mut net = net;
    let mut adapter = Adapter { net: &mut net, cx: &mut noop, caps: &caps, tx_blocked: false };
    let mut iface = Interface::new(iface_config, &mut adapter, now);
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::Ipv6(Ipv6Cidr::new(link_local(mac), 64)));
        if let Some(c) = config.ipv6 {
            let _ = addrs.push(IpCidr::Ipv6(Ipv6Cidr::new(c.addr, c.prefix)));
        }
    });
    if let Some(gw) = config.ipv6_gateway {
        let _ = iface.routes_mut().add_default_ipv6_route(gw);
    }
    let mut sockets = SocketSet::new(Vec::new());
    let dhcp = (config.ipv4 == Ipv4Mode::Dhcp).then(|| sockets.add(dhcpv4::Socket::new()));
    let span = u64::from(u16::MAX - EPHEMERAL_FIRST) + 1;
    let next_port = EPHEMERAL_FIRST + (config.seed % span) as u16;
    let static_v4 = match config.ipv4 {
        Ipv4Mode::Static { addr, gateway } => Some((Ipv4Cidr::new(addr.addr, addr.prefix), gateway)),
        _ => None,
    };
    let mut inner = Inner {
        iface,
        sockets,
        timers: Timers::new(&config),
        config,
        ip_mtu: caps.max_transmission_unit.saturating_sub(morgana::net::ETHERNET_HEADER_LEN),
        now,
        runner: None,
        runner_woken: Cell::new(false),
        tracked: Vec::new(),
        orphans: Vec::new(),
        listeners: Vec::new(),
        dhcp,
        dns: None,
        config_waiters: Vec::new(),
        learned_dns: Vec::new(),
        lease_asked: now,
        lease_overdue: false,
        next_port,
        link_up: true,
        counted: Counted::default(),
    };
    if let Some((cidr, gw)) = static_v4 {
        inner.set_ipv4(Some(cidr), gw);
    }
    let stack = Stack { inner: Rc::new(RefCell::new(inner)) };
    (stack.clone(), Runner { net, clock, caps, stack })
}

/// Build a stack over `net` and run its [`Runner`] on `platform`: what a target's wiring calls.
/// A zero [`Config::seed`] is replaced by one from the platform's RNG, so that each boot picks
/// fresh initial sequence numbers and ports.
pub fn spawn<P: Platform, N: Net + 'static>(platform: &P, net: N, mut config: Config) -> Stack {
    if config.seed == 0 {
        config.seed = platform.rng().next_u64();
    }
    let (stack, runner) = new(net, platform.clock(), config);
    platform.spawn(async move { runner.run().await });
    stack
}

/// The EUI-64 link-local address of `mac` (RFC 4291 appendix A).
fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let b = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]];
    Ipv6Addr::from(b)
}

/// `n` zero bytes, or `None` when the heap cannot give them.
pub(crate) fn zeroed(n: usize) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, 0);
    Some(v)
}
