//! Listening: a pool of sockets in LISTEN per port (smoltcp has no accept queue), refilled as
//! connections are accepted, and kept listening whatever happens to a handshake.
//!
//! Three defences keep a port open to legitimate clients, whatever arrives:
//!
//! - **SYN cookies.** Under a SYN flood the pool's sockets fill with half-open handshakes that
//!   never complete. The last socket of each pool answers by SYN cookie (RFC 4987, in our
//!   smoltcp fork): smoltcp hands a SYN to it only when no other socket of the pool listens,
//!   and it keeps no state for the SYNs it answers, so a client still gets through, however
//!   many spoofed SYNs arrive. When a returning cookie makes it a connection, the runner moves
//!   that connection to the listener's ready queue and gives the slot a fresh socket before
//!   the next frame, so the cookies of a burst all complete at once (only a peer that answered
//!   a cookie costs memory, and the queue holds at most a pool's worth).
//! - **Sockets always listen again.** A pool socket whose handshake failed listens again once
//!   its reset is out, or after [`RESET_WAIT`] if the reset cannot leave (a spoofed source
//!   never answers ARP).
//! - **At the memory limit, SYNs wait.** A connection whose replacement socket cannot be
//!   allocated (the heap is short of [`crate::Config::memory_reserve`] beside its buffers) is
//!   still handed to the app, since its own buffers exist; its slot stays empty until memory is
//!   back. When every slot is empty, a buffer-less guard socket, last in smoltcp's order, drops
//!   the SYNs (no reset): clients retry, and get in once connections close. No connection is
//!   ever accepted and then reset.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::net::{IpAddr, Ipv6Addr, SocketAddr};
use core::task::{Poll, Waker};

use morgana::stack::{StackError, TcpListener};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};

use crate::stack::{Inner, Stack};
use crate::tcp::Connection;

/// How long a pool socket whose handshake failed may wait for its reset to go out before it
/// listens again without sending it.
pub(crate) const RESET_WAIT: SmolDuration = SmolDuration::from_secs(1);

/// How long the handshake of a pool socket may take from the peer's SYN (smoltcp resends the
/// SYN|ACK after 1, 3 and 7 s). Shorter than an active open's timeout: a spoofed SYN holds a
/// socket of the pool until then, and a client whose handshake stalls retries its SYN.
const HANDSHAKE_TIMEOUT: SmolDuration = SmolDuration::from_secs(15);

/// Connections accepted by SYN cookie are logged at most once per interval, with a count.
const LOG_INTERVAL: SmolDuration = SmolDuration::from_secs(10);

/// How often empty slots (no memory for their socket) try to allocate again.
const REFILL_INTERVAL: SmolDuration = SmolDuration::from_millis(250);

/// A listener's pool of sockets in LISTEN.
pub(crate) struct ListenSlot {
    pub port: u16,
    /// `None`: its socket went to a connection and there was no memory for a new one.
    pub pool: Vec<Option<SocketHandle>>,
    /// Connections by SYN cookie taken out of the cookie slot (which listens again at once),
    /// oldest first, waiting for `accept`: at most a pool's worth.
    ready: VecDeque<SocketHandle>,
    /// Drops SYNs when no socket of the pool listens.
    guard: SocketHandle,
    /// Per pool socket: since when it has waited for its reset to go out.
    resetting: Vec<Option<SmolInstant>>,
    /// Connections accepted by SYN cookie: when that was last logged, and how many since.
    cookie_log: Option<(SmolInstant, u32)>,
    /// Since when some slots have been empty, and when they last tried to allocate.
    short: Option<(SmolInstant, SmolInstant)>,
    /// The task waiting in `accept`, woken when a slot gets a socket again.
    acceptor: Option<Waker>,
}

/// A pool socket: the configured buffers, listening on `port`, by cookie if `cookies`.
fn pool_socket(inner: &Inner, port: u16, cookies: bool) -> Result<tcp::Socket<'static>, StackError> {
    let mut s = inner.new_tcp_socket().ok_or(StackError::NoResources)?;
    s.set_timeout(Some(HANDSHAKE_TIMEOUT));
    s.set_syn_cookies(cookies);
    s.listen(port).map_err(|_| StackError::InvalidInput)?;
    Ok(s)
}

/// Whether slot `i` of a pool of `n` answers by SYN cookie: the last one, if there are several
/// (a connection by cookie has no window scaling, and a pool of one has nothing to protect).
fn cookie_slot(i: usize, n: usize) -> bool {
    n > 1 && i == n - 1
}

impl Inner {
    /// Move the connections that returning SYN cookies made of cookie slots to their listeners'
    /// ready queues, giving each slot a fresh socket, so that the next cookie of a burst finds a
    /// socket listening (otherwise its ACK would be dropped and wait for the client to resend).
    /// Called by the runner after each frame that changed a socket's state.
    pub(crate) fn take_cookie_connections(&mut self) {
        for li in 0..self.listeners.len() {
            let Some(slot) = self.listeners[li].as_ref() else { continue };
            let (port, n) = (slot.port, slot.pool.len());
            let Some(h) = slot.pool.last().copied().flatten() else { continue };
            let taken =
                matches!(self.sockets.get::<tcp::Socket>(h).state(), State::Established | State::CloseWait);
            if !cookie_slot(n - 1, n) || !taken || slot.ready.len() >= n {
                continue;
            }
            // Short of memory, the connection stays in its slot for `accept`, which notes it.
            let Ok(fresh) = pool_socket(self, port, true) else { continue };
            let fresh = self.sockets.add(fresh);
            let Some(slot) = self.listeners[li].as_mut() else { continue };
            slot.pool[n - 1] = Some(fresh);
            slot.resetting[n - 1] = None;
            slot.ready.push_back(h);
            if let Some(w) = &slot.acceptor {
                w.wake_by_ref();
            }
        }
    }

    /// Put pool sockets whose handshake failed back to listening, and refill empty slots when
    /// memory allows; returns when the next of these is due. Called by the runner after egress
    /// (when the resets had their chance to go out).
    pub(crate) fn tend_listeners(&mut self) -> Option<SmolInstant> {
        let now = self.now;
        let mut next: Option<SmolInstant> = None;
        let mut due = |at: SmolInstant| next = Some(next.map_or(at, |n: SmolInstant| n.min(at)));
        for li in 0..self.listeners.len() {
            let Some(slot) = self.listeners[li].as_mut() else { continue };
            let mut listening = 0;
            for (i, h) in slot.pool.iter().enumerate() {
                let Some(h) = *h else { continue };
                let s = self.sockets.get_mut::<tcp::Socket>(h);
                match s.state() {
                    State::Listen => listening += 1,
                    State::Closed if s.remote_endpoint().is_some() => {
                        // Aborted or timed out: its reset goes out first, if it can.
                        let since = *slot.resetting[i].get_or_insert(now);
                        if now < since + RESET_WAIT {
                            due(since + RESET_WAIT);
                            continue;
                        }
                        log::debug!(
                            "port {}: a reset could not be sent in {RESET_WAIT}: listening again",
                            slot.port
                        );
                        slot.resetting[i] = None;
                        let _ = s.listen(slot.port);
                        listening += 1;
                    }
                    State::Closed | State::TimeWait => {
                        // Reset (or closed) before anyone accepted it.
                        slot.resetting[i] = None;
                        let _ = s.listen(slot.port);
                        listening += 1;
                    }
                    _ => {}
                }
            }
            if let Some((at, n)) = slot.cookie_log {
                if now >= at + LOG_INTERVAL {
                    if n > 0 {
                        log::warn!(
                            "port {}: {n} more connections accepted by SYN cookie in {}",
                            slot.port,
                            now - at
                        );
                        slot.cookie_log = Some((now, 0));
                    } else if listening == slot.pool.len() {
                        slot.cookie_log = None;
                        log::info!("port {}: handshake slots free again", slot.port);
                    } else {
                        // Nothing to report yet: look again an interval from now (not at once,
                        // which would keep the runner spinning).
                        slot.cookie_log = Some((now, 0));
                    }
                }
                if slot.cookie_log.is_some() {
                    due(slot.cookie_log.map_or(now, |(at, _)| at) + LOG_INTERVAL);
                }
            }
            if let Some((since, tried)) = slot.short {
                if now < tried + REFILL_INTERVAL {
                    due(tried + REFILL_INTERVAL);
                } else if let Some(at) = self.refill(li, since) {
                    due(at);
                }
            }
        }
        next
    }

    /// Give the empty slots of listener `li` new sockets, as far as memory allows; when some
    /// stay empty, when to try again.
    fn refill(&mut self, li: usize, since: SmolInstant) -> Option<SmolInstant> {
        let (port, n) = self.listeners[li].as_ref().map(|l| (l.port, l.pool.len()))?;
        for i in 0..n {
            if self.listeners[li].as_ref().is_some_and(|l| l.pool[i].is_some()) {
                continue;
            }
            let Ok(s) = pool_socket(self, port, cookie_slot(i, n)) else {
                let now = self.now;
                let slot = self.listeners[li].as_mut()?;
                slot.short = Some((since, now));
                return Some(now + REFILL_INTERVAL);
            };
            let h = self.sockets.add(s);
            let slot = self.listeners[li].as_mut()?;
            slot.pool[i] = Some(h);
            slot.resetting[i] = None;
        }
        let waited = self.now - since;
        let slot = self.listeners[li].as_mut()?;
        slot.short = None;
        if let Some(w) = slot.acceptor.take() {
            w.wake();
        }
        log::info!("port {port}: memory available again after {waited}: listening on every slot");
        None
    }
}

/// A listening socket: a pool of sockets in LISTEN on one port, refilled as connections are
/// accepted. Dropping it resets connections not yet accepted.
///
/// It keeps the port open to legitimate clients whatever arrives: when spoofed SYNs hold every
/// socket of the pool half-open, its last socket answers by SYN cookie; a socket whose
/// handshake failed listens again even if its reset cannot be sent; and when memory is short
/// for new connections, SYNs are dropped (clients retry) rather than accepted and reset.
pub struct Listener {
    stack: Stack,
    id: usize,
    port: u16,
}

impl Listener {
    /// Listen on `port` (0: an ephemeral one) with a pool of `backlog` sockets, clamped to
    /// [`crate::Config::max_backlog`].
    pub(crate) fn open(stack: &Stack, port: u16, backlog: usize) -> Result<Self, StackError> {
        let mut guard = stack.borrow();
        let inner = &mut *guard;
        let port = match port {
            0 => inner.ephemeral_port(|i, p| i.tcp_port_in_use(p))?,
            p if inner.listeners.iter().flatten().any(|l| l.port == p) => return Err(StackError::AddrInUse),
            p => p,
        };
        let n = backlog.clamp(1, inner.config.max_backlog.max(1));
        let mut pool = Vec::with_capacity(n);
        for i in 0..n {
            match pool_socket(inner, port, cookie_slot(i, n)) {
                Ok(s) => pool.push(Some(inner.sockets.add(s))),
                Err(e) => {
                    for h in pool.into_iter().flatten() {
                        inner.sockets.remove(h);
                    }
                    return Err(e);
                }
            }
        }
        let mut dropper =
            tcp::Socket::new(tcp::SocketBuffer::new(Vec::new()), tcp::SocketBuffer::new(Vec::new()));
        dropper.set_syn_drop(true);
        dropper.listen(port).map_err(|_| StackError::InvalidInput)?;
        let slot = ListenSlot {
            port,
            resetting: alloc::vec![None; n],
            pool,
            ready: VecDeque::new(),
            guard: inner.sockets.add(dropper),
            cookie_log: None,
            short: None,
            acceptor: None,
        };
        let id = match inner.listeners.iter().position(Option::is_none) {
            Some(i) => {
                inner.listeners[i] = Some(slot);
                i
            }
            None => {
                inner.listeners.push(Some(slot));
                inner.listeners.len() - 1
            }
        };
        Ok(Listener { stack: stack.clone(), id, port })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut inner = self.stack.borrow();
        let Some(slot) = inner.listeners.get_mut(self.id).and_then(Option::take) else { return };
        inner.sockets.remove(slot.guard);
        for h in slot.ready {
            inner.sockets.get_mut::<tcp::Socket>(h).abort();
            inner.release_tcp(h);
        }
        for h in slot.pool.into_iter().flatten() {
            if inner.sockets.get::<tcp::Socket>(h).state() == State::Listen {
                inner.sockets.remove(h);
            } else {
                // Handshaking or established but never accepted: reset, then reap.
                inner.sockets.get_mut::<tcp::Socket>(h).abort();
                inner.release_tcp(h);
            }
        }
    }
}

const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);

impl TcpListener for Listener {
    type Connection = Connection;

    async fn accept(&mut self) -> Result<(Connection, SocketAddr), StackError> {
        let (handle, remote) = poll_fn(|cx| {
            let mut guard = self.stack.borrow();
            let inner = &mut *guard;
            let Some(slot) = inner.listeners.get_mut(self.id).and_then(Option::as_mut) else {
                return Poll::Ready(Err(StackError::NotConnected));
            };
            if !slot.acceptor.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                slot.acceptor = Some(cx.waker().clone());
            }
            while let Some(h) = inner.listeners[self.id].as_mut().and_then(|l| l.ready.pop_front()) {
                let s = inner.sockets.get::<tcp::Socket>(h);
                if !matches!(s.state(), State::Established | State::CloseWait) {
                    // Reset before anyone accepted it.
                    inner.release_tcp(h);
                    continue;
                }
                let remote = s.remote_endpoint().map(SocketAddr::from).unwrap_or(UNSPECIFIED);
                inner.counted.accepted += 1;
                if let Some(slot) = inner.listeners[self.id].as_mut() {
                    note_cookie(slot, inner.now);
                }
                inner.track(h);
                inner.established(h);
                inner.wake_runner();
                return Poll::Ready(Ok((h, remote)));
            }
            let Some(slot) = inner.listeners.get_mut(self.id).and_then(Option::as_mut) else {
                return Poll::Ready(Err(StackError::NotConnected));
            };
            let pool_len = slot.pool.len();
            for i in 0..pool_len {
                let Some(h) = inner.listeners[self.id].as_ref().and_then(|s| s.pool[i]) else { continue };
                let s = inner.sockets.get_mut::<tcp::Socket>(h);
                match s.state() {
                    // The runner puts closed ones back to listening (`tend_listeners`), which
                    // wakes the waker registered here.
                    State::Listen | State::SynReceived | State::Closed | State::TimeWait => {
                        s.register_recv_waker(cx.waker());
                    }
                    _ => {
                        let remote = s.remote_endpoint().map(SocketAddr::from).unwrap_or(UNSPECIFIED);
                        let cookies = s.syn_cookies();
                        let fresh = match pool_socket(inner, self.port, cookies) {
                            Ok(fresh) => Some(inner.sockets.add(fresh)),
                            Err(StackError::NoResources) => None,
                            Err(e) => return Poll::Ready(Err(e)),
                        };
                        let now = inner.now;
                        let Some(slot) = inner.listeners[self.id].as_mut() else { break };
                        slot.pool[i] = fresh;
                        slot.resetting[i] = None;
                        inner.counted.accepted += 1;
                        inner.counted.refused += u64::from(fresh.is_none());
                        if fresh.is_none() && slot.short.is_none() {
                            // The connection is served (its buffers exist); its slot waits.
                            slot.short = Some((now, now));
                            log::warn!(
                                "low on memory: port {} takes no new connections until some close (their SYNs wait)",
                                self.port
                            );
                        }
                        if cookies {
                            note_cookie(slot, now);
                        }
                        inner.track(h);
                        inner.established(h);
                        inner.wake_runner();
                        return Poll::Ready(Ok((h, remote)));
                    }
                }
            }
            Poll::Pending
        })
        .await?;
        Ok((Connection::new(self.stack.clone(), handle), remote))
    }

    fn local_addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), self.port)
    }
}

/// A connection by SYN cookie was accepted on `slot`: counted for the log, and the first of a
/// burst logged.
fn note_cookie(slot: &mut ListenSlot, now: SmolInstant) {
    match &mut slot.cookie_log {
        Some((_, n)) => *n += 1,
        None => {
            slot.cookie_log = Some((now, 0));
            log::warn!(
                "port {}: every handshake slot was taken (a burst of connections, or a SYN flood): accepting by SYN cookie",
                slot.port
            );
        }
    }
}
