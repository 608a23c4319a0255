//! Listening: a pool of sockets in LISTEN per port (smoltcp has no accept queue), refilled as
//! connections are accepted, and kept listening whatever happens to a handshake.
//!
//! Under a SYN flood the pool's sockets fill with half-open handshakes that never complete.
//! One socket of each pool therefore answers by SYN cookie (RFC 4987, in our smoltcp fork):
//! smoltcp hands a SYN to it only when no other socket of the pool is listening, and it keeps
//! no state for the SYNs it answers, so a legitimate client still gets through, however many
//! spoofed SYNs arrive. A pool socket whose handshake failed listens again once its reset is
//! out, or after [`RESET_WAIT`] if the reset cannot leave (the peer never answers ARP, as
//! spoofed sources do not): no socket is ever left neither listening nor reusable.

use alloc::vec::Vec;
use core::future::poll_fn;
use core::net::{IpAddr, Ipv6Addr, SocketAddr};
use core::task::Poll;

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

/// A listener's pool of sockets in LISTEN.
pub(crate) struct ListenSlot {
    pub port: u16,
    pub pool: Vec<SocketHandle>,
    /// Per pool socket: since when it has waited for its reset to go out.
    resetting: Vec<Option<SmolInstant>>,
    /// A connection came by SYN cookie since every socket of the pool last listened (logged
    /// once per episode).
    flooded: bool,
}

/// A pool socket: the configured buffers, listening on `port`, by cookie if `cookies`.
fn pool_socket(inner: &Inner, port: u16, cookies: bool) -> Result<tcp::Socket<'static>, StackError> {
    let mut s = inner.new_tcp_socket().ok_or(StackError::NoResources)?;
    s.set_timeout(Some(HANDSHAKE_TIMEOUT));
    s.set_syn_cookies(cookies);
    s.listen(port).map_err(|_| StackError::InvalidInput)?;
    Ok(s)
}

impl Inner {
    /// Put pool sockets whose handshake failed back to listening; returns when the next one is
    /// due. Called by the runner after egress (when the resets had their chance to go out).
    pub(crate) fn tend_listeners(&mut self) -> Option<SmolInstant> {
        let now = self.now;
        let mut next: Option<SmolInstant> = None;
        for slot in self.listeners.iter_mut().flatten() {
            let mut listening = 0;
            for (i, &h) in slot.pool.iter().enumerate() {
                let s = self.sockets.get_mut::<tcp::Socket>(h);
                match s.state() {
                    State::Listen => listening += 1,
                    State::Closed if s.remote_endpoint().is_some() => {
                        // Aborted or timed out: its reset goes out first, if it can.
                        let since = *slot.resetting[i].get_or_insert(now);
                        if now < since + RESET_WAIT {
                            next = Some(next.map_or(since + RESET_WAIT, |n| n.min(since + RESET_WAIT)));
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
            if slot.flooded && listening == slot.pool.len() {
                slot.flooded = false;
                log::info!("port {}: handshake slots free again", slot.port);
            }
        }
        next
    }
}

/// A listening socket: a pool of sockets in LISTEN on one port, refilled as connections are
/// accepted. Dropping it resets connections not yet accepted.
pub struct Listener {
    stack: Stack,
    id: usize,
    port: u16,
}

impl Listener {
    /// Listen on `port` (0: an ephemeral one) with a pool of `backlog` sockets, clamped to
    /// [`crate::Config::max_backlog`]; the last of them answers by SYN cookie.
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
            // With a pool of one, that socket is an ordinary one: a cookie connection has no
            // window scaling, and a pool of one cannot be flooded out of all its sockets.
            match pool_socket(inner, port, n > 1 && i == n - 1) {
                Ok(s) => pool.push(inner.sockets.add(s)),
                Err(e) => {
                    for h in pool {
                        inner.sockets.remove(h);
                    }
                    return Err(e);
                }
            }
        }
        let slot = ListenSlot { port, resetting: alloc::vec![None; n], pool, flooded: false };
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
        for h in slot.pool {
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
            let Some(pool_len) = inner.listeners.get(self.id).and_then(Option::as_ref).map(|s| s.pool.len())
            else {
                return Poll::Ready(Err(StackError::NotConnected));
            };
            for i in 0..pool_len {
                let Some(h) = inner.listeners[self.id].as_ref().map(|s| s.pool[i]) else { break };
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
                            Ok(fresh) => fresh,
                            Err(StackError::NoResources) => {
                                // No memory for the socket that would listen in its place:
                                // reset this connection instead (the slot listens again once
                                // the reset is out) and keep serving the ones already accepted.
                                if !inner.refusing {
                                    log::warn!(
                                        "low on memory: resetting new connections to port {} until some close",
                                        self.port
                                    );
                                    inner.refusing = true;
                                }
                                let s = inner.sockets.get_mut::<tcp::Socket>(h);
                                s.abort();
                                // Woken when the runner puts it back to listening.
                                s.register_recv_waker(cx.waker());
                                inner.wake_runner();
                                continue;
                            }
                            Err(e) => return Poll::Ready(Err(e)),
                        };
                        if inner.refusing {
                            log::info!("memory available again: accepting connections");
                            inner.refusing = false;
                        }
                        let fresh = inner.sockets.add(fresh);
                        if let Some(slot) = inner.listeners[self.id].as_mut() {
                            slot.pool[i] = fresh;
                            slot.resetting[i] = None;
                            if cookies && !slot.flooded {
                                slot.flooded = true;
                                log::warn!(
                                    "port {}: every handshake slot was taken (a burst of connections, or a SYN flood): accepting by SYN cookie",
                                    self.port
                                );
                            }
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
