//! Devices that put what each app's I/O returned into the trace, and keep a list of what each
//! node is waiting on (for the report of a stuck world): a `TcpStack` (with its listeners,
//! connections and their halves) and a `Block`, each wrapping the real one.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use embedded_io_async::{ErrorType, Read, Write};
use morgana::block::{Block, BlockError, BlockInfo};
use morgana::stack::{Resolver, StackError, TcpListener, TcpStack, UdpStack};
use morgana::{Flow, FlowWrite, Instant};

use crate::time::WorldClock;
use crate::trace::{Event, IoOp, Trace};

/// A node's handle on the trace and its list of waits.
#[derive(Clone)]
pub struct Tap {
    node: u16,
    trace: Rc<RefCell<Trace>>,
    clock: WorldClock,
    waits: Rc<RefCell<Vec<Wait>>>,
    next: Rc<Cell<u64>>,
}

/// Something a node's app is waiting on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    id: u64,
    /// The operation.
    pub op: IoOp,
    /// The connection (or 0).
    pub conn: u32,
    /// Since when (world time).
    pub since: Instant,
}

struct Waiting<'a> {
    tap: &'a Tap,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.tap.waits.borrow_mut().retain(|w| w.id != self.id);
    }
}

/// A `StackError` as a small code for the trace.
pub fn stack_code(e: &StackError) -> u16 {
    match e {
        StackError::ConnectionRefused => 1,
        StackError::ConnectionReset => 2,
        StackError::TimedOut => 3,
        StackError::NoRoute => 4,
        StackError::AddrInUse => 5,
        StackError::PermissionDenied => 6,
        StackError::NotConnected => 7,
        StackError::InvalidInput => 8,
        StackError::NameNotFound => 9,
        StackError::NoResources => 10,
        StackError::Unsupported => 11,
        StackError::Io(c) => 100u16.saturating_add(*c as u16),
        _ => 99,
    }
}

fn block_code(e: &BlockError) -> u16 {
    match e {
        BlockError::OutOfRange { .. } => 1,
        BlockError::Misaligned { .. } => 2,
        BlockError::ReadOnly => 3,
        BlockError::Io(c) => 100u16.saturating_add(*c as u16),
        _ => 99,
    }
}

impl Tap {
    /// A tap for `node`.
    pub fn new(node: u16, trace: Rc<RefCell<Trace>>, clock: WorldClock) -> Self {
        Self { node, trace, clock, waits: Rc::default(), next: Rc::default() }
    }

    /// What the node's app is waiting on now.
    pub fn waits(&self) -> Vec<Wait> {
        self.waits.borrow().clone()
    }

    fn wait(&self, op: IoOp, conn: u32) -> Waiting<'_> {
        let id = self.next.get();
        self.next.set(id + 1);
        self.waits.borrow_mut().push(Wait { id, op, conn, since: self.clock.now() });
        Waiting { tap: self, id }
    }

    fn conn_id(&self) -> u32 {
        let id = self.next.get();
        self.next.set(id + 1);
        id as u32
    }

    fn io(&self, op: IoOp, conn: u32, result: Result<u32, u16>) {
        let now = self.clock.now();
        self.trace.borrow_mut().push(now, Event::Io { node: self.node, op, conn, result });
    }

    fn stack<T>(&self, op: IoOp, conn: u32, r: &Result<T, StackError>, n: impl Fn(&T) -> usize) {
        self.io(op, conn, r.as_ref().map(|v| n(v) as u32).map_err(stack_code));
    }
}

/// A device whose results go into the trace.
pub struct Traced<T> {
    inner: T,
    tap: Tap,
    conn: u32,
}

impl<T: Clone> Clone for Traced<T> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), tap: self.tap.clone(), conn: self.conn }
    }
}

impl<T> Traced<T> {
    /// Wrap `inner`.
    pub fn new(inner: T, tap: Tap) -> Self {
        Self { inner, tap, conn: 0 }
    }

    /// The wrapped device.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    fn wrap<U>(&self, inner: U, conn: u32) -> Traced<U> {
        Traced { inner, tap: self.tap.clone(), conn }
    }
}

impl<S: TcpStack> TcpStack for Traced<S> {
    type Connection = Traced<S::Connection>;
    type Listener = Traced<S::Listener>;

    async fn connect(&self, remote: SocketAddr) -> Result<Self::Connection, StackError> {
        let conn = self.tap.conn_id();
        let _w = self.tap.wait(IoOp::Connect, conn);
        let r = self.inner.connect(remote).await;
        self.tap.stack(IoOp::Connect, conn, &r, |_| usize::from(remote.port()));
        r.map(|c| self.wrap(c, conn))
    }

    async fn listen(&self, port: u16, backlog: usize) -> Result<Self::Listener, StackError> {
        let conn = self.tap.conn_id();
        let r = self.inner.listen(port, backlog).await;
        self.tap.stack(IoOp::Listen, conn, &r, |_| usize::from(port));
        r.map(|l| self.wrap(l, conn))
    }
}

impl<L: TcpListener> TcpListener for Traced<L> {
    type Connection = Traced<L::Connection>;

    async fn accept(&mut self) -> Result<(Self::Connection, SocketAddr), StackError> {
        let r = {
            let _w = self.tap.wait(IoOp::Accept, self.conn);
            self.inner.accept().await
        };
        let conn = self.tap.conn_id();
        self.tap.stack(IoOp::Accept, self.conn, &r, |_| conn as usize);
        r.map(|(c, peer)| (self.wrap(c, conn), peer))
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }
}

impl<S: UdpStack> UdpStack for Traced<S> {
    type Socket = S::Socket;

    async fn bind(&self, port: u16) -> Result<S::Socket, StackError> {
        self.inner.bind(port).await
    }
}

impl<S: Resolver> Resolver for Traced<S> {
    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, StackError> {
        let _w = self.tap.wait(IoOp::Resolve, 0);
        let r = self.inner.resolve(name).await;
        self.tap.stack(IoOp::Resolve, 0, &r, Vec::len);
        r
    }
}

impl<F: ErrorType> ErrorType for Traced<F> {
    type Error = F::Error;
}

impl<F: Read<Error = StackError>> Read for Traced<F> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, StackError> {
        let r = {
            let _w = self.tap.wait(IoOp::Read, self.conn);
            self.inner.read(buf).await
        };
        self.tap.stack(IoOp::Read, self.conn, &r, |n| *n);
        r
    }
}

impl<F: Write<Error = StackError>> Write for Traced<F> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, StackError> {
        let r = {
            let _w = self.tap.wait(IoOp::Write, self.conn);
            self.inner.write(buf).await
        };
        self.tap.stack(IoOp::Write, self.conn, &r, |n| *n);
        r
    }

    async fn flush(&mut self) -> Result<(), StackError> {
        let _w = self.tap.wait(IoOp::Write, self.conn);
        self.inner.flush().await
    }
}

impl<F: FlowWrite<Error = StackError>> FlowWrite for Traced<F> {
    async fn shutdown_write(&mut self) -> Result<(), StackError> {
        let r = {
            let _w = self.tap.wait(IoOp::Shutdown, self.conn);
            self.inner.shutdown_write().await
        };
        self.tap.stack(IoOp::Shutdown, self.conn, &r, |_| 0);
        r
    }
}

impl<F> Flow for Traced<F>
where
    F: Flow<Error = StackError>,
{
    type ReadHalf = Traced<F::ReadHalf>;
    type WriteHalf = Traced<F::WriteHalf>;

    fn split(self) -> (Self::ReadHalf, Self::WriteHalf) {
        let (r, w) = self.inner.split();
        (
            Traced { inner: r, tap: self.tap.clone(), conn: self.conn },
            Traced { inner: w, tap: self.tap, conn: self.conn },
        )
    }

    async fn close(self) -> Result<(), StackError> {
        let r = self.inner.close().await;
        self.tap.stack(IoOp::Shutdown, self.conn, &r, |_| 1);
        r
    }
}

impl<B: Block> Block for Traced<B> {
    fn info(&self) -> BlockInfo {
        self.inner.info()
    }

    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let r = self.inner.read(sector, buf).await;
        self.tap.io(IoOp::BlockRead, sector as u32, r.as_ref().map(|_| buf.len() as u32).map_err(block_code));
        r
    }

    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        let r = self.inner.write(sector, buf).await;
        self.tap.io(
            IoOp::BlockWrite,
            sector as u32,
            r.as_ref().map(|_| buf.len() as u32).map_err(block_code),
        );
        r
    }

    async fn flush(&mut self) -> Result<(), BlockError> {
        let r = self.inner.flush().await;
        self.tap.io(IoOp::Flush, 0, r.as_ref().map(|_| 0).map_err(block_code));
        r
    }
}
