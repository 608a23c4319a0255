//! The shared state, the handle apps hold ([`Stack`]) and the task that drives the interface
//! ([`Runner`]).

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell, RefMut};
use core::convert::Infallible;
use core::future::poll_fn;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::task::{Context, Poll, Waker};

use morgana::net::{LinkState, Net};
use morgana::rand_core::RngCore;
use morgana::{Clock, Platform, StackError};
use smoltcp::iface::{Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::DeviceCapabilities;
use smoltcp::socket::{dhcpv4, dns, tcp};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Cidr, Ipv6Cidr};

use crate::config::{Config, Ipv4Mode};
use crate::device::{self, Adapter};
use crate::listen::ListenSlot;

/// Frames processed per runner poll before it yields to other tasks (and polls again at once):
/// a flood of frames must not starve the app.
const INGRESS_BUDGET: usize = 64;

/// First port handed out for outgoing connections and unbound sockets (IANA's dynamic range).
const EPHEMERAL_FIRST: u16 = 49152;

/// With DHCP, how long a connect or a name lookup waits for the first lease before it fails
/// (three of smoltcp's 10 s DISCOVER retries).
const LEASE_WAIT: SmolDuration = SmolDuration::from_secs(30);

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

/// Whether a socket in `state` waits for the peer to acknowledge something (data or our FIN).
fn outstanding(s: &tcp::Socket<'_>, state: tcp::State) -> bool {
    use tcp::State::*;
    match state {
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
        let state = s.state();
        self.note(now, (s.send_queue(), s.recv_queue(), state), outstanding(s, state), timeout)
    }

    /// [`Progress::stalled`] with the socket's queues and state (`mark`) already read.
    fn note(
        &mut self,
        now: SmolInstant,
        mark: (usize, usize, tcp::State),
        outstanding: bool,
        timeout: Option<SmolDuration>,
    ) -> bool {
        if mark != self.mark || !outstanding {
            *self = Self { since: now, mark };
            return false;
        }
        timeout.is_some_and(|t| now >= self.since + t)
    }

    /// When it will have been stuck for `timeout`, if something is `outstanding`.
    fn deadline(&self, outstanding: bool, timeout: Option<SmolDuration>) -> Option<SmolInstant> {
        if outstanding { timeout.map(|t| self.since + t) } else { None }
    }
}

/// `s` made no progress for `timeout` with something outstanding: reset it.
#[cold]
#[inline(never)]
fn stall(s: &mut tcp::Socket<'_>, t: &mut Tracked, timeout: Option<SmolDuration>) {
    log::debug!("TCP connection to {:?} stalled for {:?}: reset", s.remote_endpoint(), timeout);
    s.abort();
    t.error = Some(StackError::TimedOut);
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
    /// `recv_total` and the bytes the app had read when the receive buffer last grew (or was
    /// last found big enough).
    rx_epoch: (u64, u64),
    /// The app found the send buffer full since the runner last looked.
    tx_full: bool,
}

impl Tracked {
    /// The socket went from `self.state` to `state`; `phase` tells a reset or a refusal (a
    /// segment closed it) from a timeout (a timer did).
    fn changed(&mut self, state: tcp::State, phase: Phase) {
        if state == tcp::State::Closed && self.error.is_none() {
            use tcp::State::*;
            self.error = match (phase, self.state) {
                // The normal ends of a connection.
                (_, TimeWait | LastAck | Closing | Closed | Listen) => None,
                (Phase::Ingress, SynSent) => Some(StackError::ConnectionRefused),
                (Phase::Ingress, _) => Some(StackError::ConnectionReset),
                (Phase::Egress, _) => Some(StackError::TimedOut),
            };
        }
        self.state = state;
    }
}

/// The configured TCP timers, converted to smoltcp's units once rather than on every poll.
#[derive(Clone, Copy)]
struct Timers {
    /// A connection with something outstanding and no progress for this long is reset.
    timeout: Option<SmolDuration>,
    /// The configured keep-alive.
    keep_alive: Option<SmolDuration>,
    /// The keep-alive of a socket with something outstanding (see [`OUTSTANDING_KEEP_ALIVE`]).
    probe: SmolDuration,
    /// FIN-WAIT-2 of a dropped connection lasts this long.
    linger: SmolDuration,
    /// How long a dropped connection may make no progress.
    orphan_timeout: SmolDuration,
}

impl Timers {
    fn new(c: &Config) -> Self {
        Self {
            timeout: c.tcp_timeout.map(smol_duration),
            keep_alive: c.tcp_keep_alive.map(smol_duration),
            probe: outstanding_keep_alive(c.tcp_keep_alive),
            linger: smol_duration(c.close_linger),
            // How long a dropped connection may make no progress: the connections' timeout,
            // or the FIN-WAIT-2 linger if there is none (a dropped connection must end some day).
            orphan_timeout: smol_duration(c.tcp_timeout.unwrap_or(c.close_linger)),
        }
    }
}

/// A dropped connection finishing its close.
struct Orphan {
    handle: SocketHandle,
    /// When it was dropped: FIN-WAIT-2 lasts `close_linger` from here.
    dropped: SmolInstant,
    progress: Progress,
}

/// Everything the stack's handles and its runner share.
pub(crate) struct Inner {
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    pub config: Config,
    /// `config`'s TCP timers, converted.
    timers: Timers,
    /// Largest IP packet the link carries.
    pub ip_mtu: usize,
    /// Last time the runner polled: the clock as socket operations see it.
    pub now: SmolInstant,
    runner: Option<Waker>,
    /// The runner was woken and has not polled since: further wakes are redundant.
    runner_woken: Cell<bool>,
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
    /// With DHCP and no lease: since when we have been asking.
    lease_asked: SmolInstant,
    /// With DHCP: no lease came within [`LEASE_WAIT`] of asking, so waiters give up.
    lease_overdue: bool,
    next_port: u16,
    link_up: bool,
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

    /// Follow `handle` as a live connection.
    pub fn track(&mut self, handle: SocketHandle) {
        let s = self.sockets.get::<tcp::Socket>(handle);
        let progress = Progress::new(self.now, s);
        let rx_epoch = (s.recv_total(), s.recv_total() - s.recv_queue() as u64);
        self.tracked.push(Tracked {
            handle,
            state: s.state(),
            error: None,
            probing: false,
            progress,
            rx_epoch,
            tx_full: false,
        });
    }

    /// The handshake on `handle` is done: from now on the connection's timers apply (see
    /// [`Progress`] for why smoltcp's timeout stays off without keep-alive).
    pub fn established(&mut self, handle: SocketHandle) {
        let (timeout, keep_alive) = (self.config.tcp_timeout, self.config.tcp_keep_alive);
        let s = self.sockets.get_mut::<tcp::Socket>(handle);
        s.set_timeout(keep_alive.and(timeout).map(smol_duration));
        s.set_keep_alive(keep_alive.map(smol_duration));
    }

    /// The app found the send buffer of `handle` full: a hint that it may need to grow.
    pub fn send_buffer_full(&mut self, handle: SocketHandle) {
        if let Some(t) = self.tracked.iter_mut().find(|t| t.handle == handle) {
            t.tx_full = true;
        }
    }

    /// Why the connection on `handle` failed, if it did.
    pub fn error_of(&self, handle: SocketHandle) -> Option<StackError> {
        self.tracked.iter().find(|t| t.handle == handle).and_then(|t| t.error)
    }

    /// After ingress: note state changes (a close here came from a segment: a reset or a
    /// refusal).
    fn observe_ingress(&mut self) {
        for t in &mut self.tracked {
            let state = self.sockets.get::<tcp::Socket>(t.handle).state();
            if state != t.state {
                t.changed(state, Phase::Ingress);
            }
        }
    }

    /// After egress (so that what was just queued has been sent, and a probe does not go out
    /// needlessly beside it): reset connections stalled for the timeout, give those with
    /// something outstanding the short keep-alive, note state changes (a close here is a
    /// timeout). Returns when the next stall check is due.
    fn observe_egress(&mut self) -> Option<SmolInstant> {
        let Timers { timeout, keep_alive, probe, .. } = self.timers;
        let now = self.now;
        let mut next: Option<SmolInstant> = None;
        for t in &mut self.tracked {
            let s = self.sockets.get_mut::<tcp::Socket>(t.handle);
            let mut state = s.state();
            let mut outstanding = outstanding(s, state);
            if t.error.is_none()
                && t.progress.note(now, (s.send_queue(), s.recv_queue(), state), outstanding, timeout)
            {
                stall(s, t, timeout);
                state = s.state();
                outstanding = self::outstanding(s, state);
            }
            if outstanding != t.probing {
                t.probing = outstanding;
                s.set_keep_alive(if outstanding { Some(probe) } else { keep_alive });
            }
            if matches!(state, tcp::State::Established | tcp::State::CloseWait) {
                tune_buffers(s, t, &self.config, now);
            }
            if state != t.state {
                t.changed(state, Phase::Egress);
            }
            if t.error.is_none()
                && let Some(at) = t.progress.deadline(outstanding, timeout)
            {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
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

    /// Remove dropped connections that have finished closing; returns when the next stall check
    /// of those left is due.
    #[inline(never)]
    fn reap_orphans(&mut self) -> Option<SmolInstant> {
        let now = self.now;
        let Timers { linger, orphan_timeout, .. } = self.timers;
        let timeout = Some(orphan_timeout);
        let sockets = &mut self.sockets;
        let mut next: Option<SmolInstant> = None;
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
            } else if let Some(at) = o.progress.deadline(outstanding(s, s.state()), timeout) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
            !done
        });
        next
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

    /// With DHCP and no lease yet: when waiting for one stops (see [`LEASE_WAIT`]).
    fn lease_deadline(&self) -> Option<SmolInstant> {
        let waiting = self.dhcp.is_some() && self.iface.ipv4_addr().is_none() && !self.lease_overdue;
        waiting.then(|| self.lease_asked + LEASE_WAIT)
    }

    fn set_ipv4(&mut self, cidr: Option<Ipv4Cidr>, gateway: Option<Ipv4Addr>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.retain(|a| !matches!(a, IpCidr::Ipv4(_)));
            if let Some(c) = cidr {
                // Room was made by removing the old IPv4 address. First, as smoltcp looks
                // addresses up in order for every packet, and most traffic is IPv4.
                let _ = addrs.insert(0, IpCidr::Ipv4(c));
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

    /// The link went up or down (with DHCP, a link that comes up asks for a lease afresh).
    #[cold]
    #[inline(never)]
    fn link_changed(&mut self, up: bool) {
        self.link_up = up;
        log::info!("link {}", if up { "up" } else { "down" });
        if let (true, Some(h)) = (up, self.dhcp) {
            self.sockets.get_mut::<dhcpv4::Socket>(h).reset();
            (self.lease_asked, self.lease_overdue) = (self.now, false);
        }
    }

    /// With DHCP: take the client's news, and give up waiting for a first lease once it is
    /// overdue. Whether the addresses changed.
    #[inline(never)]
    fn poll_lease(&mut self) -> bool {
        let reconfigured = self.poll_dhcp();
        if self.lease_deadline().is_some_and(|at| self.now >= at) {
            self.lease_overdue = true;
            log::warn!(
                "no DHCP lease after {} s: is a DHCP server on the link? (still asking)",
                LEASE_WAIT.secs()
            );
            for w in self.config_waiters.drain(..) {
                w.wake();
            }
        }
        reconfigured
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
            // smoltcp also reports this at start, before any lease.
            None if self.iface.ipv4_addr().is_none() => return false,
            None => {
                log::warn!("DHCP lease lost: no IPv4 address until a server answers");
                (self.lease_asked, self.lease_overdue) = (self.now, false);
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

    /// With DHCP, wait for the first lease (at once without DHCP or with a lease); `TimedOut`
    /// if none came within 30 s of asking. Connections and lookups wait here, so an app may
    /// use the stack as soon as it has it, as with a static address.
    pub(crate) async fn wait_lease(&self) -> Result<(), StackError> {
        poll_fn(|cx| {
            let mut inner = self.borrow();
            if inner.dhcp.is_none() || inner.iface.ipv4_addr().is_some() {
                Poll::Ready(Ok(()))
            } else if inner.lease_overdue {
                Poll::Ready(Err(StackError::TimedOut))
            } else {
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
        // From here on, what the app does must wake the runner again.
        inner.runner_woken.set(false);
        let now = smol_instant(self.clock.now());
        inner.now = now;

        let up = self.net.link_state(cx) == LinkState::Up;
        if up != inner.link_up {
            inner.link_changed(up);
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
            inner.observe_ingress();
        }
        while inner.iface.poll_egress(now, &mut dev, &mut inner.sockets) == PollResult::SocketStateChanged {}
        let tx_blocked = dev.tx_blocked;
        // A timeout closes a socket without a state-change report, so look every time.
        let stall = inner.observe_egress();
        let reconfigured = inner.dhcp.is_some() && inner.poll_lease();
        let orphans = if inner.orphans.is_empty() { None } else { inner.reap_orphans() };
        let relisten = if inner.listeners.is_empty() { None } else { inner.tend_listeners() };

        let waker = cx.waker();
        if budget == 0 || reconfigured {
            // More frames may be queued, or new addresses need a pass: yield, then go on.
            inner.wake_runner();
        } else if let Some(at) =
            [inner.iface.poll_at(now, &inner.sockets), stall, orphans, relisten, inner.lease_deadline()]
                .into_iter()
                .flatten()
                .min()
        {
            if at > now {
                self.clock.wake_at(morgana_instant(at), waker);
            } else if !tx_blocked {
                inner.wake_runner();
            }
        }
    }
}

/// How long a grown send buffer must stay empty and the connection quiet before it shrinks.
const TX_SHRINK_AFTER: SmolDuration = SmolDuration::from_secs(1);

/// Grow the buffers of a connection that has outgrown them (see [`Config::tcp_buffer_max`]),
/// and shrink an empty send buffer that grew back to its initial size.
fn tune_buffers(s: &mut tcp::Socket<'_>, t: &mut Tracked, c: &Config, now: SmolInstant) {
    let max = c.tcp_buffer_max;
    let cap = s.recv_capacity();
    let total = s.recv_total();
    if cap < max && total - t.rx_epoch.0 >= cap as u64 {
        // A buffer's worth arrived since the last look: if the app read at least half of it
        // (it keeps up), a larger window may carry more.
        let read = total - s.recv_queue() as u64;
        if read - t.rx_epoch.1 >= (cap / 2) as u64
            && let Some(buf) = spare(c, (2 * cap).min(max))
        {
            s.grow_rx_buffer(buf);
        }
        t.rx_epoch = (total, read);
    }
    let cap = s.send_capacity();
    let queued = s.send_queue();
    let full = core::mem::take(&mut t.tx_full);
    if cap < max && full && s.congestion_window() >= cap / 2 {
        if let Some(buf) = spare(c, (2 * cap).min(max)) {
            s.grow_tx_buffer(buf);
        }
    } else if queued == 0 && cap > c.tcp_tx_buffer && now >= t.progress.since + TX_SHRINK_AFTER {
        // Empty and quiet for a while: back to the initial size.
        if let Some(buf) = zeroed(c.tcp_tx_buffer.max(1)) {
            s.shrink_tx_buffer(buf);
        }
    }
}

/// `n` zero bytes for a buffer, if the heap can give them and keep the reserve free.
fn spare(c: &Config, n: usize) -> Option<Vec<u8>> {
    let reserve = zeroed(c.memory_reserve)?;
    let buf = zeroed(n)?;
    drop(reserve);
    Some(buf)
}

/// `n` zero bytes, or `None` when the heap cannot give them.
fn zeroed(n: usize) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, 0);
    Some(v)
}
