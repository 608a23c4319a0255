//! The shared state, the handle apps hold ([`Stack`]) and the task that drives the interface
//! ([`Runner`]).

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{RefCell, RefMut};
use core::convert::Infallible;
use core::future::poll_fn;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::task::{Context, Poll, Waker};

use morgana::net::{LinkState, Net};
use morgana::{Clock, StackError};
use smoltcp::iface::{Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::DeviceCapabilities;
use smoltcp::socket::{dhcpv4, dns, tcp};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Cidr, Ipv6Cidr};

use crate::config::{Config, Ipv4Mode};
use crate::device::{self, Adapter};

/// Frames processed per runner poll before it yields to other tasks (and polls again at once):
/// a flood of frames must not starve the app.
const INGRESS_BUDGET: usize = 64;

/// First port handed out for outgoing connections and unbound sockets (IANA's dynamic range).
const EPHEMERAL_FIRST: u16 = 49152;

pub(crate) fn smol_instant(at: morgana::Instant) -> SmolInstant {
    SmolInstant::from_micros(i64::try_from(at.as_micros()).unwrap_or(i64::MAX))
}

fn morgana_instant(at: SmolInstant) -> morgana::Instant {
    morgana::Instant::from_micros(u64::try_from(at.total_micros()).unwrap_or(0))
}

pub(crate) fn smol_duration(d: morgana::Duration) -> SmolDuration {
    SmolDuration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Keep-alive interval of a socket with data or a FIN unacknowledged.
///
/// smoltcp 0.14 can leave such a socket with no timer running, so it never sends again: a
/// retransmission timeout that finds the peer's window closed (its window update was lost)
/// turns the timer off without starting a zero-window probe, and a fast retransmit with only a
/// FIN outstanding has nothing to resend and turns it off too. A keep-alive probe is the one
/// timer left in that state: it elicits an ACK carrying the peer's window, and, as it carries a
/// byte, re-arms the retransmission timer. So every socket with something outstanding has one.
const OUTSTANDING_KEEP_ALIVE: SmolDuration = SmolDuration::from_secs(5);

fn outstanding_keep_alive(configured: Option<morgana::Duration>) -> SmolDuration {
    configured.map_or(OUTSTANDING_KEEP_ALIVE, |k| smol_duration(k).min(OUTSTANDING_KEEP_ALIVE))
}

/// Send our FIN (see [`OUTSTANDING_KEEP_ALIVE`] for the keep-alive).
pub(crate) fn close(s: &mut tcp::Socket<'_>, keep_alive: Option<morgana::Duration>) {
    s.close();
    s.set_keep_alive(Some(outstanding_keep_alive(keep_alive)));
}

/// Where in a runner poll a TCP connection changed state: it tells a reset (a segment arrived)
/// from a timeout (a timer fired while we were sending).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ingress,
    Egress,
}

/// Whether a socket waits for the peer to acknowledge something (data or our FIN).
fn outstanding(s: &tcp::Socket<'_>) -> bool {
    use tcp::State::*;
    match s.state() {
        Established | CloseWait => s.send_queue() > 0,
        FinWait1 | Closing | LastAck => true,
        _ => false,
    }
}

/// When a socket with something outstanding last made progress.
///
/// smoltcp's own timeout counts from the last segment received, idle or not, so it would kill
/// an idle connection on the next poll after the timeout, and reset instead of closing one
/// closed after such a pause. So established connections use it only with keep-alive (whose
/// answered probes keep that count fresh), and the stack measures stalls itself: a socket
/// with something outstanding whose queues and state do not move for `tcp_timeout` is reset.
#[derive(Clone, Copy)]
struct Progress {
    since: SmolInstant,
    mark: (usize, usize, tcp::State),
}

impl Progress {
    fn new(now: SmolInstant, s: &tcp::Socket<'_>) -> Self {
        Self { since: now, mark: (s.send_queue(), s.recv_queue(), s.state()) }
    }

    /// Note progress; whether `s` has been stuck with something outstanding for `timeout`.
    fn stalled(&mut self, now: SmolInstant, s: &tcp::Socket<'_>, timeout: Option<SmolDuration>) -> bool {
        let mark = (s.send_queue(), s.recv_queue(), s.state());
        if mark != self.mark || !outstanding(s) {
            *self = Self { since: now, mark };
            return false;
        }
        timeout.is_some_and(|t| now >= self.since + t)
    }

    /// When it will have been stuck for `timeout`, if something is outstanding.
    fn deadline(&self, s: &tcp::Socket<'_>, timeout: Option<SmolDuration>) -> Option<SmolInstant> {
        if outstanding(s) { timeout.map(|t| self.since + t) } else { None }
    }
}

/// A TCP socket owned by a live connection (or a connect in progress): its last seen state and
/// why it failed, if it did.
pub(crate) struct Tracked {
    pub handle: SocketHandle,
    state: tcp::State,
    pub error: Option<StackError>,
    /// Whether the socket has the short keep-alive of [`OUTSTANDING_KEEP_ALIVE`].
    probing: bool,
    progress: Progress,
}

/// A dropped connection finishing its close.
struct Orphan {
    handle: SocketHandle,
    /// When it was dropped: FIN-WAIT-2 lasts `close_linger` from here.
    dropped: SmolInstant,
    progress: Progress,
}

/// A listener's pool of sockets in LISTEN.
pub(crate) struct ListenSlot {
    pub port: u16,
    pub pool: Vec<SocketHandle>,
}

/// Everything the stack's handles and its runner share.
pub(crate) struct Inner {
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    pub config: Config,
    /// Largest IP packet the link carries.
    pub ip_mtu: usize,
    /// Last time the runner polled: the clock as socket operations see it.
    pub now: SmolInstant,
    runner: Option<Waker>,
    pub tracked: Vec<Tracked>,
    /// Dropped connections finishing their close.
    orphans: Vec<Orphan>,
    pub listeners: Vec<Option<ListenSlot>>,
    dhcp: Option<SocketHandle>,
    pub dns: Option<SocketHandle>,
    /// Tasks waiting for the addresses to change (DHCP).
    config_waiters: Vec<Waker>,
    /// DNS servers from the DHCP lease.
    learned_dns: Vec<Ipv4Addr>,
    next_port: u16,
    link_up: bool,
}

impl Inner {
    /// Ask the runner to poll the interface soon (socket buffers changed).
    pub fn wake_runner(&self) {
        if let Some(w) = &self.runner {
            w.wake_by_ref();
        }
    }

    /// A TCP socket with the configured buffers and timers.
    pub fn new_tcp_socket(&self) -> tcp::Socket<'static> {
        let c = &self.config;
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; c.tcp_rx_buffer.max(1)]),
            tcp::SocketBuffer::new(vec![0; c.tcp_tx_buffer.max(1)]),
        );
        // The handshake's timeout; `track` switches to the connection's once established.
        s.set_timeout(Some(smol_duration(c.tcp_connect_timeout)));
        s.set_nagle_enabled(c.tcp_nagle);
        s
    }

    /// Follow `handle` as a live connection.
    pub fn track(&mut self, handle: SocketHandle) {
        let s = self.sockets.get::<tcp::Socket>(handle);
        let progress = Progress::new(self.now, s);
        self.tracked.push(Tracked { handle, state: s.state(), error: None, probing: false, progress });
    }

    /// The handshake on `handle` is done: from now on the connection's timers apply (see
    /// [`Progress`] for why smoltcp's timeout stays off without keep-alive).
    pub fn established(&mut self, handle: SocketHandle) {
        let (timeout, keep_alive) = (self.config.tcp_timeout, self.config.tcp_keep_alive);
        let s = self.sockets.get_mut::<tcp::Socket>(handle);
        s.set_timeout(keep_alive.and(timeout).map(smol_duration));
        s.set_keep_alive(keep_alive.map(smol_duration));
    }

    /// The earliest time a stall check is due.
    fn stall_deadline(&self) -> Option<SmolInstant> {
        let timeout = self.config.tcp_timeout.map(smol_duration);
        let tracked = self.tracked.iter().filter_map(|t| {
            let s = self.sockets.get::<tcp::Socket>(t.handle);
            if t.error.is_some() { None } else { t.progress.deadline(s, timeout) }
        });
        let orphans = self.orphans.iter().filter_map(|o| {
            o.progress.deadline(self.sockets.get::<tcp::Socket>(o.handle), Some(self.orphan_timeout()))
        });
        tracked.chain(orphans).min()
    }

    /// How long a dropped connection may make no progress: the connections' timeout, or the
    /// FIN-WAIT-2 linger if there is none (a dropped connection must end some day).
    fn orphan_timeout(&self) -> SmolDuration {
        smol_duration(self.config.tcp_timeout.unwrap_or(self.config.close_linger))
    }

    /// Why the connection on `handle` failed, if it did.
    pub fn error_of(&self, handle: SocketHandle) -> Option<StackError> {
        self.tracked.iter().find(|t| t.handle == handle).and_then(|t| t.error)
    }

    fn observe(&mut self, phase: Phase) {
        let keep_alive = self.config.tcp_keep_alive;
        let timeout = self.config.tcp_timeout.map(smol_duration);
        let now = self.now;
        for t in &mut self.tracked {
            let s = self.sockets.get_mut::<tcp::Socket>(t.handle);
            if phase == Phase::Egress && t.error.is_none() && t.progress.stalled(now, s, timeout) {
                log::debug!("TCP connection to {:?} stalled for {:?}: reset", s.remote_endpoint(), timeout);
                s.abort();
                t.error = Some(StackError::TimedOut);
            }
            let state = s.state();
            if phase == Phase::Egress {
                // After egress, so that what was just queued has been sent and the probe does
                // not go out needlessly beside it.
                let outstanding = outstanding(s);
                if outstanding != t.probing {
                    t.probing = outstanding;
                    let interval = if outstanding {
                        Some(outstanding_keep_alive(keep_alive))
                    } else {
                        keep_alive.map(smol_duration)
                    };
                    s.set_keep_alive(interval);
                }
            }
            if state == t.state {
                continue;
            }
            if state == tcp::State::Closed && t.error.is_none() {
                use tcp::State::*;
                t.error = match (phase, t.state) {
                    // The normal ends of a connection.
                    (_, TimeWait | LastAck | Closing | Closed | Listen) => None,
                    (Phase::Ingress, SynSent) => Some(StackError::ConnectionRefused),
                    (Phase::Ingress, _) => Some(StackError::ConnectionReset),
                    (Phase::Egress, _) => Some(StackError::TimedOut),
                };
            }
            t.state = state;
        }
    }

    /// The connection on `handle` was dropped: close it (reset it if data was left unread, as
    /// Linux does) and let the runner remove it once closed.
    pub fn release_tcp(&mut self, handle: SocketHandle) {
        self.tracked.retain(|t| t.handle != handle);
        let s = self.sockets.get_mut::<tcp::Socket>(handle);
        if s.recv_queue() > 0 {
            s.abort();
        } else {
            close(s, self.config.tcp_keep_alive);
        }
        let progress = Progress::new(self.now, self.sockets.get::<tcp::Socket>(handle));
        self.orphans.push(Orphan { handle, dropped: self.now, progress });
        self.wake_runner();
    }

    /// smoltcp hands a SYN to the first socket that accepts it, and a LISTEN socket accepts any
    /// SYN to its port: a late duplicate of a SYN whose connection already exists can start a
    /// second handshake on the same 4-tuple, whose reset then kills the real connection (Linux
    /// finds the established socket first). Forget such handshakes before they answer.
    fn drop_duplicate_handshakes(&mut self) {
        for li in 0..self.listeners.len() {
            let Some(len) = self.listeners[li].as_ref().map(|l| l.pool.len()) else { continue };
            for pi in 0..len {
                let Some((h, port)) = self.listeners[li].as_ref().map(|l| (l.pool[pi], l.port)) else {
                    continue;
                };
                let s = self.sockets.get::<tcp::Socket>(h);
                if s.state() != tcp::State::SynReceived {
                    continue;
                }
                let tuple = (s.local_endpoint(), s.remote_endpoint());
                let duplicate = self.sockets.iter().any(|(other, o)| {
                    other != h
                        && matches!(o, smoltcp::socket::Socket::Tcp(t)
                            if t.state() != tcp::State::Listen
                                && (t.local_endpoint(), t.remote_endpoint()) == tuple)
                });
                if !duplicate {
                    continue;
                }
                // Removed, not aborted: an abort would send a reset on the shared 4-tuple.
                self.sockets.remove(h);
                let mut fresh = self.new_tcp_socket();
                let _ = fresh.listen(port);
                let fresh = self.sockets.add(fresh);
                if let Some(l) = self.listeners[li].as_mut() {
                    l.pool[pi] = fresh;
                }
            }
        }
    }

    fn reap_orphans(&mut self) {
        let now = self.now;
        let linger = smol_duration(self.config.close_linger);
        let timeout = Some(self.orphan_timeout());
        let sockets = &mut self.sockets;
        self.orphans.retain_mut(|o| {
            let s = sockets.get_mut::<tcp::Socket>(o.handle);
            let done = match s.state() {
                tcp::State::TimeWait => true,
                // Closed and its RST (if any) sent.
                tcp::State::Closed => s.remote_endpoint().is_none(),
                // Data that nobody will read: reset, as Linux does on close. FIN-WAIT-2 (the
                // peer acknowledged our FIN but never sends its own) has no timer of its own.
                _ if s.recv_queue() > 0
                    || (s.state() == tcp::State::FinWait2 && now >= o.dropped + linger)
                    || o.progress.stalled(now, s, timeout) =>
                {
                    s.abort();
                    false
                }
                _ => false,
            };
            if done {
                sockets.remove(o.handle);
            }
            !done
        });
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

    fn set_ipv4(&mut self, cidr: Option<Ipv4Cidr>, gateway: Option<Ipv4Addr>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.retain(|a| !matches!(a, IpCidr::Ipv4(_)));
            if let Some(c) = cidr {
                // Room was made by removing the old IPv4 address.
                let _ = addrs.push(IpCidr::Ipv4(c));
            }
        });
        let routes = self.iface.routes_mut();
        routes.remove_default_ipv4_route();
        if let Some(gw) = gateway {
            let _ = routes.add_default_ipv4_route(gw);
        }
        for w in self.config_waiters.drain(..) {
            w.wake();
        }
    }

    fn dns_server_list(&self) -> Vec<IpAddress> {
        let configured = self.config.dns_servers.iter().map(|&a| IpAddress::from(a));
        configured.chain(self.learned_dns.iter().map(|&a| IpAddress::Ipv4(a))).collect()
    }

    fn set_dns_servers(&mut self, learned: &[Ipv4Addr]) {
        self.learned_dns = learned.to_vec();
        let Some(h) = self.dns else { return };
        let servers = self.dns_server_list();
        self.sockets.get_mut::<dns::Socket>(h).update_servers(&servers);
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

    fn poll_dhcp(&mut self) -> bool {
        let Some(h) = self.dhcp else { return false };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => return false,
            Some(dhcpv4::Event::Deconfigured) => None,
            Some(dhcpv4::Event::Configured(c)) => Some((c.address, c.router, c.dns_servers.clone())),
        };
        match event {
            Some((addr, router, dns)) => {
                log::info!(
                    "DHCP lease: {addr}{}{}",
                    router.map(|r| alloc::format!(" via {r}")).unwrap_or_default(),
                    if dns.is_empty() {
                        alloc::string::String::new()
                    } else {
                        alloc::format!(", DNS {dns:?}")
                    }
                );
                self.set_ipv4(Some(addr), router);
                self.set_dns_servers(&dns);
            }
            None => {
                // smoltcp reports "deconfigured" once at start too, when there is nothing to lose.
                if self.iface.ip_addrs().iter().any(|a| matches!(a, IpCidr::Ipv4(_))) {
                    log::warn!("DHCP lease lost: no IPv4 address until a server answers");
                }
                self.set_ipv4(None, None);
                self.set_dns_servers(&[]);
            }
        }
        true
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

    /// Wait until the interface has an IPv4 address (at once with a static one; after the
    /// first lease with DHCP) and return it.
    pub async fn wait_ipv4(&self) -> Ipv4Addr {
        poll_fn(|cx| match self.ipv4() {
            Some((a, _)) => Poll::Ready(a),
            None => {
                let mut inner = self.borrow();
                if !inner.config_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    inner.config_waiters.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
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

/// The task that drives the interface: run it beside the app (`spawn(runner.run())`). It alone
/// owns the `Net`.
pub struct Runner<N, C> {
    net: N,
    clock: C,
    caps: DeviceCapabilities,
    stack: Stack,
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
        config,
        ip_mtu: caps.max_transmission_unit.saturating_sub(morgana::net::ETHERNET_HEADER_LEN),
        now,
        runner: None,
        tracked: Vec::new(),
        orphans: Vec::new(),
        listeners: Vec::new(),
        dhcp,
        dns: None,
        config_waiters: Vec::new(),
        learned_dns: Vec::new(),
        next_port,
        link_up: true,
    };
    if let Some((cidr, gw)) = static_v4 {
        inner.set_ipv4(Some(cidr), gw);
    }
    let stack = Stack { inner: Rc::new(RefCell::new(inner)) };
    (stack.clone(), Runner { net, clock, caps, stack })
}

/// The EUI-64 link-local address of `mac` (RFC 4291 appendix A).
fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let b = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]];
    Ipv6Addr::from(b)
}

impl<N: Net, C: Clock> Runner<N, C> {
    /// A handle on the stack this runner drives.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The device (e.g. to read its counters).
    pub fn net(&self) -> &N {
        &self.net
    }

    /// Drive the interface forever: receive, transmit, run timers, wake the tasks waiting on
    /// sockets. It sleeps until the device or the next protocol timer wakes it.
    pub async fn run(mut self) -> ! {
        let never: Infallible = poll_fn(|cx| {
            self.poll(cx);
            Poll::Pending
        })
        .await;
        match never {}
    }

    /// One pass: everything that can be done now, then arm the wake-ups.
    pub fn poll(&mut self, cx: &mut Context<'_>) {
        let mut inner = self.stack.borrow();
        let inner = &mut *inner;
        if !inner.runner.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            inner.runner = Some(cx.waker().clone());
        }
        let now = smol_instant(self.clock.now());
        inner.now = now;

        let up = self.net.link_state(cx) == LinkState::Up;
        if up != inner.link_up {
            inner.link_up = up;
            log::info!("link {}", if up { "up" } else { "down" });
            if let (true, Some(h)) = (up, inner.dhcp) {
                inner.sockets.get_mut::<dhcpv4::Socket>(h).reset();
            }
        }

        let mut dev = Adapter { net: &mut self.net, cx, caps: &self.caps, tx_blocked: false };
        let mut budget = INGRESS_BUDGET;
        let mut changed = false;
        while budget > 0 {
            match inner.iface.poll_ingress_single(now, &mut dev, &mut inner.sockets) {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => changed = true,
            }
            budget -= 1;
        }
        if changed {
            inner.observe(Phase::Ingress);
            inner.drop_duplicate_handshakes();
        }
        while inner.iface.poll_egress(now, &mut dev, &mut inner.sockets) == PollResult::SocketStateChanged {}
        let tx_blocked = dev.tx_blocked;
        // A timeout closes a socket without a state-change report, so look every time.
        inner.observe(Phase::Egress);
        let reconfigured = inner.poll_dhcp();
        inner.reap_orphans();

        let waker = cx.waker();
        if budget == 0 || reconfigured {
            // More frames may be queued, or new addresses need a pass: yield, then go on.
            waker.wake_by_ref();
        } else if let Some(at) =
            [inner.iface.poll_at(now, &inner.sockets), inner.stall_deadline()].into_iter().flatten().min()
        {
            if at > now {
                self.clock.wake_at(morgana_instant(at), waker);
            } else if !tx_blocked {
                waker.wake_by_ref();
            }
        }
    }
}
