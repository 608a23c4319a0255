//! `TcpStack`, `UdpStack` and `Resolver`: transport, whoever implements it.
//!
//! The hosted target implements these on host kernel sockets; `morgana-tcpip` implements them on
//! any [`Net`](crate::Net) with smoltcp. Associated types are `'static` so generic app code can
//! move a connection into a spawned task. Stacks are cheap handles (`Clone`) onto shared state,
//! and `&S` is a stack wherever `S` is (blanket impls), so code can lend one instead of cloning.
//!
//! ```
//! use morgana::stack::{StackError, TcpListener, TcpStack};
//! use morgana::Flow;
//!
//! /// Accept one connection on `port` and close it at once.
//! async fn knock<S: TcpStack>(stack: &S, port: u16) -> Result<(), StackError> {
//!     let mut listener = stack.listen(port, 1).await?;
//!     let (conn, peer) = listener.accept().await?;
//!     let _ = peer;
//!     conn.close().await
//! }
//! ```

use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, SocketAddr};

use crate::flow::Flow;

/// Why a network operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StackError {
    /// The peer refused the connection (RST to our SYN, or ICMP port unreachable).
    ConnectionRefused,
    /// The peer reset the connection.
    ConnectionReset,
    /// The operation timed out (connect, retransmissions, keep-alive, DNS).
    TimedOut,
    /// No route to the destination.
    NoRoute,
    /// The local port is already in use.
    AddrInUse,
    /// The host refuses the operation (e.g. a port below 1024 without privileges).
    PermissionDenied,
    /// The operation needs a connected flow, or the flow was shut down for writing.
    NotConnected,
    /// An argument is invalid (port 0 to connect to, a malformed name, ...).
    InvalidInput,
    /// The name does not resolve.
    NameNotFound,
    /// Out of sockets or buffers.
    NoResources,
    /// The stack cannot do this (e.g. IPv6 on an IPv4-only configuration).
    Unsupported,
    /// The host failed; the code is the implementation's (an errno on unix).
    Io(i32),
    /// A TLS layer over the stack refused or ended the connection: the peer's certificate is
    /// not valid for the name, the peer sent a fatal alert, ... The text is the reason in one
    /// line (fixed text: names and numbers are in that layer's own error and logs).
    Tls(&'static str),
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConnectionRefused => f.write_str("connection refused"),
            Self::ConnectionReset => f.write_str("connection reset by peer"),
            Self::TimedOut => f.write_str("timed out"),
            Self::NoRoute => f.write_str("no route to host"),
            Self::AddrInUse => f.write_str("address already in use"),
            Self::PermissionDenied => f.write_str("permission denied"),
            Self::NotConnected => f.write_str("not connected"),
            Self::InvalidInput => f.write_str("invalid argument"),
            Self::NameNotFound => f.write_str("name not found"),
            Self::NoResources => f.write_str("out of sockets or buffers"),
            Self::Unsupported => f.write_str("not supported by this stack"),
            Self::Io(code) => write!(f, "network I/O error (code {code})"),
            Self::Tls(reason) => write!(f, "TLS: {reason}"),
        }
    }
}

impl core::error::Error for StackError {}

impl embedded_io::Error for StackError {
    fn kind(&self) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind as K;
        match self {
            Self::ConnectionRefused => K::ConnectionRefused,
            Self::ConnectionReset => K::ConnectionReset,
            Self::TimedOut => K::TimedOut,
            Self::NoRoute => K::AddrNotAvailable,
            Self::AddrInUse => K::AddrInUse,
            Self::PermissionDenied => K::PermissionDenied,
            Self::NotConnected => K::NotConnected,
            Self::InvalidInput => K::InvalidInput,
            Self::NameNotFound => K::NotFound,
            Self::NoResources => K::OutOfMemory,
            Self::Unsupported => K::Unsupported,
            Self::Io(_) => K::Other,
            Self::Tls(_) => K::InvalidData,
        }
    }
}

/// A TCP implementation.
pub trait TcpStack {
    /// An established connection.
    type Connection: Flow<Error = StackError, ReadHalf: 'static, WriteHalf: 'static> + 'static;
    /// A listening socket.
    type Listener: TcpListener<Connection = Self::Connection> + 'static;

    /// Open a connection to `remote`.
    async fn connect(&self, remote: SocketAddr) -> Result<Self::Connection, StackError>;

    /// Listen on `port` of every local address, queueing up to `backlog` connections.
    async fn listen(&self, port: u16, backlog: usize) -> Result<Self::Listener, StackError>;
}

/// A listening TCP socket.
pub trait TcpListener {
    /// The connections it accepts.
    type Connection;

    /// Wait for the next connection and the peer's address.
    async fn accept(&mut self) -> Result<(Self::Connection, SocketAddr), StackError>;

    /// The address it listens on.
    fn local_addr(&self) -> SocketAddr;
}

/// A UDP implementation.
pub trait UdpStack {
    /// A bound socket.
    type Socket: UdpSocket + 'static;

    /// Bind `port` on every local address (0: an ephemeral port).
    async fn bind(&self, port: u16) -> Result<Self::Socket, StackError>;
}

/// A bound UDP socket.
pub trait UdpSocket {
    /// Send one datagram to `remote`.
    async fn send_to(&mut self, data: &[u8], remote: SocketAddr) -> Result<(), StackError>;

    /// Receive one datagram into `buf` (truncated to its length) and return its length and
    /// sender.
    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, SocketAddr), StackError>;

    /// The address it is bound to.
    fn local_addr(&self) -> SocketAddr;
}

/// A DNS resolver.
pub trait Resolver {
    /// The IPv4 and IPv6 addresses of `name` (an address literal resolves to itself).
    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, StackError>;
}

impl<T: TcpStack + ?Sized> TcpStack for &T {
    type Connection = T::Connection;
    type Listener = T::Listener;

    async fn connect(&self, remote: SocketAddr) -> Result<Self::Connection, StackError> {
        T::connect(self, remote).await
    }

    async fn listen(&self, port: u16, backlog: usize) -> Result<Self::Listener, StackError> {
        T::listen(self, port, backlog).await
    }
}

impl<T: UdpStack + ?Sized> UdpStack for &T {
    type Socket = T::Socket;

    async fn bind(&self, port: u16) -> Result<Self::Socket, StackError> {
        T::bind(self, port).await
    }
}

impl<T: Resolver + ?Sized> Resolver for &T {
    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, StackError> {
        T::resolve(self, name).await
    }
}
