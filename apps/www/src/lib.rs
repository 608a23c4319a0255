//! `www` (mirage-skeleton's `static_website_tls`): serve a key-value store as a web site over
//! HTTPS, and optionally redirect plain HTTP to it.
//!
//! [`start`] is generic over the TCP stack, the site's store and the certificate store; the
//! crypto provider is the target's (ring on unix, rustls-rustcrypto on bare metal). Without a
//! certificate store it serves the built-in development certificate for `localhost` and says so.
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
use morgana::{Clock, Key, KvRo, Platform, StackError, TcpListener, TcpStack};
use morgana_http::{Handler, Limits, RedirectToHttps, StaticFiles, serve, with_deadline};
use morgana_tls::rustls::crypto::CryptoProvider;
use morgana_tls::{ConfigError, Identity, TlsServer, TlsTime, server_config};

/// HTTPS port when none is given: 443 on bare metal, 8443 on a host (no root needed).
#[cfg(target_os = "none")]
pub const DEFAULT_PORT: &str = "443";
/// HTTPS port when none is given: 443 on bare metal, 8443 on a host (no root needed).
#[cfg(not(target_os = "none"))]
pub const DEFAULT_PORT: &str = "8443";

/// `--port`, `--http-port` and `--certs`.
pub const ARGS: &[ArgSpec] = &[
    ArgSpec::value("port", "PORT", "HTTPS port").default(DEFAULT_PORT),
    ArgSpec::value("http-port", "PORT", "also serve plain HTTP on PORT, redirecting to HTTPS"),
    ArgSpec::value(
        "certs",
        "DIR",
        "directory with server.pem and server.key [default: the built-in development certificate for localhost]",
    ),
];

/// Connections served at once; more are closed on arrival.
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
    /// Plain HTTP port that redirects to HTTPS.
    pub http_port: Option<u16>,
    /// Per-connection limits and timeouts.
    pub limits: Limits,
}

impl Config {
    /// Read the configuration from the runtime arguments.
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        Ok(Self { port: args.get("port")?, http_port: args.get_opt("http-port")?, limits: Limits::default() })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self { port: 8443, http_port: None, limits: Limits::default() }
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
    let mut https = stack.listen(config.port, 64).await.map_err(|e| Error::Listen(config.port, e))?;
    if let Some(port) = config.http_port {
        let listener = stack.listen(port, 64).await.map_err(|e| Error::Listen(port, e))?;
        log::info!("redirecting http://{}/ to HTTPS", shown(listener.local_addr()));
        let redirect = Rc::new(RedirectToHttps::new(config.port));
        platform.spawn(serve_plain(platform.clone(), listener, redirect, limits.clone()));
    }
    log::info!("serving https://{}/", shown(https.local_addr()));
    let live = Rc::new(Cell::new(0usize));
    loop {
        let (conn, peer) = https.accept().await.map_err(Error::Accept)?;
        if live.get() >= MAX_CONNECTIONS {
            log::warn!("{peer}: refused, {MAX_CONNECTIONS} connections already open");
            drop(conn);
            continue;
        }
        live.set(live.get() + 1);
        let (tls, files, limits, clock, live) =
            (tls.clone(), files.clone(), limits.clone(), clock.clone(), live.clone());
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
            live.set(live.get() - 1);
        });
    }
}

/// Accept plain HTTP connections and answer them with `handler`.
async fn serve_plain<P, L, H>(platform: P, mut listener: L, handler: Rc<H>, limits: Rc<Limits>)
where
    P: Platform,
    L: TcpListener + 'static,
    L::Connection: morgana::Flow<Error = StackError> + 'static,
    H: Handler + 'static,
{
    loop {
        let Ok((conn, peer)) = listener.accept().await else {
            log::warn!("plain HTTP listener failed; redirects stop");
            return;
        };
        let (handler, limits, clock) = (handler.clone(), limits.clone(), platform.clock());
        platform.spawn(async move {
            if let Err(e) = serve(conn, &*handler, &clock, &limits).await {
                log::debug!("{peer}: {e}");
            }
        });
    }
}
