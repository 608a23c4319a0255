//! TCP: connections (and their halves) and listeners.

use alloc::rc::Rc;
use core::future::poll_fn;
use core::net::{IpAddr, Ipv6Addr, SocketAddr};
use core::task::{Context, Poll};

use embedded_io_async::{ErrorType, Read, Write};
use morgana::stack::{StackError, TcpStack};
use morgana::{Flow, FlowWrite};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, ConnectError, RecvError, State};
use smoltcp::wire::IpAddress;

use crate::listen::Listener;
use crate::stack::Stack;

/// The socket under a connection; dropping the last handle closes it.
struct Io {
    stack: Stack,
    handle: SocketHandle,
}

impl Drop for Io {
    fn drop(&mut self) {
        self.stack.borrow().release_tcp(self.handle);
    }
}

impl Io {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, StackError>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut inner = self.stack.borrow();
        let s = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        let queued = s.recv_queue();
        if queued == 0 && s.may_recv() {
            // What `recv_slice` would answer with `Ok(0)`, without the call.
            s.register_recv_waker(cx.waker());
            return Poll::Pending;
        }
        let free = s.recv_capacity() - queued;
        match s.recv_slice(buf) {
            Ok(0) => {
                s.register_recv_waker(cx.waker());
                Poll::Pending
            }
            Ok(n) => {
                // smoltcp announces a window that at least doubled: only then does the runner
                // have an update to send. Otherwise the peer can still send, and its next
                // segment wakes the runner anyway.
                if free + n >= 2 * free {
                    inner.wake_runner();
                }
                Poll::Ready(Ok(n))
            }
            Err(RecvError::Finished) => Poll::Ready(Ok(0)),
            Err(RecvError::InvalidState) => Poll::Ready(inner.error_of(self.handle).map_or(Ok(0), Err)),
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, StackError>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut inner = self.stack.borrow();
        let s = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        if s.may_send() && !s.can_send() {
            // A full buffer: what `send_slice` would answer with `Ok(0)`, without the call.
            s.register_send_waker(cx.waker());
            inner.send_buffer_full(self.handle);
            return Poll::Pending;
        }
        match s.send_slice(buf) {
            Ok(0) => {
                s.register_send_waker(cx.waker());
                Poll::Pending
            }
            Ok(n) => {
                inner.wake_runner();
                Poll::Ready(Ok(n))
            }
            Err(_) => Poll::Ready(Err(inner.error_of(self.handle).unwrap_or(StackError::NotConnected))),
        }
    }

    /// Ready once everything written has been acknowledged.
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<Result<(), StackError>> {
        let mut inner = self.stack.borrow();
        if let Some(e) = inner.error_of(self.handle) {
            return Poll::Ready(Err(e));
        }
        let s = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        if s.send_queue() == 0 {
            return Poll::Ready(Ok(()));
        }
        if s.state() == State::Closed {
            return Poll::Ready(Err(StackError::NotConnected));
        }
        s.register_send_waker(cx.waker());
        Poll::Pending
    }

    async fn flush(&self) -> Result<(), StackError> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    async fn shutdown_write(&self) -> Result<(), StackError> {
        {
            let mut inner = self.stack.borrow();
            if let Some(e) = inner.error_of(self.handle) {
                return Err(e);
            }
            crate::lifecycle::close(inner.sockets.get_mut::<tcp::Socket>(self.handle));
            inner.wake_runner();
        }
        self.flush().await
    }

    fn endpoints(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        let inner = self.stack.borrow();
        let s = inner.sockets.get::<tcp::Socket>(self.handle);
        (s.local_endpoint().map(SocketAddr::from), s.remote_endpoint().map(SocketAddr::from))
    }
}

/// An open TCP connection. Dropping it closes it (a FIN; a reset if received data was left
/// unread) and the stack finishes the close in the background.
pub struct Connection {
    io: Rc<Io>,
}

/// The reading half of a [`Connection`].
pub struct ReadHalf {
    io: Rc<Io>,
}

/// The writing half of a [`Connection`].
pub struct WriteHalf {
    io: Rc<Io>,
}

const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);

impl Connection {
    pub(crate) fn new(stack: Stack, handle: SocketHandle) -> Self {
        Self { io: Rc::new(Io { stack, handle }) }
    }

    /// Our address on this connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.io.endpoints().0.unwrap_or(UNSPECIFIED)
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.io.endpoints().1.unwrap_or(UNSPECIFIED)
    }

    /// Reset the connection at once (an RST), discarding what is buffered either way.
    pub fn abort(self) {
        let mut inner = self.io.stack.borrow();
        inner.sockets.get_mut::<tcp::Socket>(self.io.handle).abort();
        inner.wake_runner();
    }
}

macro_rules! io_impls {
    ($($t:ty),*) => {$(
        impl ErrorType for $t {
            type Error = StackError;
        }
    )*};
}
io_impls!(Connection, ReadHalf, WriteHalf);

impl Read for Connection {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, StackError> {
        poll_fn(|cx| self.io.poll_read(cx, buf)).await
    }
}

impl Read for ReadHalf {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, StackError> {
        poll_fn(|cx| self.io.poll_read(cx, buf)).await
    }
}

impl Write for Connection {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, StackError> {
        poll_fn(|cx| self.io.poll_write(cx, buf)).await
    }

    async fn flush(&mut self) -> Result<(), StackError> {
        self.io.flush().await
    }
}

impl Write for WriteHalf {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, StackError> {
        poll_fn(|cx| self.io.poll_write(cx, buf)).await
    }

    async fn flush(&mut self) -> Result<(), StackError> {
        self.io.flush().await
    }
}

impl FlowWrite for Connection {
    async fn shutdown_write(&mut self) -> Result<(), StackError> {
        self.io.shutdown_write().await
    }
}

impl FlowWrite for WriteHalf {
    async fn shutdown_write(&mut self) -> Result<(), StackError> {
        self.io.shutdown_write().await
    }
}

impl Flow for Connection {
    type ReadHalf = ReadHalf;
    type WriteHalf = WriteHalf;

    fn split(self) -> (ReadHalf, WriteHalf) {
        (ReadHalf { io: self.io.clone() }, WriteHalf { io: self.io })
    }
}

impl TcpStack for Stack {
    type Connection = Connection;
    type Listener = Listener;

    async fn connect(&self, remote: SocketAddr) -> Result<Connection, StackError> {
        if remote.port() == 0 {
            return Err(StackError::InvalidInput);
        }
        if remote.is_ipv4() {
            self.wait_lease().await?;
        }
        let handle = {
            let mut guard = self.borrow();
            let inner = &mut *guard;
            inner.check_route(IpAddress::from(remote.ip()))?;
            let port = inner.ephemeral_port(|i, p| i.tcp_port_in_use(p))?;
            let Some(mut s) = inner.new_tcp_socket() else {
                inner.counted.refused += 1;
                return Err(StackError::NoResources);
            };
            s.connect(inner.iface.context(), remote, port).map_err(|e| match e {
                ConnectError::Unaddressable => StackError::NoRoute,
                ConnectError::InvalidState => StackError::InvalidInput,
            })?;
            let h = inner.sockets.add(s);
            inner.track(h);
            inner.wake_runner();
            h
        };
        // From here, dropping the future (a caller's timeout) closes the socket.
        let io = Io { stack: self.clone(), handle };
        poll_fn(|cx| {
            let mut inner = io.stack.borrow();
            let error = inner.error_of(handle);
            let s = inner.sockets.get_mut::<tcp::Socket>(handle);
            match s.state() {
                State::SynSent | State::SynReceived => {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
                State::Closed => Poll::Ready(Err(error.unwrap_or(StackError::ConnectionRefused))),
                _ => {
                    inner.established(handle);
                    Poll::Ready(Ok(()))
                }
            }
        })
        .await?;
        Ok(Connection { io: Rc::new(io) })
    }

    async fn listen(&self, port: u16, backlog: usize) -> Result<Listener, StackError> {
        Listener::open(self, port, backlog)
    }
}
