//! `TlsStack`: TLS over any `TcpStack`, and itself a `TcpStack` (a functor, as in Mirage).
//!
//! An app written generic over [`TcpStack`] runs over TLS unchanged when it is given a
//! [`TlsStack`] instead of the stack below: `listen` gives a [`TlsStackListener`] (a
//! [`TlsListener`]: handshakes side by side, each under the handshake deadline, so a silent
//! client does not stall `accept`), and `connect` runs the client handshake under the same
//! deadline. Accepted and connected sessions are one type, [`TlsConnection`], whose errors are
//! [`StackError`]s: the flow's own as they were, TLS failures as [`StackError::Tls`] with their
//! reason ([`TlsError::reason`]; the details, names included, are logged at debug level).

use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, SocketAddr};

use embedded_io_async::{Read, Write};
use morgana::time::{TimedOut, timeout};
use morgana::{Clock, Duration, Flow, FlowWrite, Resolver, StackError, TcpListener, TcpStack, WallClock};
use rustls::client::UnbufferedClientConnection;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{self, ServerName};
use rustls::server::UnbufferedServerConnection;
use rustls::{ProtocolVersion, RootCertStore};

use crate::{
    ClientStream, ConfigError, Identity, ServerStream, TlsClient, TlsError, TlsListener, TlsReader,
    TlsServer, TlsTime, TlsWriter, client_config, server_config,
};

/// The handshake deadline of a [`TlsStack`] unless told otherwise: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl From<TlsError<StackError>> for StackError {
    /// The flow's error as it was; a write after `close_notify` is [`StackError::NotConnected`],
    /// a bad server name [`StackError::InvalidInput`], the rest [`StackError::Tls`].
    fn from(e: TlsError<StackError>) -> Self {
        match e {
            TlsError::Transport(e) => e,
            TlsError::Closed => Self::NotConnected,
            TlsError::InvalidServerName => Self::InvalidInput,
            e => Self::Tls(e.reason()),
        }
    }
}

/// The name a client session checks the server's certificate against.
#[derive(Clone)]
enum ServerNames {
    /// The IP address connected to.
    Address,
    Fixed(ServerName<'static>),
    Resolve(Rc<dyn Fn(SocketAddr) -> ServerName<'static>>),
}

/// TLS over the TCP stack `S`, with time and deadlines from the clock `C`: a [`TcpStack`].
///
/// `listen` needs a server side ([`with_identity`](Self::with_identity) or
/// [`with_server`](Self::with_server)), `connect` a client side ([`with_roots`](Self::with_roots)
/// or [`with_client`](Self::with_client)); without it the call fails with
/// [`StackError::Unsupported`]. `connect` checks the server's certificate against the IP address
/// it connects to (as `curl https://127.0.0.1/` does) unless told a name
/// ([`with_server_name`](Self::with_server_name), [`with_server_names`](Self::with_server_names)).
/// Cloning is cheap: the clones share the configurations.
///
/// An echo server over TLS, on the in-memory stack, and a client through the same stack:
///
/// ```
/// use std::error::Error;
/// use std::sync::Arc;
/// use futures::future::{Either, select};
/// use morgana::embedded_io_async::{Read, Write};
/// use morgana::{Platform, TcpStack};
/// use morgana_mem::sim::{Sim, SimPlatform};
/// use morgana_tls::{TlsStack, dev, roots_from_pem};
///
/// async fn echo_over_tls(p: SimPlatform) -> Result<[u8; 5], Box<dyn Error>> {
///     let (provider, identity) = (Arc::new(rustls::crypto::ring::default_provider()), dev::identity()?);
///     let roots = roots_from_pem(dev::CA_PEM, "dev CA")?;
///     let stack = morgana_mem::MemTcpNet::new().host([127, 0, 0, 1]);
///     let tls = TlsStack::new(stack, p.clock())
///         .with_identity(provider.clone(), identity)? // listen: serve this certificate
///         .with_roots(provider, roots)? // connect: trust these CAs
///         .with_server_name("localhost".try_into()?); // connect: check this name (default: the address)
///     let server = echo::start(p, tls.clone(), echo::Config { port: 7, backlog: 8 });
///     let client = async {
///         let mut conn = tls.connect("127.0.0.1:7".parse()?).await?;
///         conn.write_all(b"hello").await?;
///         let mut buf = [0; 5];
///         conn.read_exact(&mut buf).await?;
///         Ok(buf)
///     };
///     match select(std::pin::pin!(server), std::pin::pin!(client)).await {
///         Either::Left((stopped, _)) => Err(format!("echo stopped: {stopped:?}").into()),
///         Either::Right((echoed, _)) => echoed,
///     }
/// }
///
/// let out = Sim::new(1).run(echo_over_tls);
/// assert_eq!(&out.result.unwrap().unwrap(), b"hello");
/// ```
#[derive(Clone)]
pub struct TlsStack<S, C> {
    inner: S,
    clock: C,
    server: Option<Rc<TlsServer<C>>>,
    client: Option<Rc<TlsClient<C>>>,
    names: ServerNames,
    handshake_timeout: Duration,
    max_in_flight: usize,
}

impl<S, C: Clock + WallClock + Clone> TlsStack<S, C> {
    /// TLS over `inner`, its deadlines on `clock` and certificates checked at its wall time;
    /// neither side configured yet.
    pub fn new(inner: S, clock: C) -> Self {
        Self {
            inner,
            clock,
            server: None,
            client: None,
            names: ServerNames::Address,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_in_flight: crate::DEFAULT_MAX_IN_FLIGHT,
        }
    }

    /// Serve `identity` on what `listen` accepts, with [`server_config`]'s settings.
    pub fn with_identity(
        self,
        provider: Arc<CryptoProvider>,
        identity: Identity,
    ) -> Result<Self, ConfigError> {
        let time = TlsTime::new(self.clock.clone());
        let config = server_config(provider, &time, identity)?;
        Ok(self.with_server(TlsServer::new(Arc::new(config), time)))
    }

    /// Trust `roots` on what `connect` opens, with [`client_config`]'s settings.
    pub fn with_roots(
        self,
        provider: Arc<CryptoProvider>,
        roots: RootCertStore,
    ) -> Result<Self, ConfigError> {
        let time = TlsTime::new(self.clock.clone());
        let config = client_config(provider, &time, roots)?;
        Ok(self.with_client(TlsClient::new(Arc::new(config), time)))
    }

    /// Run `server`'s handshake on what `listen` accepts (a configuration of your own: other
    /// ALPN protocols, client certificates).
    pub fn with_server(mut self, server: TlsServer<C>) -> Self {
        self.server = Some(Rc::new(server));
        self
    }

    /// Run `client`'s handshake on what `connect` opens.
    pub fn with_client(mut self, client: TlsClient<C>) -> Self {
        self.client = Some(Rc::new(client));
        self
    }

    /// Check every server's certificate against `name`, whatever address `connect` is given:
    /// e.g. `"localhost".try_into()?`.
    pub fn with_server_name(mut self, name: ServerName<'static>) -> Self {
        self.names = ServerNames::Fixed(name);
        self
    }

    /// Check the certificate of the server at each address against the name `name_of` gives
    /// for it (e.g. the name the app resolved to that address).
    pub fn with_server_names(
        mut self,
        name_of: impl Fn(SocketAddr) -> ServerName<'static> + 'static,
    ) -> Self {
        self.names = ServerNames::Resolve(Rc::new(name_of));
        self
    }

    /// Give up on a handshake, either side, after `limit` (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]): a listener drops the connection and counts it, `connect`
    /// fails with [`StackError::TimedOut`]. The TCP connect before it has the stack's own timeout.
    pub fn with_handshake_timeout(mut self, limit: Duration) -> Self {
        self.handshake_timeout = limit;
        self
    }

    /// Run at most `n` server handshakes at once on each listener (default
    /// [`DEFAULT_MAX_IN_FLIGHT`](crate::DEFAULT_MAX_IN_FLIGHT); see
    /// [`TlsListener::with_max_in_flight`]).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// The stack below.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn server_name(&self, remote: SocketAddr) -> ServerName<'static> {
        match &self.names {
            ServerNames::Address => ServerName::IpAddress(match remote.ip() {
                IpAddr::V4(a) => pki_types::IpAddr::V4(a.octets().into()),
                IpAddr::V6(a) => pki_types::IpAddr::V6(a.segments().into()),
            }),
            ServerNames::Fixed(name) => name.clone(),
            ServerNames::Resolve(name_of) => name_of(remote),
        }
    }
}

impl<S, C> TcpStack for TlsStack<S, C>
where
    S: TcpStack,
    C: Clock + WallClock + Clone + 'static,
{
    type Connection = TlsConnection<S::Connection>;
    type Listener = TlsStackListener<S::Listener, C>;

    /// Connect to `remote` and run the client handshake, checking the server's certificate
    /// against its name (see [`TlsStack`]).
    async fn connect(&self, remote: SocketAddr) -> Result<Self::Connection, StackError> {
        let client = self.client.as_ref().ok_or(StackError::Unsupported)?;
        let name = self.server_name(remote);
        let conn = self.inner.connect(remote).await?;
        match timeout(&self.clock, self.handshake_timeout, client.connect_to(name.clone(), conn)).await {
            Ok(Ok(tls)) => Ok(TlsConnection::Client(tls)),
            Ok(Err(e)) => {
                log::debug!("{remote} ({}): TLS handshake failed: {e}", ShowName(&name));
                Err(e.into())
            }
            Err(TimedOut) => {
                log::debug!("{remote} ({}): TLS handshake timed out", ShowName(&name));
                Err(StackError::TimedOut)
            }
        }
    }

    /// Listen on `port` of the stack below; `accept` gives the sessions whose handshakes
    /// completed.
    async fn listen(&self, port: u16, backlog: usize) -> Result<Self::Listener, StackError> {
        let server = self.server.clone().ok_or(StackError::Unsupported)?;
        let inner = self.inner.listen(port, backlog).await?;
        let listener = TlsListener::shared(inner, server, self.clock.clone(), self.handshake_timeout);
        Ok(TlsStackListener { inner: listener.with_max_in_flight(self.max_in_flight) })
    }
}

impl<S: Resolver, C> Resolver for TlsStack<S, C> {
    /// The stack below's resolver.
    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, StackError> {
        self.inner.resolve(name).await
    }
}

/// A server name, printed (rustls prints it only with `std`).
struct ShowName<'a>(&'a ServerName<'a>);

impl fmt::Display for ShowName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ServerName::DnsName(name) => f.write_str(name.as_ref()),
            ServerName::IpAddress(pki_types::IpAddr::V4(a)) => core::net::Ipv4Addr::from(*a.as_ref()).fmt(f),
            ServerName::IpAddress(pki_types::IpAddr::V6(a)) => core::net::Ipv6Addr::from(*a.as_ref()).fmt(f),
            _ => f.write_str("?"),
        }
    }
}

/// The listener of a [`TlsStack`]: a [`TlsListener`] whose sessions are [`TlsConnection`]s.
pub struct TlsStackListener<L: TcpListener, C> {
    inner: TlsListener<L, C>,
}

impl<L, C> TlsStackListener<L, C>
where
    L: TcpListener,
    L::Connection: Flow<Error = StackError> + 'static,
    C: Clock + WallClock + Clone + 'static,
{
    /// Handshakes in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    /// Handshakes that failed so far.
    pub fn failed(&self) -> u64 {
        self.inner.failed()
    }

    /// Handshakes that ran out of time so far.
    pub fn timed_out(&self) -> u64 {
        self.inner.timed_out()
    }
}

impl<L, C> TcpListener for TlsStackListener<L, C>
where
    L: TcpListener,
    L::Connection: Flow<Error = StackError> + 'static,
    C: Clock + WallClock + Clone + 'static,
{
    type Connection = TlsConnection<L::Connection>;

    async fn accept(&mut self) -> Result<(Self::Connection, SocketAddr), StackError> {
        let (session, peer) = self.inner.accept().await?;
        Ok((TlsConnection::Server(session), peer))
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }
}

/// A TLS session of a [`TlsStack`], accepted or connected, over the stack's connection `F`.
pub enum TlsConnection<F> {
    /// Accepted by a listener.
    Server(ServerStream<F>),
    /// Opened by `connect`.
    Client(ClientStream<F>),
}

/// The reading half of a split [`TlsConnection`].
pub enum TlsConnectionReader<R> {
    /// Of an accepted session.
    Server(TlsReader<R, UnbufferedServerConnection>),
    /// Of a connected session.
    Client(TlsReader<R, UnbufferedClientConnection>),
}

/// The writing half of a split [`TlsConnection`].
pub enum TlsConnectionWriter<W> {
    /// Of an accepted session.
    Server(TlsWriter<W, UnbufferedServerConnection>),
    /// Of a connected session.
    Client(TlsWriter<W, UnbufferedClientConnection>),
}

/// `$body` on whichever side `$value` is, with its TLS error made a `StackError`.
macro_rules! either_side {
    ($value:expr, $s:ident => $body:expr) => {
        match $value {
            Self::Server($s) => $body.map_err(StackError::from),
            Self::Client($s) => $body.map_err(StackError::from),
        }
    };
}

impl<F: Flow> TlsConnection<F> {
    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        match self {
            Self::Server(s) => s.protocol_version(),
            Self::Client(s) => s.protocol_version(),
        }
    }

    /// The ALPN protocol both sides agreed on.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        match self {
            Self::Server(s) => s.alpn_protocol(),
            Self::Client(s) => s.alpn_protocol(),
        }
    }
}

impl<F> embedded_io::ErrorType for TlsConnection<F> {
    type Error = StackError;
}

impl<R> embedded_io::ErrorType for TlsConnectionReader<R> {
    type Error = StackError;
}

impl<W> embedded_io::ErrorType for TlsConnectionWriter<W> {
    type Error = StackError;
}

impl<F: Flow<Error = StackError>> Read for TlsConnection<F> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, StackError> {
        either_side!(self, s => s.read(buf).await)
    }
}

impl<F: Flow<Error = StackError>> Write for TlsConnection<F> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, StackError> {
        either_side!(self, s => s.write(buf).await)
    }

    async fn flush(&mut self) -> Result<(), StackError> {
        either_side!(self, s => s.flush().await)
    }
}

impl<F: Flow<Error = StackError>> FlowWrite for TlsConnection<F> {
    /// Send `close_notify`, then half-close the connection below.
    async fn shutdown_write(&mut self) -> Result<(), StackError> {
        either_side!(self, s => s.shutdown_write().await)
    }
}

impl<F: Flow<Error = StackError>> Flow for TlsConnection<F> {
    type ReadHalf = TlsConnectionReader<F::ReadHalf>;
    type WriteHalf = TlsConnectionWriter<F::WriteHalf>;

    fn split(self) -> (Self::ReadHalf, Self::WriteHalf) {
        match self {
            Self::Server(s) => {
                let (r, w) = s.split();
                (TlsConnectionReader::Server(r), TlsConnectionWriter::Server(w))
            }
            Self::Client(s) => {
                let (r, w) = s.split();
                (TlsConnectionReader::Client(r), TlsConnectionWriter::Client(w))
            }
        }
    }
}

impl<R: Read<Error = StackError>> Read for TlsConnectionReader<R> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, StackError> {
        either_side!(self, s => s.read(buf).await)
    }
}

impl<W: FlowWrite<Error = StackError>> Write for TlsConnectionWriter<W> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, StackError> {
        either_side!(self, s => s.write(buf).await)
    }

    async fn flush(&mut self) -> Result<(), StackError> {
        either_side!(self, s => s.flush().await)
    }
}

impl<W: FlowWrite<Error = StackError>> FlowWrite for TlsConnectionWriter<W> {
    /// Send `close_notify`, then half-close the connection below.
    async fn shutdown_write(&mut self) -> Result<(), StackError> {
        either_side!(self, s => s.shutdown_write().await)
    }
}
