//! `TlsListener`: a `TcpListener` transformer whose `accept` gives TLS sessions.
//!
//! A server that runs the handshake inside its accept loop (`accept`, then `tls.accept(conn)`)
//! lets one silent client stall it: the handshake waits for a ClientHello that never comes and no
//! one else is accepted. [`TlsListener`] accepts from the listener below and runs the
//! handshakes side by side, each bounded by a deadline on the platform's clock
//! ([`morgana::time::timeout`]); `accept` returns the first session whose handshake completes.
//! A client that never speaks holds one of the [`TlsListener::with_max_in_flight`] handshake
//! places until its deadline, then its connection is dropped (closed) and counted
//! ([`TlsListener::timed_out`]); a failed handshake is counted too ([`TlsListener::failed`]) and
//! neither is an error of `accept`.
//!
//! Handshakes in flight progress while a task awaits `accept` (as a server's accept loop does),
//! and each wake-up polls all of them: keep the limit modest (the default is
//! [`DEFAULT_MAX_IN_FLIGHT`]).

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::Cell;
use core::future::{Future, poll_fn};
use core::net::SocketAddr;
use core::pin::{Pin, pin};
use core::task::Poll;

use morgana::time::{TimedOut, timeout};
use morgana::{Clock, Duration, Flow, StackError, TcpListener, WallClock};

use crate::{ServerStream, TlsServer};

/// Handshakes a [`TlsListener`] runs at once unless told otherwise.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

type Handshake<F> = Pin<Box<dyn Future<Output = (Outcome<F>, SocketAddr)>>>;
type Outcome<F> = Result<Result<ServerStream<F>, crate::TlsError<StackError>>, TimedOut>;

/// A listener of TLS sessions over the TCP listener `L`, with a handshake deadline.
pub struct TlsListener<L: TcpListener, C> {
    inner: L,
    server: Rc<TlsServer<C>>,
    clock: C,
    handshake_timeout: Duration,
    max_in_flight: usize,
    in_flight: Vec<Handshake<L::Connection>>,
    failed: Cell<u64>,
    timed_out: Cell<u64>,
}

impl<L, C> TlsListener<L, C>
where
    L: TcpListener,
    L::Connection: Flow<Error = StackError> + 'static,
    C: Clock + WallClock + Clone + 'static,
{
    /// Accept from `inner` and run `server`'s handshake on each connection, giving up on one
    /// after `handshake_timeout` on `clock`.
    pub fn new(inner: L, server: TlsServer<C>, clock: C, handshake_timeout: Duration) -> Self {
        Self::shared(inner, Rc::new(server), clock, handshake_timeout)
    }

    /// [`new`](Self::new) with a server that other listeners share.
    pub(crate) fn shared(inner: L, server: Rc<TlsServer<C>>, clock: C, handshake_timeout: Duration) -> Self {
        Self {
            inner,
            server,
            clock,
            handshake_timeout,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            in_flight: Vec::new(),
            failed: Cell::new(0),
            timed_out: Cell::new(0),
        }
    }

    /// Run at most `n` handshakes at once (at least one); beyond them, new connections wait in
    /// the listen backlog.
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Handshakes in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Handshakes that failed so far (the peer broke the protocol or went away).
    pub fn failed(&self) -> u64 {
        self.failed.get()
    }

    /// Handshakes that ran out of time so far.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.get()
    }

    fn start(&mut self, conn: L::Connection, peer: SocketAddr) {
        let (server, clock, limit) = (self.server.clone(), self.clock.clone(), self.handshake_timeout);
        self.in_flight.push(Box::pin(async move {
            let outcome = timeout(&clock, limit, server.accept(conn)).await;
            (outcome, peer)
        }));
    }
}

/// What woke `accept`.
enum Event<F> {
    Accepted(Result<(F, SocketAddr), StackError>),
    Handshaken(Outcome<F>, SocketAddr),
}

impl<L, C> TcpListener for TlsListener<L, C>
where
    L: TcpListener,
    L::Connection: Flow<Error = StackError> + 'static,
    C: Clock + WallClock + Clone + 'static,
{
    type Connection = ServerStream<L::Connection>;

    /// The next session whose handshake completes, and its peer. Fails only if the listener
    /// below does.
    async fn accept(&mut self) -> Result<(Self::Connection, SocketAddr), StackError> {
        loop {
            let event = {
                let (inner, in_flight, max) = (&mut self.inner, &mut self.in_flight, self.max_in_flight);
                let mut accept = pin!(inner.accept());
                poll_fn(|cx| {
                    for i in 0..in_flight.len() {
                        if let Poll::Ready((outcome, peer)) = in_flight[i].as_mut().poll(cx) {
                            drop(in_flight.swap_remove(i));
                            return Poll::Ready(Event::Handshaken(outcome, peer));
                        }
                    }
                    if in_flight.len() < max
                        && let Poll::Ready(r) = accept.as_mut().poll(cx)
                    {
                        return Poll::Ready(Event::Accepted(r));
                    }
                    Poll::Pending
                })
                .await
            };
            match event {
                Event::Accepted(r) => {
                    let (conn, peer) = r?;
                    self.start(conn, peer);
                }
                Event::Handshaken(outcome, peer) => match outcome {
                    Ok(Ok(session)) => return Ok((session, peer)),
                    Ok(Err(e)) => {
                        self.failed.set(self.failed.get() + 1);
                        log::debug!("{peer}: TLS handshake failed: {e}");
                    }
                    Err(TimedOut) => {
                        self.timed_out.set(self.timed_out.get() + 1);
                        log::debug!("{peer}: TLS handshake timed out");
                    }
                },
            }
        }
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }
}
