//! # morgana-tls: TLS as a flow transformer
//!
//! [`TlsServer::accept`] and [`TlsClient::connect`] take any [`morgana::Flow`] (a TCP
//! connection, an in-memory pipe, another TLS session) and, once the handshake is done, return a
//! [`TlsStream`] that is a `Flow` itself: `Read`, `Write`, `shutdown_write` (sends
//! `close_notify`, then half-closes the flow below), `split` into halves for two tasks, and
//! `close`. It drives rustls 0.23 through its unbuffered API, which is `no_std`.
//!
//! The crypto provider is the target's choice, passed in as an `Arc<CryptoProvider>`: `ring` or
//! `aws-lc-rs` on unix, `rustls-rustcrypto` on bare metal. Time comes from the platform's
//! [`WallClock`] through [`TlsTime`]; certificates and keys are PEM files,
//! read from a [`KvRo`](morgana::KvRo) by [`Identity::from_kv`]. Client configurations built here
//! offer ALPN `http/1.1`; server configurations accept `http/1.1` and `http/1.0`. Errors are one enum, [`TlsError`], which implements `embedded_io::Error`.
//!
//! [`TlsListener`] transforms a `TcpListener` into one of TLS sessions: it runs the handshakes
//! of the connections it accepts side by side, each with a deadline, so a client that never
//! speaks cannot stall `accept` for the others. [`TlsStack`] transforms a whole
//! [`TcpStack`](morgana::TcpStack) into one whose connections are TLS sessions (`listen` through a
//! `TlsListener`, `connect` with the client handshake, both under a deadline), so an app
//! generic over `TcpStack` runs over TLS unchanged.
//!
//! ```
//! use std::sync::Arc;
//! use embedded_io_async::{Read, Write};
//! use morgana::{Flow, FlowWrite};
//! use morgana_tls::{Identity, TlsClient, TlsServer, TlsTime, client_config, roots_from_pem, server_config};
//!
//! let time = morgana_rt::VirtualTime::new();
//! let exec = morgana_rt::Executor::new(time.clone());
//! let clock = exec.handle();
//! let provider = Arc::new(rustls::crypto::ring::default_provider());
//! let identity = Identity::from_pem(morgana_tls::dev::CHAIN_PEM, morgana_tls::dev::KEY_PEM).unwrap();
//! let server = TlsTime::new(clock.clone());
//! let server = TlsServer::new(Arc::new(server_config(provider.clone(), &server, identity).unwrap()), server);
//! let roots = roots_from_pem(morgana_tls::dev::CA_PEM, "ca").unwrap();
//! let client = TlsTime::new(clock.clone());
//! let client = TlsClient::new(Arc::new(client_config(provider, &client, roots).unwrap()), client);
//!
//! let (a, b) = morgana_mem::pipe(64 * 1024);
//! let out = exec.block_on(&mut time.park(), async {
//!     let serve = async {
//!         let mut tls = server.accept(a).await.unwrap();
//!         let mut buf = [0u8; 5];
//!         tls.read_exact(&mut buf).await.unwrap();
//!         tls.write_all(&buf).await.unwrap();
//!         tls.close().await.unwrap();
//!     };
//!     let talk = async {
//!         let mut tls = client.connect("localhost", b).await.unwrap();
//!         tls.write_all(b"hello").await.unwrap();
//!         let mut buf = [0u8; 5];
//!         tls.read_exact(&mut buf).await.unwrap();
//!         buf
//!     };
//!     futures::future::join(serve, talk).await.1
//! });
//! assert_eq!(&out.unwrap(), b"hello");
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod config;
pub mod dev;
mod error;
mod listener;
mod session;
mod stack;

use alloc::sync::Arc;

use morgana::{Flow, WallClock};
use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use rustls::{ClientConfig, ServerConfig};

pub use config::{
    ALPN_HTTP10, ALPN_HTTP11, CHAIN_KEY, Identity, KEY_KEY, TlsTime, certs_from_pem, client_config,
    roots_from_pem, server_config,
};
pub use error::{ConfigError, TlsError};
pub use listener::{DEFAULT_MAX_IN_FLIGHT, TlsListener};
pub use rustls;
pub use session::{Side, TlsReader, TlsStream, TlsWriter};
pub use stack::{
    DEFAULT_HANDSHAKE_TIMEOUT, TlsConnection, TlsConnectionReader, TlsConnectionWriter, TlsStack,
    TlsStackListener,
};

/// The most heap a server handshake in flight holds at once, with some room: 48 KiB. rustls
/// allocates infallibly, so a server that starts handshakes must keep this much free for each
/// one in flight. Measured by `tests/heap.rs` (the development certificate, ECDSA P-256,
/// TLS 1.3): 42.7 KB with ring, 42.9 KB with rustls-rustcrypto.
pub const SERVER_HANDSHAKE_HEAP: usize = 48 * 1024;

/// The most heap an established server session holds, with some room: 80 KiB, once its
/// buffers have grown to a full received record and a full write (`TlsStream` keeps them).
/// Measured by `tests/heap.rs` after a 64 KiB answer: 74.6 KB with ring, 74.9 KB with
/// rustls-rustcrypto. A server derives its budget of TLS connections from the larger of the two
/// (`www`'s `CONNECTION_HEAP`).
pub const SESSION_HEAP: usize = 80 * 1024;

/// A server-side TLS session over `F`.
pub type ServerStream<F> = TlsStream<F, UnbufferedServerConnection>;
/// A client-side TLS session over `F`.
pub type ClientStream<F> = TlsStream<F, UnbufferedClientConnection>;

/// Accepts TLS sessions on flows: one configuration, any number of connections.
pub struct TlsServer<C> {
    config: Arc<ServerConfig>,
    time: TlsTime<C>,
}

impl<C: WallClock> TlsServer<C> {
    /// A server with `config`, whose time provider should be `time.provider()`.
    pub fn new(config: Arc<ServerConfig>, time: TlsTime<C>) -> Self {
        Self { config, time }
    }

    /// Run the server side of the handshake on `flow`.
    pub async fn accept<F: Flow>(&self, flow: F) -> Result<ServerStream<F>, TlsError<F::Error>> {
        let conn = UnbufferedServerConnection::new(self.config.clone())?;
        let tls = TlsStream::handshake(conn, flow, || self.time.refresh()).await?;
        log::debug!(
            "TLS session accepted: {:?} {:?}",
            tls.protocol_version(),
            tls.cipher_suite().map(|s| s.suite())
        );
        Ok(tls)
    }

    /// The configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }
}

/// Opens TLS sessions on flows.
pub struct TlsClient<C> {
    config: Arc<ClientConfig>,
    time: TlsTime<C>,
}

impl<C: WallClock> TlsClient<C> {
    /// A client with `config`, whose time provider should be `time.provider()`.
    pub fn new(config: Arc<ClientConfig>, time: TlsTime<C>) -> Self {
        Self { config, time }
    }

    /// Run the client side of the handshake on `flow`, expecting a certificate for
    /// `server_name` (a DNS name or an IP address).
    pub async fn connect<F: Flow>(
        &self,
        server_name: &str,
        flow: F,
    ) -> Result<ClientStream<F>, TlsError<F::Error>> {
        let name = ServerName::try_from(server_name).map_err(|_| TlsError::InvalidServerName)?.to_owned();
        let tls = self.connect_to(name, flow).await?;
        log::debug!("TLS session to {server_name}: {:?}", tls.protocol_version());
        Ok(tls)
    }

    /// [`connect`](Self::connect) with the name already parsed.
    pub(crate) async fn connect_to<F: Flow>(
        &self,
        name: ServerName<'static>,
        flow: F,
    ) -> Result<ClientStream<F>, TlsError<F::Error>> {
        let conn = UnbufferedClientConnection::new(self.config.clone(), name)?;
        TlsStream::handshake(conn, flow, || self.time.refresh()).await
    }

    /// The configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }
}
