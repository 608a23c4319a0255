//! `www` (mirage-skeleton's `static_website_tls`): serve a key-value store as a web site over
//! HTTPS, and optionally plain HTTP on a second port, which redirects to HTTPS (or, with
//! `--http-serve`, serves the site too: a plain-HTTP site, and the HTTP row of the benchmark).
//!
//! [`start`] is generic over the TCP stack, the site's store and the certificate store; the
//! crypto provider is the target's (ring on unix, rustls-rustcrypto on bare metal). Without a
//! certificate store it serves the built-in development certificate for `localhost` and says so.
//! The site is compiled in ([`site::HTDOCS`]) unless the target wires another store (`--kv DIR`
//! on unix).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod site;

use alloc::rc::Rc;
use alloc::sync::Arc;
use core::cell::Cell;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use morgana::args::{ArgError, ArgSpec, Args};
use morgana::{Clock, Duration, Key, KvRo, Platform, StackError, TcpListener, TcpStack};
use morgana_http::{Handler, Limits, RedirectToHttps, StaticFiles, serve, with_deadline};
use morgana_tls::rustls::crypto::CryptoProvider;
use morgana_tls::{ConfigError, Identity, TlsServer, TlsTime, server_config};

/// HTTPS port when none is given: 443 on bare metal, 8443 on a host (no root needed).
#[cfg(target_os = "none")]
pub const DEFAULT_PORT: &str = "443";
/// HTTPS port when none is given: 443 on bare metal, 8443 on a host (no root needed).
#[cfg(not(target_os = "none"))]
pub const DEFAULT_PORT: &str = "8443";

/// `--port`, `--http-port`, `--http-serve` and `--certs`.
pub const ARGS: &[ArgSpec] = &[
    ArgSpec::value("port", "PORT", "HTTPS port (0: any free port, shown in the log)").default(DEFAULT_PORT),
    ArgSpec::value("http-port", "PORT", "also serve plain HTTP on PORT, redirecting to HTTPS"),
    ArgSpec::flag("http-serve", "serve the site on --http-port as well, instead of redirecting to HTTPS"),
    ArgSpec::value(
        "certs",
        "DIR",
        "directory with server.pem and server.key [default: the built-in development certificate for localhost]",
    ),
];

/// Connections waiting to be accepted, per port.
const BACKLOG: usize = 128;

/// Connections served at once (HTTPS and plain HTTP together); more are closed on arrival.
pub const MAX_CONNECTIONS: usize = 256;

/// The certificate chain and key in a certificate store.
pub const CHAIN_KEY: &str = "/server.pem";
/// The private key in a certificate store.
pub const KEY_KEY: &str = "/server.key";

/// What `www` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// HTTPS port.
    pub port: u16,
    /// Plain HTTP port: redirects to HTTPS (or serves the site, with `http_serve`).
    pub http_port: Option<u16>,
    /// Serve the site on `http_port` instead of redirecting.
    pub http_serve: bool,
    /// Per-connection limits and timeouts.
    pub limits: Limits,
}

impl Config {
    /// Read the configuration from the runtime arguments.
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        let http_serve = args.flag("http-serve");
        let http_port = args.get_opt("http-port")?;
        if http_serve && http_port.is_none() {
            return Err(ArgError::Required("http-port"));
        }
        Ok(Self { port: args.get("port")?, http_port, http_serve, limits: Limits::default() })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self { port: 8443, http_port: None, http_serve: false, limits: Limits::default() }
    }
}

/// Why `www` could not start.
#[derive(Debug)]
pub enum Error {
    /// A port could not be opened.
    Listen(u16, StackError),
    /// The certificate or key is unusable.
    Certificate(ConfigError),
    /// Accepting connections failed for good.
    Accept(StackError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Listen(port, e) => {
                write!(f, "cannot listen on port {port}: {e} (choose another with --port)")
            }
            Self::Certificate(e) => {
                write!(f, "{e} (--certs DIR needs DIR/server.pem and DIR/server.key in PEM format)")
            }
            Self::Accept(e) => write!(f, "accepting connections failed: {e}"),
        }
    }
}

impl core::error::Error for Error {}

/// The identity to serve: from `certs` (`/server.pem`, `/server.key`), or the development
/// certificate (announced in the log) when there is no store.
pub async fn identity<C: KvRo>(certs: Option<&C>) -> Result<Identity, Error> {
    match certs {
        Some(kv) => {
            let (chain, key) =
                (Key::parse(CHAIN_KEY).unwrap_or_default(), Key::parse(KEY_KEY).unwrap_or_default());
            Identity::from_kv(kv, &chain, &key).await.map_err(Error::Certificate)
        }
        None => {
            log::warn!(
                "using the built-in development certificate for localhost (its key is public: pass --certs DIR for a real one)"
            );
            morgana_tls::dev::identity().map_err(Error::Certificate)
        }
    }
}

/// The address to show for a listener: the unspecified address reads as loopback.
fn shown(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

/// Serve `htdocs` over HTTPS on `stack` with `identity`, until accepting fails.
pub async fn start<P, S, K>(
    platform: P,
    stack: S,
    htdocs: K,
    identity: Identity,
    provider: Arc<CryptoProvider>,
    config: Config,
) -> Result<(), Error>
where
    P: Platform,
    S: TcpStack,
    K: KvRo + 'static,
{
    let clock = platform.clock();
    let time = TlsTime::new(clock.clone());
    let tls_config = server_config(provider, &time, identity).map_err(Error::Certificate)?;
    let tls = Rc::new(TlsServer::new(Arc::new(tls_config), time));
    let files = Rc::new(StaticFiles::new(htdocs));
    let limits = Rc::new(config.limits.clone());
    let live = Rc::new(Cell::new(0usize));
    let mut https = stack.listen(config.port, BACKLOG).await.map_err(|e| Error::Listen(config.port, e))?;
    if let Some(port) = config.http_port {
        let listener = stack.listen(port, BACKLOG).await.map_err(|e| Error::Listen(port, e))?;
        let at = shown(listener.local_addr());
        if config.http_serve {
            log::info!("serving http://{at}/");
            platform.spawn(serve_plain(
                platform.clone(),
                listener,
                files.clone(),
                limits.clone(),
                live.clone(),
            ));
        } else {
            log::info!("redirecting http://{at}/ to HTTPS");
            // The port actually bound: `--port 0` picks one.
            let redirect = Rc::new(RedirectToHttps::new(https.local_addr().port()));
            platform.spawn(serve_plain(platform.clone(), listener, redirect, limits.clone(), live.clone()));
        }
    }
    log::info!("serving https://{}/", shown(https.local_addr()));
    loop {
        let (conn, peer) = accept(&platform, &mut https).await.map_err(Error::Accept)?;
        let Some(slot) = Slot::take(&live, peer) else { continue };
        let (tls, files, limits, clock) = (tls.clone(), files.clone(), limits.clone(), clock.clone());
        platform.spawn(async move {
            let at = clock.now() + limits.header_timeout;
            match with_deadline(&clock, at, tls.accept(conn)).await {
                Some(Ok(session)) => match serve(session, &*files, &clock, &limits).await {
                    Ok(stats) => log::debug!("{peer}: {} requests", stats.requests),
                    Err(e) => log::debug!("{peer}: {e}"),
                },
                Some(Err(e)) => log::info!("{peer}: TLS handshake failed: {e}"),
                None => log::info!("{peer}: TLS handshake timed out"),
            }
            drop(slot);
        });
    }
}

/// One of the [`MAX_CONNECTIONS`] connections served at once, given back when dropped.
struct Slot(Rc<Cell<usize>>);

impl Slot {
    /// A slot for `peer`, or `None` (and a warning) when all are taken.
    fn take(live: &Rc<Cell<usize>>, peer: SocketAddr) -> Option<Self> {
        if live.get() >= MAX_CONNECTIONS {
            log::warn!("{peer}: refused, {MAX_CONNECTIONS} connections already open");
            return None;
        }
        live.set(live.get() + 1);
        Some(Self(live.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// The next connection; running out of descriptors or memory is waited out, not fatal.
async fn accept<P: Platform, L: TcpListener>(
    platform: &P,
    listener: &mut L,
) -> Result<(L::Connection, SocketAddr), StackError> {
    loop {
        match listener.accept().await {
            Err(StackError::NoResources) => {
                log::warn!("accept: out of resources; retrying in 100 ms");
                platform.clock().sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Accept plain HTTP connections and answer them with `handler`.
async fn serve_plain<P, L, H>(
    platform: P,
    mut listener: L,
    handler: Rc<H>,
    limits: Rc<Limits>,
    live: Rc<Cell<usize>>,
) where
    P: Platform,
    L: TcpListener + 'static,
    L::Connection: morgana::Flow<Error = StackError> + 'static,
    H: Handler + 'static,
{
    loop {
        let (conn, peer) = match accept(&platform, &mut listener).await {
            Ok(c) => c,
            Err(e) => {
                log::warn!("plain HTTP listener failed ({e}); port {} stops", listener.local_addr().port());
                return;
            }
        };
        let Some(slot) = Slot::take(&live, peer) else { continue };
        let (handler, limits, clock) = (handler.clone(), limits.clone(), platform.clock());
        platform.spawn(async move {
            if let Err(e) = serve(conn, &*handler, &clock, &limits).await {
                log::debug!("{peer}: {e}");
            }
            drop(slot);
        });
    }
}
