//! `SocketStack`: TCP, UDP and name resolution on the host's kernel sockets.
//!
//! This is the default network on unix, Mirage's `--net socket`: no root, no setup, the host's
//! addresses and routes. Every socket is non-blocking and registered with the thread's
//! [`Reactor`](crate::Reactor), so a task waiting for data parks in epoll with the rest.
//! Listeners take every local address (IPv4 and IPv6) unless `--ipv4` names one.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use morgana::embedded_io::ErrorType;
use morgana::embedded_io_async;
use morgana::{Flow, FlowWrite, Resolver, StackError, TcpListener, TcpStack, UdpSocket, UdpStack};

use crate::reactor::Async;
use crate::sys::{self, SockType};

/// Translate a host error into the stack's error set.
pub fn stack_error(e: &io::Error) -> StackError {
    use io::ErrorKind as K;
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => return StackError::NoResources,
        Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::ENETDOWN) => return StackError::NoRoute,
        _ => {}
    }
    match e.kind() {
        K::ConnectionRefused => StackError::ConnectionRefused,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            StackError::ConnectionReset
        }
        K::TimedOut => StackError::TimedOut,
        K::AddrInUse => StackError::AddrInUse,
        K::NotConnected => StackError::NotConnected,
        K::InvalidInput => StackError::InvalidInput,
        K::PermissionDenied => StackError::PermissionDenied,
        K::Unsupported => StackError::Unsupported,
        K::OutOfMemory => StackError::NoResources,
        _ => StackError::Io(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

fn err(e: io::Error) -> StackError {
    stack_error(&e)
}

/// TCP, UDP and DNS through the host's kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketStack {
    ipv4: Option<Ipv4Addr>,
}

impl SocketStack {
    /// A stack that listens on every local address, IPv4 and IPv6.
    pub fn new() -> Self {
        Self { ipv4: None }
    }

    /// A stack that listens on, and connects from, the host address `addr` only.
    pub fn with_ipv4(addr: Ipv4Addr) -> Self {
        Self { ipv4: Some(addr) }
    }

    /// The address listeners bind: `--ipv4`, else every address (dual-stack IPv6 falling back
    /// to IPv4 on a host without IPv6).
    fn bind_addrs(&self, port: u16) -> Vec<SocketAddr> {
        match self.ipv4 {
            Some(ip) => vec![SocketAddr::from((ip, port))],
            None => vec![
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
            ],
        }
    }

    fn bound_socket(&self, port: u16, ty: SockType) -> io::Result<std::os::fd::OwnedFd> {
        let mut last = io::Error::from(io::ErrorKind::AddrNotAvailable);
        for addr in self.bind_addrs(port) {
            let attempt = (|| -> io::Result<std::os::fd::OwnedFd> {
                let fd = sys::socket(&addr, ty)?;
                if ty == SockType::Stream {
                    sys::set_reuse_addr(fd.as_fd())?;
                }
                if addr.is_ipv6() {
                    sys::set_v6_only(fd.as_fd(), false)?;
                }
                sys::bind(fd.as_fd(), &addr)?;
                Ok(fd)
            })();
            match attempt {
                Ok(fd) => return Ok(fd),
                // No IPv6 on this host: try the next (IPv4) address.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)) => {
                    last = e
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it is.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl TcpStack for SocketStack {
    type Connection = SocketConnection;
    type Listener = SocketListener;

    async fn connect(&self, remote: SocketAddr) -> Result<SocketConnection, StackError> {
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(StackError::InvalidInput);
        }
        let fd = sys::socket(&remote, SockType::Stream).map_err(err)?;
        if let (Some(ip), true) = (self.ipv4, remote.is_ipv4()) {
            sys::bind(fd.as_fd(), &SocketAddr::from((ip, 0))).map_err(err)?;
        }
        let connected = sys::connect(fd.as_fd(), &remote).map_err(err)?;
        let io = Async::new(std::net::TcpStream::from(fd)).map_err(err)?;
        if !connected {
            // Writable means the handshake ended; SO_ERROR says how.
            io.write_with(|s| match s.take_error()? {
                Some(e) => Err(e),
                None => s.peer_addr().map(drop).map_err(|e| {
                    if e.kind() == io::ErrorKind::NotConnected { io::ErrorKind::WouldBlock.into() } else { e }
                }),
            })
            .await
            .map_err(err)?;
        }
        let _ = io.get_ref().set_nodelay(true);
        Ok(SocketConnection { io: Rc::new(io) })
    }

    async fn listen(&self, port: u16, backlog: usize) -> Result<SocketListener, StackError> {
        let fd = self.bound_socket(port, SockType::Stream).map_err(err)?;
        sys::listen(fd.as_fd(), backlog.max(1)).map_err(err)?;
        let listener = std::net::TcpListener::from(fd);
        let local = listener.local_addr().map_err(err)?;
        Ok(SocketListener { io: Async::new(listener).map_err(err)?, local })
    }
}

/// A listening TCP socket.
pub struct SocketListener {
    io: Async<std::net::TcpListener>,
    local: SocketAddr,
}

impl TcpListener for SocketListener {
    type Connection = SocketConnection;

    async fn accept(&mut self) -> Result<(SocketConnection, SocketAddr), StackError> {
        loop {
            let (stream, peer) = match self.io.read_with(|l| l.accept()).await {
                Ok(c) => c,
                // The client gave up before we got to it: not the listener's problem.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => return Err(err(e)),
            };
            stream.set_nonblocking(true).map_err(err)?;
            let _ = stream.set_nodelay(true);
            let io = Async::new(stream).map_err(err)?;
            return Ok((SocketConnection { io: Rc::new(io) }, canonical(peer)));
        }
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

type Stream = Rc<Async<std::net::TcpStream>>;

async fn read(io: &Stream, buf: &mut [u8]) -> Result<usize, StackError> {
    if buf.is_empty() {
        return Ok(0);
    }
    io.read_with(|mut s| s.read(buf)).await.map_err(err)
}

async fn write(io: &Stream, buf: &[u8]) -> Result<usize, StackError> {
    if buf.is_empty() {
        return Ok(0);
    }
    io.write_with(|mut s| s.write(buf)).await.map_err(err)
}

fn shutdown_write(io: &Stream) -> Result<(), StackError> {
    io.get_ref().shutdown(Shutdown::Write).map_err(err)
}

/// An established TCP connection.
pub struct SocketConnection {
    io: Stream,
}

impl SocketConnection {
    /// The peer's address.
    pub fn peer_addr(&self) -> Result<SocketAddr, StackError> {
        self.io.get_ref().peer_addr().map(canonical).map_err(err)
    }

    /// Our address.
    pub fn local_addr(&self) -> Result<SocketAddr, StackError> {
        self.io.get_ref().local_addr().map(canonical).map_err(err)
    }
}

/// The reading half of a [`SocketConnection`].
pub struct SocketReadHalf {
    io: Stream,
}

/// The writing half of a [`SocketConnection`].
pub struct SocketWriteHalf {
    io: Stream,
}

macro_rules! stream_io {
    ($($t:ty),*) => {$(
        impl ErrorType for $t {
            type Error = StackError;
        }
    )*};
}
stream_io!(SocketConnection, SocketReadHalf, SocketWriteHalf);

impl embedded_io_async::Read for SocketConnection {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, StackError> {
        read(&self.io, buf).await
    }
}

impl embedded_io_async::Read for SocketReadHalf {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, StackError> {
        read(&self.io, buf).await
    }
}

impl embedded_io_async::Write for SocketConnection {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, StackError> {
        write(&self.io, buf).await
    }

    async fn flush(&mut self) -> Result<(), StackError> {
        // The kernel sends what was written without being asked.
        Ok(())
    }
}

impl embedded_io_async::Write for SocketWriteHalf {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, StackError> {
        write(&self.io, buf).await
    }

    async fn flush(&mut self) -> Result<(), StackError> {
        Ok(())
    }
}

impl FlowWrite for SocketConnection {
    async fn shutdown_write(&mut self) -> Result<(), StackError> {
        shutdown_write(&self.io)
    }
}

impl FlowWrite for SocketWriteHalf {
    async fn shutdown_write(&mut self) -> Result<(), StackError> {
        shutdown_write(&self.io)
    }
}

impl Flow for SocketConnection {
    type ReadHalf = SocketReadHalf;
    type WriteHalf = SocketWriteHalf;

    fn split(self) -> (SocketReadHalf, SocketWriteHalf) {
        (SocketReadHalf { io: self.io.clone() }, SocketWriteHalf { io: self.io })
    }
}

impl UdpStack for SocketStack {
    type Socket = SocketUdp;

    async fn bind(&self, port: u16) -> Result<SocketUdp, StackError> {
        let fd = self.bound_socket(port, SockType::Datagram).map_err(err)?;
        let sock = std::net::UdpSocket::from(fd);
        let local = sock.local_addr().map_err(err)?;
        Ok(SocketUdp { io: Async::new(sock).map_err(err)?, local })
    }
}

/// A bound UDP socket.
pub struct SocketUdp {
    io: Async<std::net::UdpSocket>,
    local: SocketAddr,
}

impl UdpSocket for SocketUdp {
    async fn send_to(&mut self, data: &[u8], remote: SocketAddr) -> Result<(), StackError> {
        // A dual-stack socket reaches IPv4 peers through IPv4-mapped addresses.
        let remote = match (self.local, remote) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
                SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
            }
            _ => remote,
        };
        let sent = self.io.write_with(|s| s.send_to(data, remote)).await.map_err(|e| {
            if e.raw_os_error() == Some(libc::EMSGSIZE) { StackError::InvalidInput } else { err(e) }
        })?;
        if sent == data.len() { Ok(()) } else { Err(StackError::Io(libc::EMSGSIZE)) }
    }

    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, SocketAddr), StackError> {
        let (n, from) = self.io.read_with(|s| s.recv_from(buf)).await.map_err(err)?;
        Ok((n, canonical(from)))
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Whether `name` could be a host name (the host's resolver decides whether it is one).
fn plausible_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

type Answer = Arc<Mutex<Option<io::Result<Vec<IpAddr>>>>>;

impl Resolver for SocketStack {
    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, StackError> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        if !plausible_host_name(name) {
            return Err(StackError::InvalidInput);
        }
        // getaddrinfo blocks (files, DNS); run it on a helper thread that signals a socket the
        // event loop watches, so the other tasks keep running meanwhile.
        let (ours, theirs) = UnixStream::pair().map_err(err)?;
        ours.set_nonblocking(true).map_err(err)?;
        let answer: Answer = Arc::default();
        let (slot, query) = (answer.clone(), name.to_string());
        std::thread::Builder::new()
            .name("morgana-resolve".into())
            .spawn(move || {
                let result = (query.as_str(), 0).to_socket_addrs().map(|it| it.map(|a| a.ip()).collect());
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(result);
                }
                // Closing our end on return wakes the event loop even if this write fails.
                let _ = (&theirs).write_all(&[1]);
            })
            .map_err(|_| StackError::NoResources)?;
        let ours = Async::new(ours).map_err(err)?;
        let _ = ours.read_with(|mut s| s.read(&mut [0u8; 1])).await;
        let result = answer.lock().ok().and_then(|mut a| a.take());
        match result {
            Some(Ok(ips)) => {
                let mut unique: Vec<IpAddr> = Vec::new();
                for ip in ips {
                    if !unique.contains(&ip) {
                        unique.push(ip);
                    }
                }
                if unique.is_empty() { Err(StackError::NameNotFound) } else { Ok(unique) }
            }
            // getaddrinfo's errors (no such name, no answer, no server) all mean "not found" here.
            Some(Err(_)) | None => Err(StackError::NameNotFound),
        }
    }
}
