//! `notes`: a key-value service over HTTPS, kept on a disk by the durable store
//! (`morgana-store`), so that what it acknowledged survives a crash or a power cut.
//!
//! - `PUT /PATH` stores the request body under `PATH` and answers `201 Created` (new) or
//!   `204 No Content` (replaced) only once the value is durable: the store's `set` returns after
//!   its flush.
//! - `GET /PATH` (and `HEAD`) returns it, with `ETag` (`If-None-Match`), `Last-Modified` and
//!   byte ranges, as `www` serves files; `GET /DIR/` lists a directory as JSON:
//!   `[{"name":"a.txt","kind":"value"},{"name":"sub","kind":"dictionary"}]`.
//! - `DELETE /PATH` removes it (`204`, or `404`).
//! - A full disk answers `507`, a value where a directory is needed (or the reverse) `409`, a
//!   value that fails its checksum `500` (the store never returns damaged data).
//! - With `--token TOKEN`, `PUT` and `DELETE` need `Authorization: Bearer TOKEN` (`401`
//!   otherwise); without it anyone who reaches the port may write, and the log says so at start.
//!
//! [`start`] is generic over the TCP stack, the block device and the certificate store; the
//! crypto provider is the target's.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod handler;

use alloc::rc::Rc;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;

use morgana::{Block, Clock, Duration, Platform, StackError, TaskGroup, TcpListener, TcpStack};
use morgana_args::{ArgError, ArgSpec, Args};
use morgana_http::{Limits, serve};
use morgana_store::{OpenError, Store};
use morgana_target::Store as StoreArg;
use morgana_tls::rustls::crypto::CryptoProvider;
use morgana_tls::{ConfigError, Identity, TlsListener, TlsServer, TlsTime, server_config};

pub use crate::handler::Notes;

/// HTTPS port when none is given: 443 on bare metal, 8443 on a host (no root needed).
#[cfg(target_os = "none")]
pub const DEFAULT_PORT: &str = "443";
/// HTTPS port when none is given: 443 on bare metal, 8443 on a host (no root needed).
#[cfg(not(target_os = "none"))]
pub const DEFAULT_PORT: &str = "8443";

/// Largest value a `PUT` may store when `--max-body` is not given, in bytes.
pub const DEFAULT_MAX_BODY: &str = "1048576";

/// `--port`, `--token` and `--max-body` (the disk is the target's block device, the certificate
/// the store [`CERTS`]).
pub const ARGS: &[ArgSpec] = &[
    ArgSpec::value("port", "PORT", "HTTPS port (0: any free port, shown in the log)").default(DEFAULT_PORT),
    ArgSpec::value(
        "token",
        "TOKEN",
        "PUT and DELETE need `Authorization: Bearer TOKEN` [default: anyone may write]",
    ),
    ArgSpec::value("max-body", "BYTES", "largest value a PUT may store; more is 413")
        .default(DEFAULT_MAX_BODY),
];

/// The certificate store (`server.pem`, `server.key`), `--certs DIR` where the target has
/// directories, else the built-in development certificate.
pub const CERTS: StoreArg = morgana_app::CERTS;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What `notes` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// HTTPS port.
    pub port: u16,
    /// The bearer token writes need, if any.
    pub token: Option<String>,
    /// Per-connection limits; `max_body` is the largest value a `PUT` stores.
    pub limits: Limits,
}

impl Config {
    /// Read the configuration from the runtime arguments.
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        let token: Option<String> = args.get_opt("token")?;
        if token.as_deref().is_some_and(|t| t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic())) {
            return Err(ArgError::Conflict("--token needs printable ASCII without spaces"));
        }
        let max_body = args.get("max-body")?;
        let limits = Limits { keep_body: true, max_body, ..Limits::default() };
        Ok(Self { port: args.get("port")?, token, limits })
    }
}

/// Why `notes` stopped.
#[derive(Debug)]
pub enum Error {
    /// The disk holds something that is not a store, or the store could not be opened.
    Open(OpenError),
    /// The port could not be opened.
    Listen(u16, StackError),
    /// The certificate or key is unusable.
    Certificate(ConfigError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open(e) => write!(f, "the disk: {e}"),
            Self::Listen(port, e) => write!(f, "cannot listen on port {port}: {e}"),
            Self::Certificate(e) => write!(f, "certificate: {e}"),
        }
    }
}

/// The certificate in `certs` (`/server.pem`, `/server.key`), or the built-in development one.
pub async fn identity<C: morgana::KvRo>(certs: Option<&C>) -> Result<Identity, Error> {
    Identity::from_certs_or_dev(certs).await.map_err(Error::Certificate)
}

/// Open the store on `dev` and serve it over HTTPS on `stack` until accepting fails.
pub async fn start<P, S, B>(
    platform: P,
    stack: S,
    dev: B,
    identity: Identity,
    provider: Arc<CryptoProvider>,
    config: Config,
) -> Result<(), Error>
where
    P: Platform,
    S: TcpStack,
    S::Listener: 'static,
    B: Block + 'static,
{
    let clock = platform.clock();
    let store = Store::open(dev, clock.clone()).await.map_err(Error::Open)?;
    let r = store.report();
    let how = if r.formatted {
        "formatted a blank disk"
    } else if r.torn_tail {
        "rolled back a torn last commit"
    } else {
        "opened"
    };
    log::info!("store {how}: commit {}", r.commit);
    if !r.damaged.is_empty() || r.damaged_records > 0 {
        log::error!(
            "the disk is damaged: {} pages of the tree and {} record copies failed their checksums (what is below them answers 500)",
            r.damaged.len(),
            r.damaged_records
        );
    }
    let time = TlsTime::new(clock.clone());
    let tls_config = server_config(provider, &time, identity).map_err(Error::Certificate)?;
    let server = TlsServer::new(Arc::new(tls_config), time);
    let listener = stack.listen(config.port, 64).await.map_err(|e| Error::Listen(config.port, e))?;
    let port = listener.local_addr().port();
    let mut tls = TlsListener::new(listener, server, clock.clone(), HANDSHAKE_TIMEOUT);
    if config.token.is_none() {
        log::warn!("no --token given: anyone who can reach port {port} may PUT and DELETE");
    }
    log::info!("serving notes on https://localhost:{port}/");
    let notes = Rc::new(Notes::new(store, config.token.clone()));
    let limits = Rc::new(config.limits);
    let tasks = TaskGroup::unlimited(platform);
    loop {
        match tls.accept().await {
            Ok((conn, peer)) => {
                let (notes, limits, clock) = (notes.clone(), limits.clone(), clock.clone());
                tasks.spawn(async move {
                    if let Err(e) = serve(conn, &*notes, &clock, &limits).await {
                        log::debug!("connection from {peer}: {e}");
                    }
                });
            }
            Err(e) => {
                log::warn!("accept failed: {e}");
                clock.sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
