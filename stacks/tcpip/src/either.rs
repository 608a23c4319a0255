//! The default stack for a target, Mirage's `generic_stackv4v6`: one type for "whichever stack
//! `--net` picked".
//!
//! The hosted target can serve an app from host sockets (no root) or from this stack on a TAP
//! device, chosen at run time by `--net`. An app is generic over one `S: TcpStack`, so the
//! target hands it an [`Either`] of the two: every trait is implemented by a `match`, with no
//! `dyn` and no allocation on the data path, and connections, listeners, halves and UDP sockets
//! are `Either`s too. The choice itself (`--net socket|tap:IFNAME`) is the hosted target's
//! (`morgana-unix`): a stack crate reads no device arguments.

use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use embedded_io_async::{ErrorType, Read, Write};
use morgana::stack::{Resolver, StackError, TcpListener, TcpStack, UdpSocket, UdpStack};
use morgana::{Flow, FlowWrite};

/// One of two implementations of the same traits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<L, R> {
    /// The first (on the hosted target: host sockets).
    Left(L),
    /// The second (on the hosted target: `morgana-tcpip` on a TAP device).
    Right(R),
}

macro_rules! either {
    ($self:expr, $x:ident => $e:expr) => {
        match $self {
            Either::Left($x) => $e,
            Either::Right($x) => $e,
        }
    };
}

impl<L: ErrorType, R: ErrorType<Error = L::Error>> ErrorType for Either<L, R> {
    type Error = L::Error;
}

impl<L: Read, R: Read<Error = L::Error>> Read for Either<L, R> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        either!(self, x => x.read(buf).await)
    }
}

impl<L: Write, R: Write<Error = L::Error>> Write for Either<L, R> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        either!(self, x => x.write(buf).await)
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        either!(self, x => x.flush().await)
    }
}

impl<L: FlowWrite, R: FlowWrite<Error = L::Error>> FlowWrite for Either<L, R> {
    async fn shutdown_write(&mut self) -> Result<(), Self::Error> {
        either!(self, x => x.shutdown_write().await)
    }
}

impl<L: Flow, R: Flow<Error = L::Error>> Flow for Either<L, R> {
    type ReadHalf = Either<L::ReadHalf, R::ReadHalf>;
    type WriteHalf = Either<L::WriteHalf, R::WriteHalf>;

    fn split(self) -> (Self::ReadHalf, Self::WriteHalf) {
        match self {
            Either::Left(x) => {
                let (r, w) = x.split();
                (Either::Left(r), Either::Left(w))
            }
            Either::Right(x) => {
                let (r, w) = x.split();
                (Either::Right(r), Either::Right(w))
            }
        }
    }

    async fn close(self) -> Result<(), Self::Error> {
        either!(self, x => x.close().await)
    }
}

impl<L: TcpListener, R: TcpListener> TcpListener for Either<L, R> {
    type Connection = Either<L::Connection, R::Connection>;

    async fn accept(&mut self) -> Result<(Self::Connection, SocketAddr), StackError> {
        match self {
            Either::Left(x) => x.accept().await.map(|(c, a)| (Either::Left(c), a)),
            Either::Right(x) => x.accept().await.map(|(c, a)| (Either::Right(c), a)),
        }
    }

    fn local_addr(&self) -> SocketAddr {
        either!(self, x => x.local_addr())
    }
}

impl<L: TcpStack, R: TcpStack> TcpStack for Either<L, R> {
    type Connection = Either<L::Connection, R::Connection>;
    type Listener = Either<L::Listener, R::Listener>;

    async fn connect(&self, remote: SocketAddr) -> Result<Self::Connection, StackError> {
        match self {
            Either::Left(x) => x.connect(remote).await.map(Either::Left),
            Either::Right(x) => x.connect(remote).await.map(Either::Right),
        }
    }

    async fn listen(&self, port: u16, backlog: usize) -> Result<Self::Listener, StackError> {
        match self {
            Either::Left(x) => x.listen(port, backlog).await.map(Either::Left),
            Either::Right(x) => x.listen(port, backlog).await.map(Either::Right),
        }
    }
}

impl<L: UdpSocket, R: UdpSocket> UdpSocket for Either<L, R> {
    async fn send_to(&mut self, data: &[u8], remote: SocketAddr) -> Result<(), StackError> {
        either!(self, x => x.send_to(data, remote).await)
    }

    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, SocketAddr), StackError> {
        either!(self, x => x.recv_from(buf).await)
    }

    fn local_addr(&self) -> SocketAddr {
        either!(self, x => x.local_addr())
    }
}

impl<L: UdpStack, R: UdpStack> UdpStack for Either<L, R> {
    type Socket = Either<L::Socket, R::Socket>;

    async fn bind(&self, port: u16) -> Result<Self::Socket, StackError> {
        match self {
            Either::Left(x) => x.bind(port).await.map(Either::Left),
            Either::Right(x) => x.bind(port).await.map(Either::Right),
        }
    }
}

impl<L: Resolver, R: Resolver> Resolver for Either<L, R> {
    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, StackError> {
        either!(self, x => x.resolve(name).await)
    }
}
