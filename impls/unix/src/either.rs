//! `Either`: one of two transport stacks, chosen at start-up by `--net`.
//!
//! An app is generic over one `TcpStack`; on unix that stack is host sockets or smoltcp on a
//! TAP device depending on a runtime argument, so the app receives an `Either` that forwards
//! every call to the side that was built. Both sides are monomorphised; the choice costs one
//! branch per call and no `dyn`.

use core::net::{IpAddr, SocketAddr};

use morgana::embedded_io::ErrorType;
use morgana::embedded_io_async::{Read, Write};
use morgana::{Flow, FlowWrite, Resolver, StackError, TcpListener, TcpStack, UdpSocket, UdpStack};

/// The left or the right implementation of the same traits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first kind.
    Left(A),
    /// The second kind.
    Right(B),
}

macro_rules! both {
    ($e:expr, $x:ident => $body:expr) => {
        match $e {
            Either::Left($x) => $body,
            Either::Right($x) => $body,
        }
    };
}

impl<A: TcpStack, B: TcpStack> TcpStack for Either<A, B> {
    type Connection = Either<A::Connection, B::Connection>;
    type Listener = Either<A::Listener, B::Listener>;

    async fn connect(&self, remote: SocketAddr) -> Result<Self::Connection, StackError> {
        match self {
            Either::Left(s) => s.connect(remote).await.map(Either::Left),
            Either::Right(s) => s.connect(remote).await.map(Either::Right),
        }
    }

    async fn listen(&self, port: u16, backlog: usize) -> Result<Self::Listener, StackError> {
        match self {
            Either::Left(s) => s.listen(port, backlog).await.map(Either::Left),
            Either::Right(s) => s.listen(port, backlog).await.map(Either::Right),
        }
    }
}

impl<A: TcpListener, B: TcpListener> TcpListener for Either<A, B> {
    type Connection = Either<A::Connection, B::Connection>;

    async fn accept(&mut self) -> Result<(Self::Connection, SocketAddr), StackError> {
        match self {
            Either::Left(l) => l.accept().await.map(|(c, a)| (Either::Left(c), a)),
            Either::Right(l) => l.accept().await.map(|(c, a)| (Either::Right(c), a)),
        }
    }

    fn local_addr(&self) -> SocketAddr {
        both!(self, l => l.local_addr())
    }
}

impl<A: UdpStack, B: UdpStack> UdpStack for Either<A, B> {
    type Socket = Either<A::Socket, B::Socket>;

    async fn bind(&self, port: u16) -> Result<Self::Socket, StackError> {
        match self {
            Either::Left(s) => s.bind(port).await.map(Either::Left),
            Either::Right(s) => s.bind(port).await.map(Either::Right),
        }
    }
}

impl<A: UdpSocket, B: UdpSocket> UdpSocket for Either<A, B> {
    async fn send_to(&mut self, data: &[u8], remote: SocketAddr) -> Result<(), StackError> {
        both!(self, s => s.send_to(data, remote).await)
    }

    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, SocketAddr), StackError> {
        both!(self, s => s.recv_from(buf).await)
    }

    fn local_addr(&self) -> SocketAddr {
        both!(self, s => s.local_addr())
    }
}

impl<A: Resolver, B: Resolver> Resolver for Either<A, B> {
    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, StackError> {
        both!(self, r => r.resolve(name).await)
    }
}

impl<A: ErrorType, B: ErrorType<Error = A::Error>> ErrorType for Either<A, B> {
    type Error = A::Error;
}

impl<A: Read, B: Read<Error = A::Error>> Read for Either<A, B> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, A::Error> {
        both!(self, f => f.read(buf).await)
    }
}

impl<A: Write, B: Write<Error = A::Error>> Write for Either<A, B> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, A::Error> {
        both!(self, f => f.write(buf).await)
    }

    async fn flush(&mut self) -> Result<(), A::Error> {
        both!(self, f => f.flush().await)
    }
}

impl<A: FlowWrite, B: FlowWrite<Error = A::Error>> FlowWrite for Either<A, B> {
    async fn shutdown_write(&mut self) -> Result<(), A::Error> {
        both!(self, f => f.shutdown_write().await)
    }
}

impl<A: Flow, B: Flow<Error = A::Error>> Flow for Either<A, B> {
    type ReadHalf = Either<A::ReadHalf, B::ReadHalf>;
    type WriteHalf = Either<A::WriteHalf, B::WriteHalf>;

    fn split(self) -> (Self::ReadHalf, Self::WriteHalf) {
        match self {
            Either::Left(f) => {
                let (r, w) = f.split();
                (Either::Left(r), Either::Left(w))
            }
            Either::Right(f) => {
                let (r, w) = f.split();
                (Either::Right(r), Either::Right(w))
            }
        }
    }

    async fn close(self) -> Result<(), A::Error> {
        both!(self, f => f.close().await)
    }
}

/// A stack that cannot exist: the side of an [`Either`] that is not wired yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoStack {}

impl TcpStack for NoStack {
    type Connection = NoStack;
    type Listener = NoStack;
    async fn connect(&self, _: SocketAddr) -> Result<NoStack, StackError> {
        match *self {}
    }
    async fn listen(&self, _: u16, _: usize) -> Result<NoStack, StackError> {
        match *self {}
    }
}

impl TcpListener for NoStack {
    type Connection = NoStack;
    async fn accept(&mut self) -> Result<(NoStack, SocketAddr), StackError> {
        match *self {}
    }
    fn local_addr(&self) -> SocketAddr {
        match *self {}
    }
}

impl UdpStack for NoStack {
    type Socket = NoStack;
    async fn bind(&self, _: u16) -> Result<NoStack, StackError> {
        match *self {}
    }
}

impl UdpSocket for NoStack {
    async fn send_to(&mut self, _: &[u8], _: SocketAddr) -> Result<(), StackError> {
        match *self {}
    }
    async fn recv_from(&mut self, _: &mut [u8]) -> Result<(usize, SocketAddr), StackError> {
        match *self {}
    }
    fn local_addr(&self) -> SocketAddr {
        match *self {}
    }
}

impl Resolver for NoStack {
    async fn resolve(&self, _: &str) -> Result<Vec<IpAddr>, StackError> {
        match *self {}
    }
}

impl ErrorType for NoStack {
    type Error = StackError;
}

impl Read for NoStack {
    async fn read(&mut self, _: &mut [u8]) -> Result<usize, StackError> {
        match *self {}
    }
}

impl Write for NoStack {
    async fn write(&mut self, _: &[u8]) -> Result<usize, StackError> {
        match *self {}
    }
    async fn flush(&mut self) -> Result<(), StackError> {
        match *self {}
    }
}

impl FlowWrite for NoStack {
    async fn shutdown_write(&mut self) -> Result<(), StackError> {
        match *self {}
    }
}

impl Flow for NoStack {
    type ReadHalf = NoStack;
    type WriteHalf = NoStack;
    fn split(self) -> (NoStack, NoStack) {
        match self {}
    }
}
