//! The default stack for a target, Mirage's `generic_stackv4v6`: one type for "whichever stack
//! `--net` picked".
//!
//! The hosted target can serve an app from host sockets (no root) or from this stack on a TAP
//! device, chosen at run time by `--net`. An app is generic over one `S: TcpStack`, so the
//! target hands it an [`Either`] of the two: every trait is implemented by a `match`, with no
//! `dyn` and no allocation on the data path, and connections, listeners, halves and UDP sockets
//! are `Either`s too. [`from_args`] makes the choice and builds the chosen side.
//!
//! ```
//! use morgana::args::{ArgError, Args, COMMON};
//! use morgana_tcpip::either::{Either, NetChoice};
//!
//! let args = Args::parse(&[COMMON], ["--net", "tap:tap0"]).unwrap();
//! assert_eq!(NetChoice::from_args(&args).unwrap(), NetChoice::Tap("tap0".into()));
//!
//! // A target's wiring: its host sockets on the left (none here), this stack over the device
//! // `--net tap:IFNAME` names on the right.
//! fn stack<P: morgana::Platform>(p: &P, args: &Args) -> Result<Either<(), morgana_tcpip::Stack>, ArgError> {
//!     let switch = morgana_mem::Switch::default();
//!     morgana_tcpip::either::from_args(p, args, || Ok(()), |_name| Ok(switch.port([2, 0, 0, 0, 0, 1])))
//! }
//! ```

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use embedded_io_async::{ErrorType, Read, Write};
use morgana::args::{ArgError, Args};
use morgana::stack::{Resolver, StackError, TcpListener, TcpStack, UdpSocket, UdpStack};
use morgana::{Flow, FlowWrite, Net, Platform};

use crate::{Config, Stack};

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

/// The stack `--net` asks for: `sockets()` (the target's host sockets) for `--net socket`, or
/// this stack over `device(IFNAME)` for `--net tap:IFNAME`, configured by `--ipv4`,
/// `--ipv4-gateway`, `--dhcp`, `--dns-server` and [`ARGS`](crate::ARGS), seeded from the
/// platform's RNG, its runner spawned on `platform`. Arguments are checked before the device is
/// opened.
pub fn from_args<P, L, N, E>(
    platform: &P,
    args: &Args,
    sockets: impl FnOnce() -> Result<L, E>,
    device: impl FnOnce(&str) -> Result<N, E>,
) -> Result<Either<L, Stack>, E>
where
    P: Platform,
    N: Net + 'static,
    E: From<ArgError>,
{
    match NetChoice::from_args(args)? {
        NetChoice::Socket => sockets().map(Either::Left),
        NetChoice::Tap(name) => {
            let config = Config::from_args(args)?;
            let dhcp = config.ipv4 == crate::Ipv4Mode::Dhcp;
            let net = device(&name)?;
            let stack = crate::spawn(platform, net, config);
            let m = stack.mac();
            let v4 = match stack.ipv4() {
                Some((a, p)) => format!("{a}/{p}"),
                None if dhcp => "DHCP".into(),
                None => "no IPv4 (pass --ipv4 ADDR/PREFIX or --dhcp)".into(),
            };
            let v6: Vec<String> = stack.ipv6().iter().map(|a| format!("{a}")).collect();
            log::info!(
                "{name}: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {v4}, {}",
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                v6.join(", ")
            );
            Ok(Either::Right(stack))
        }
    }
}

/// What `--net` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetChoice {
    /// `--net socket`: the host's own TCP/IP through its sockets (no root).
    Socket,
    /// `--net tap:IFNAME`: this stack on the named TAP device.
    Tap(String),
}

impl NetChoice {
    const EXPECTED: &'static str = "socket or tap:IFNAME (an interface name of 1 to 15 characters)";

    /// Parse `socket` or `tap:IFNAME`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.split_once(':') {
            None if s == "socket" => Some(Self::Socket),
            Some(("tap", name))
                if (1..=15).contains(&name.len())
                    && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':') =>
            {
                Some(Self::Tap(name.into()))
            }
            _ => None,
        }
    }

    /// Read `--net` (default `socket`).
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        Ok(args.get_opt_with("net", Self::EXPECTED, Self::parse)?.unwrap_or(Self::Socket))
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;
    use morgana::args::COMMON;

    #[test]
    fn net_choice_parses_and_explains() {
        let parse = |v: &str| NetChoice::from_args(&Args::parse(&[COMMON], ["--net", v]).unwrap());
        assert_eq!(parse("socket"), Ok(NetChoice::Socket));
        assert_eq!(parse("tap:tap0"), Ok(NetChoice::Tap("tap0".into())));
        assert_eq!(NetChoice::from_args(&Args::parse(&[COMMON], [""; 0]).unwrap()), Ok(NetChoice::Socket));
        for bad in ["tap:", "tap:this-name-is-too-long", "tap:a/b", "virtio", "tap"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("--net: expected socket or tap:IFNAME"), "{bad}: {e}");
        }
    }
}
