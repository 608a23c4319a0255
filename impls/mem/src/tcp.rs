//! `MemTcp`: an in-memory [`TcpStack`] whose connections are [`pipe`](crate::pipe)s.
//!
//! A [`MemTcpNet`] is a set of hosts, each with one IP address; a host listens on a port and
//! another connects to `(ip, port)`, getting the two ends of a bounded pipe. No frames, no
//! retransmissions: this is for testing apps that are generic over `TcpStack` end to end on the
//! virtual clock, fast; `morgana-tcpip` on the mem switch is the real protocol.
//!
//! ```
//! use embedded_io_async::{Read, Write};
//! use morgana::{Flow, TcpListener, TcpStack};
//! use morgana_mem::MemTcpNet;
//!
//! # let time = morgana_rt::VirtualTime::new();
//! # morgana_rt::Executor::new(time.clone()).block_on(&mut time.park(), async {
//! let net = MemTcpNet::new();
//! let (server, client) = (net.host([10, 0, 0, 1]), net.host([10, 0, 0, 2]));
//! let mut listener = server.listen(80, 4).await.unwrap();
//! let mut conn = client.connect("10.0.0.1:80".parse().unwrap()).await.unwrap();
//! let (mut accepted, peer) = listener.accept().await.unwrap();
//! assert_eq!(peer.ip(), core::net::IpAddr::from([10, 0, 0, 2]));
//! conn.write_all(b"hi").await.unwrap();
//! let mut buf = [0u8; 2];
//! accepted.read_exact(&mut buf).await.unwrap();
//! assert_eq!(&buf, b"hi");
//! # }).unwrap();
//! ```

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::poll_fn;
use core::net::{IpAddr, SocketAddr};
use core::task::{Poll, Waker};

use morgana::{Resolver, StackError, TcpListener, TcpStack};

use crate::pipe::{PipeEnd, pipe_chunked};

/// Bytes each direction of a connection buffers by default (a typical socket buffer).
pub const DEFAULT_BUFFER: usize = 64 * 1024;

struct Listening {
    addr: SocketAddr,
    backlog: usize,
    queue: VecDeque<(PipeEnd, SocketAddr)>,
    waker: Option<Waker>,
}

struct Fabric {
    listeners: Vec<Listening>,
    names: Vec<(String, IpAddr)>,
    next_port: u16,
    buffer: usize,
    chunk: usize,
}

impl Fabric {
    fn ephemeral_port(&mut self) -> u16 {
        let p = self.next_port;
        self.next_port = if p == u16::MAX { 49152 } else { p + 1 };
        p
    }
}

/// A network of in-memory hosts.
#[derive(Clone)]
pub struct MemTcpNet {
    fabric: Rc<RefCell<Fabric>>,
}

impl Default for MemTcpNet {
    fn default() -> Self {
        Self::new()
    }
}

impl MemTcpNet {
    /// A network whose connections buffer 64 KiB (`DEFAULT_BUFFER`) each way.
    pub fn new() -> Self {
        Self::with_buffers(DEFAULT_BUFFER, usize::MAX)
    }

    /// A network whose connections buffer `buffer` bytes each way and move at most `chunk`
    /// bytes per read or write.
    pub fn with_buffers(buffer: usize, chunk: usize) -> Self {
        Self {
            fabric: Rc::new(RefCell::new(Fabric {
                listeners: Vec::new(),
                names: Vec::new(),
                next_port: 49152,
                buffer,
                chunk,
            })),
        }
    }

    /// The host with address `ip` on this network.
    pub fn host(&self, ip: impl Into<IpAddr>) -> MemTcp {
        MemTcp { fabric: self.fabric.clone(), ip: ip.into() }
    }

    /// Make `name` resolve to `ip` for every host.
    pub fn add_name(&self, name: &str, ip: impl Into<IpAddr>) {
        self.fabric.borrow_mut().names.push((String::from(name), ip.into()));
    }
}

/// One host of a [`MemTcpNet`]: a [`TcpStack`] and a [`Resolver`].
#[derive(Clone)]
pub struct MemTcp {
    fabric: Rc<RefCell<Fabric>>,
    ip: IpAddr,
}

impl MemTcp {
    /// This host's address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl TcpStack for MemTcp {
    type Connection = PipeEnd;
    type Listener = MemListener;

    async fn connect(&self, remote: SocketAddr) -> Result<PipeEnd, StackError> {
        if remote.port() == 0 {
            return Err(StackError::InvalidInput);
        }
        // Loopback reaches this host's own listeners.
        let ip = if remote.ip().is_loopback() { self.ip } else { remote.ip() };
        let mut f = self.fabric.borrow_mut();
        let local = SocketAddr::new(self.ip, f.ephemeral_port());
        let (buffer, chunk) = (f.buffer, f.chunk);
        let l = f
            .listeners
            .iter_mut()
            .find(|l| l.addr == SocketAddr::new(ip, remote.port()))
            .ok_or(StackError::ConnectionRefused)?;
        if l.queue.len() >= l.backlog {
            return Err(StackError::ConnectionRefused);
        }
        let (ours, theirs) = pipe_chunked(buffer, chunk);
        l.queue.push_back((theirs, local));
        if let Some(w) = l.waker.take() {
            w.wake();
        }
        Ok(ours)
    }

    async fn listen(&self, port: u16, backlog: usize) -> Result<MemListener, StackError> {
        let mut f = self.fabric.borrow_mut();
        let port = if port == 0 { f.ephemeral_port() } else { port };
        let addr = SocketAddr::new(self.ip, port);
        if f.listeners.iter().any(|l| l.addr == addr) {
            return Err(StackError::AddrInUse);
        }
        f.listeners.push(Listening { addr, backlog: backlog.max(1), queue: VecDeque::new(), waker: None });
        Ok(MemListener { fabric: self.fabric.clone(), addr })
    }
}

impl Resolver for MemTcp {
    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, StackError> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let f = self.fabric.borrow();
        let ips: Vec<IpAddr> = f.names.iter().filter(|(n, _)| n == name).map(|(_, ip)| *ip).collect();
        if ips.is_empty() { Err(StackError::NameNotFound) } else { Ok(ips) }
    }
}

/// A listening port on a [`MemTcp`] host; dropping it frees the port and refuses whatever was
/// queued.
pub struct MemListener {
    fabric: Rc<RefCell<Fabric>>,
    addr: SocketAddr,
}

impl TcpListener for MemListener {
    type Connection = PipeEnd;

    async fn accept(&mut self) -> Result<(PipeEnd, SocketAddr), StackError> {
        poll_fn(|cx| {
            let mut f = self.fabric.borrow_mut();
            let Some(l) = f.listeners.iter_mut().find(|l| l.addr == self.addr) else {
                return Poll::Ready(Err(StackError::NotConnected));
            };
            match l.queue.pop_front() {
                Some(c) => Poll::Ready(Ok(c)),
                None => {
                    l.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MemListener {
    fn drop(&mut self) {
        // Take the queue out first: dropping its pipes must not happen under the borrow.
        let gone = {
            let mut f = self.fabric.borrow_mut();
            let i = f.listeners.iter().position(|l| l.addr == self.addr);
            i.map(|i| f.listeners.swap_remove(i))
        };
        drop(gone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `f` to completion on the executor and virtual time.
    fn block_on<F: core::future::Future>(f: F) -> F::Output {
        let time = morgana_rt::VirtualTime::new();
        morgana_rt::Executor::new(time.clone()).block_on(&mut time.park(), f).expect("no deadlock")
    }
    use embedded_io_async::{Read, Write};
    use morgana::FlowWrite;

    #[test]
    fn connect_refused_without_listener_and_port_reuse_after_drop() {
        let net = MemTcpNet::new();
        let a = net.host([10, 0, 0, 1]);
        block_on(async {
            let to = "10.0.0.1:443".parse().unwrap();
            assert_eq!(a.connect(to).await.err(), Some(StackError::ConnectionRefused));
            let l = a.listen(443, 1).await.unwrap();
            assert_eq!(a.listen(443, 1).await.err(), Some(StackError::AddrInUse));
            let _c = a.connect(to).await.unwrap();
            assert_eq!(a.connect(to).await.err(), Some(StackError::ConnectionRefused), "backlog full");
            drop(l);
            assert!(a.listen(443, 1).await.is_ok(), "the port is free again");
        });
    }

    #[test]
    fn names_resolve_and_loopback_reaches_self() {
        let net = MemTcpNet::new();
        net.add_name("www.test", [10, 0, 0, 1]);
        let a = net.host([10, 0, 0, 1]);
        block_on(async {
            assert_eq!(a.resolve("www.test").await.unwrap(), [IpAddr::from([10, 0, 0, 1])]);
            assert_eq!(a.resolve("10.1.2.3").await.unwrap(), [IpAddr::from([10, 1, 2, 3])]);
            assert_eq!(a.resolve("nope.test").await, Err(StackError::NameNotFound));
            let mut l = a.listen(7, 1).await.unwrap();
            let mut c = a.connect("127.0.0.1:7".parse().unwrap()).await.unwrap();
            let (mut s, _) = l.accept().await.unwrap();
            c.write_all(b"x").await.unwrap();
            c.shutdown_write().await.unwrap();
            let mut buf = [0u8; 4];
            assert_eq!(s.read(&mut buf).await.unwrap(), 1);
            assert_eq!(s.read(&mut buf).await.unwrap(), 0);
        });
    }
}
