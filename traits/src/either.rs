//! One of two implementations of the same traits, as one type.
//!
//! A target or an app that picks a device at run time (host sockets or a TAP stack, a directory
//! or the compiled-in site, the given store or a fallback) still hands the app one concrete
//! type: an [`Either`], whose every method is a `match`, with no `dyn` (the traits' `async fn`s
//! are not object-safe anyway) and no allocation. It implements each trait of this crate that
//! both sides implement: the key-value stores ([`KvRw`] only when both sides are writable, so a
//! read-only side makes the whole `Either` read-only at compile time), [`Block`], the transport
//! traits, and the flows; what those hand out (connections, listeners, halves, UDP sockets) are
//! `Either`s too.
//!
//! It lives in the signature crate because a crate may implement these traits only for types
//! of its own: one `Either` here serves every layer and target, where each would otherwise
//! define its own.
//!
//! ```
//! use morgana::Either;
//! use morgana::embedded_io_async::Read;
//!
//! /// The app reads from one `R: Read`; which one is chosen at run time.
//! fn input(greet: bool) -> Either<&'static [u8], &'static [u8]> {
//!     if greet { Either::Left(b"hello") } else { Either::Right(b"bye") }
//! }
//!
//! let mut buf = [0; 8];
//! let n = futures::executor::block_on(input(true).read(&mut buf)).unwrap();
//! assert_eq!(&buf[..n], b"hello");
//! ```

use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

use embedded_io_async::{ErrorType, Read, Write};

use crate::block::{Block, BlockError, BlockInfo};
use crate::flow::{Flow, FlowWrite};
use crate::kv::{Key, Kind, KvError, KvRo, KvRw};
use crate::stack::{Resolver, StackError, TcpListener, TcpStack, UdpSocket, UdpStack};

/// One of two implementations of the same traits (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<L, R> {
    /// The first.
    Left(L),
    /// The second.
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

impl<L: KvRo, R: KvRo> KvRo for Either<L, R> {
    async fn exists(&self, key: &Key) -> Result<Option<Kind>, KvError> {
        either!(self, x => x.exists(key).await)
    }

    async fn get(&self, key: &Key) -> Result<Vec<u8>, KvError> {
        either!(self, x => x.get(key).await)
    }

    async fn get_partial(&self, key: &Key, offset: u64, len: usize) -> Result<Vec<u8>, KvError> {
        either!(self, x => x.get_partial(key, offset, len).await)
    }

    async fn list(&self, key: &Key) -> Result<Vec<(Key, Kind)>, KvError> {
        either!(self, x => x.list(key).await)
    }

    async fn size(&self, key: &Key) -> Result<u64, KvError> {
        either!(self, x => x.size(key).await)
    }

    async fn last_modified(&self, key: &Key) -> Result<Duration, KvError> {
        either!(self, x => x.last_modified(key).await)
    }

    async fn digest(&self, key: &Key) -> Result<[u8; 32], KvError> {
        either!(self, x => x.digest(key).await)
    }
}

impl<L: KvRw, R: KvRw> KvRw for Either<L, R> {
    async fn set(&self, key: &Key, value: &[u8]) -> Result<(), KvError> {
        either!(self, x => x.set(key, value).await)
    }

    async fn set_partial(&self, key: &Key, offset: u64, data: &[u8]) -> Result<(), KvError> {
        either!(self, x => x.set_partial(key, offset, data).await)
    }

    async fn remove(&self, key: &Key) -> Result<(), KvError> {
        either!(self, x => x.remove(key).await)
    }

    async fn rename(&self, source: &Key, dest: &Key) -> Result<(), KvError> {
        either!(self, x => x.rename(source, dest).await)
    }

    async fn allocate(&self, key: &Key, size: u64) -> Result<(), KvError> {
        either!(self, x => x.allocate(key, size).await)
    }
}

impl<L: Block, R: Block> Block for Either<L, R> {
    fn info(&self) -> BlockInfo {
        either!(self, x => x.info())
    }

    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        either!(self, x => x.read(sector, buf).await)
    }

    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        either!(self, x => x.write(sector, buf).await)
    }

    async fn flush(&mut self) -> Result<(), BlockError> {
        either!(self, x => x.flush().await)
    }
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
