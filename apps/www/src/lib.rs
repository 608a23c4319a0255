//! `www` (mirage-skeleton's `static_website_tls`): serve a key-value store as a web site over
//! HTTPS, and optionally plain HTTP on a second port, which redirects to HTTPS (or, with
//! `--http-serve`, serves the site too: a plain-HTTP site, and the HTTP row of the benchmark).
//!
//! [`start`] is generic over the TCP stack, the site's store and the certificate store; the
//! crypto provider is the target's (ring on unix, rustls-rustcrypto on bare metal). Without a
//! certificate store it serves the built-in development certificate for `localhost` and says so.
//! The site is compiled in ([`site::HTDOCS`]) unless the target wires another store (`--kv DIR`
//! on unix).
//!
//! It serves at most [`Config::max_connections`] at once (`--max-connections`), TLS handshakes
//! included; at the limit it stops accepting until one ends, so new clients wait in the listen
//! backlog. Reaching the limit, running out of descriptors, and failed handshakes are logged once,
//! then counted and reported at most every [`REPORT_EVERY`].
//!
//! TLS stays inside a heap budget ([`TlsBudget`]): rustls allocates infallibly, so each TLS
//! connection is charged [`CONNECTION_HEAP`] (measured in `morgana-tls`), at most half the heap
//! free at start goes to them where the platform knows its heap's size, and a handshake starts
//! only while the heap can give one more charge now; otherwise new TLS connections wait in the
//! backlog as at the connection limit. [`Stats`] counts handshakes and answers by status class
//! for the run's counters line (`tls.*`, `http.*`).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod admission;
mod budget;
pub mod site;

use alloc::rc::Rc;
use alloc::sync::Arc;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use core::future::Future;

use morgana::time::{TimedOut, timeout};
use morgana::{Clock, Duration, KvRo, Platform, StackError, TcpListener, TcpStack};
use morgana_args::{ArgError, ArgSpec, Args};
use morgana_http::{Handler, Limits, RedirectToHttps, StaticFiles, StatusCounts, serve_counting};
use morgana_tls::rustls::crypto::CryptoProvider;
use morgana_tls::{ConfigError, Identity, TlsServer, TlsTime, server_config};

pub use crate::admission::REPORT_EVERY;
use crate::admission::{Admission, Gate, Throttle};
pub use crate::budget::{CONNECTION_HEAP, TlsBudget};
use morgana_target::{Count, Counters, Store};

/// What `www` counts, for the run's counters line (`tls.*`, `http.*`): TLS handshakes done,
/// failed and timed out, the times new handshakes waited for the heap budget, and answers by
/// status class.
#[derive(Debug, Default)]
pub struct Stats {
    /// TLS handshakes completed.
    pub handshakes: Count,
    /// TLS handshakes that failed.
    pub failed: Count,
    /// TLS handshakes that timed out.
    pub timed_out: Count,
    /// Times new handshakes had to wait for the heap budget.
    pub waited: Count,
    /// TLS connections held now (handshakes and sessions), against the heap budget.
    pub tls_open: core::cell::Cell<u64>,
    /// HTTP answers by status class, HTTPS and plain HTTP together.
    pub http: StatusCounts,
}

impl Stats {
    /// Fresh counters, added to `counters` as the groups `tls` and `http`.
    pub fn new(counters: &Counters) -> Rc<Self> {
        let stats = Rc::new(Self::default());
        let s = stats.clone();
        counters.add("tls", move |l| {
            l.put("open", s.tls_open.get());
            l.put("handshakes", s.handshakes.get());
            l.put("failed", s.failed.get());
            l.put("timed_out", s.timed_out.get());
            l.put("budget_waits", s.waited.get());
        });
        let s = stats.clone();
        counters.add("http", move |l| {
            for (class, name) in [(1, "1xx"), (2, "2xx"), (3, "3xx"), (4, "4xx"), (5, "5xx")] {
                l.put(name, s.http.class(class));
            }
        });
        stats
    }
}

/// HTTPS port when none is given: 443 on bare metal, 8443 on a host (no root needed).
#[cfg(target_os = "none")]
pub const DEFAULT_PORT: &str = "443";
/// HTTPS port when none is given: 443 on bare metal, 8443 on a host (no root needed).
#[cfg(not(target_os = "none"))]
pub const DEFAULT_PORT: &str = "8443";

/// Connections served at once when `--max-connections` is not given: 10240 on a host (ten
/// thousand clients, each a file descriptor and some 55 KiB of memory), 256 on bare metal (where
/// each also holds `morgana-tcpip`'s 128 KiB of socket buffers, in the 64 MiB QEMU gets by
/// default).
#[cfg(not(target_os = "none"))]
pub const DEFAULT_MAX_CONNECTIONS: &str = "10240";
/// Connections served at once when `--max-connections` is not given: 10240 on a host (ten
/// thousand clients, each a file descriptor and some 55 KiB of memory), 256 on bare metal (where
/// each also holds `morgana-tcpip`'s 128 KiB of socket buffers, in the 64 MiB QEMU gets by
/// default).
#[cfg(target_os = "none")]
pub const DEFAULT_MAX_CONNECTIONS: &str = "256";

/// Seconds a keep-alive connection may wait for its next request when `--idle-timeout` is not
/// given.
pub const DEFAULT_IDLE_TIMEOUT: &str = "30";

/// `--port`, `--http-port`, `--http-serve`, `--max-connections` and `--idle-timeout` (the site
/// and the certificate are the devices [`SITE`] and [`CERTS`]).
pub const ARGS: &[ArgSpec] = &[
    ArgSpec::value("port", "PORT", "HTTPS port (0: any free port, shown in the log)").default(DEFAULT_PORT),
    ArgSpec::value("http-port", "PORT", "also serve plain HTTP on PORT, redirecting to HTTPS"),
    ArgSpec::flag("http-serve", "serve the site on --http-port as well, instead of redirecting to HTTPS"),
    ArgSpec::value(
        "max-connections",
        "N",
        "connections served at once, HTTPS and HTTP together, TLS handshakes included; at N, new ones wait in the listen backlog until one ends",
    )
    .default(DEFAULT_MAX_CONNECTIONS),
    ArgSpec::value("idle-timeout", "SECS", "close a keep-alive connection after SECS without a request")
        .default(DEFAULT_IDLE_TIMEOUT),
];

/// The site, `--kv DIR` where the target has directories, else [`site::HTDOCS`].
pub const SITE: Store = Store::new(
    "kv",
    "directory served as the site [default: the compiled-in site]",
    "drop --kv to serve the compiled-in site",
);

/// The site as a tar image on a block device (`tar -cf site.tar -C site .`): `--block FILE`
/// on a host, the virtio-blk disk `cargo xtask run` attaches as `--block FILE` on bare metal.
pub const SITE_IMAGE: Store = Store::new(
    "block",
    "tar image served as the site (on bare metal: attached as the virtio-blk disk) [default: the compiled-in site]",
    "drop --block to serve the compiled-in site",
);

/// The certificate store (`server.pem`, `server.key`), `--certs DIR` where the target has
/// directories, else the built-in development certificate.
pub const CERTS: Store = morgana_app::CERTS;

/// Say once, at start, when the target cannot hold `config.max_connections` open: `limit` is
/// the target's [`connection_limit`](morgana_target::Target::connection_limit) (on a host, the
/// open-files limit, a descriptor per connection and a few for the listeners, epoll, stdio and
/// files); beyond it new clients wait until one ends.
pub fn check_connection_limit(config: &Config, limit: Option<u64>) {
    let needed = config.max_connections as u64 + 64;
    if let Some(limit) = limit
        && limit < needed
    {
        log::warn!(
            "--max-connections {} needs about {needed} open files, but the hard limit (RLIMIT_NOFILE) is {limit}: \
             beyond about {} connections new ones wait until one ends (raise it with ulimit -Hn or LimitNOFILE=, or lower --max-connections)",
            config.max_connections,
            limit.saturating_sub(64)
        );
    }
}

/// The certificate chain and key in a certificate store.
pub const CHAIN_KEY: &str = morgana_tls::CHAIN_KEY;
/// The private key in a certificate store.
pub const KEY_KEY: &str = morgana_tls::KEY_KEY;

/// What `www` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// HTTPS port.
    pub port: u16,
    /// Plain HTTP port: redirects to HTTPS (or serves the site, with `http_serve`).
    pub http_port: Option<u16>,
    /// Serve the site on `http_port` instead of redirecting.
    pub http_serve: bool,
    /// Connections served at once (HTTPS and plain HTTP together, handshakes included); at the
    /// limit `www` stops accepting until one ends, so new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Per-connection limits and timeouts (`--idle-timeout` sets `idle_timeout`).
    pub limits: Limits,
    /// The heap at start, if not the platform's ([`Platform::heap`], which `None` here reads):
    /// the TLS connections held at once are derived from it ([`TlsBudget::new`]).
    pub heap: Option<morgana::HeapUsage>,
}

impl Config {
    /// Read the configuration from the runtime arguments.
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        let http_serve = args.flag("http-serve");
        let http_port = args.get_opt("http-port")?;
        if http_serve && http_port.is_none() {
            return Err(ArgError::Conflict(
                "--http-serve serves the site on the plain HTTP port: add --http-port PORT (e.g. 8080)",
            ));
        }
        let positive = |s: &str| s.parse::<u64>().ok().filter(|&n| n > 0);
        let max_connections = args
            .get_opt_with("max-connections", "a number of connections, at least 1", |s| {
                positive(s).and_then(|n| usize::try_from(n).ok())
            })?
            .unwrap_or_else(|| Self::default().max_connections);
        let idle = args.get_opt_with("idle-timeout", "a number of seconds, at least 1", positive)?;
        let limits = Limits {
            idle_timeout: idle.map_or(Limits::default().idle_timeout, Duration::from_secs),
            ..Limits::default()
        };
        Ok(Self { port: args.get("port")?, http_port, http_serve, max_connections, limits, heap: None })
    }

    /// The listen backlog asked for: room for a burst of new connections, and for those waiting
    /// while `max_connections` are open. The host's kernel caps it at `net.core.somaxconn` (4096
    /// by default since Linux 5.4); `morgana-tcpip` at its `Config::max_backlog`.
    pub fn backlog(&self) -> usize {
        self.max_connections.clamp(128, 65535)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: 8443,
            http_port: None,
            http_serve: false,
            max_connections: DEFAULT_MAX_CONNECTIONS.parse().unwrap_or(256),
            limits: Limits::default(),
            heap: None,
        }
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
    /// The site's tar image is unusable.
    Site(morgana_target::ArchiveError),
}

impl From<morgana_target::ArchiveError> for Error {
    fn from(e: morgana_target::ArchiveError) -> Self {
        Self::Site(e)
    }
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
            Self::Site(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for Error {}

/// The identity to serve: from `certs` (`/server.pem`, `/server.key`), or the development
/// certificate (announced in the log) when there is no store.
pub async fn identity<C: KvRo>(certs: Option<&C>) -> Result<Identity, Error> {
    Identity::from_certs_or_dev(certs).await.map_err(Error::Certificate)
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
    let stats = Rc::new(Stats::default());
    start_counted(platform, stack, htdocs, identity, provider, config, stats).await
}

/// [`start`], counting into `stats` ([`Stats::new`] adds them to the run's counters).
pub async fn start_counted<P, S, K>(
    platform: P,
    stack: S,
    htdocs: K,
    identity: Identity,
    provider: Arc<CryptoProvider>,
    config: Config,
    stats: Rc<Stats>,
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
    let admission = Admission::new(&platform, config.max_connections);
    let heap = config.heap.or_else(|| platform.heap());
    let budget = TlsBudget::new(heap, clock.clone(), stats.clone());
    let backlog = config.backlog();
    let mut https = stack.listen(config.port, backlog).await.map_err(|e| Error::Listen(config.port, e))?;
    if let Some(port) = config.http_port {
        let listener = stack.listen(port, backlog).await.map_err(|e| Error::Listen(port, e))?;
        let at = shown(listener.local_addr());
        if config.http_serve {
            log::info!("serving http://{at}/");
            platform.spawn(serve_plain(
                platform.clone(),
                listener,
                files.clone(),
                limits.clone(),
                admission.clone(),
                stats.clone(),
            ));
        } else {
            log::info!("redirecting http://{at}/ to HTTPS");
            // The port actually bound: `--port 0` picks one.
            let redirect = Rc::new(RedirectToHttps::new(https.local_addr().port()));
            platform.spawn(serve_plain(
                platform.clone(),
                listener,
                redirect,
                limits.clone(),
                admission.clone(),
                stats.clone(),
            ));
        }
    }
    log::info!("serving https://{}/", shown(https.local_addr()));
    log::debug!(
        "at most {} connections at once, idle timeout {} s",
        config.max_connections,
        config.limits.idle_timeout.as_secs()
    );
    if let Some(heap) = heap {
        log::info!(
            "at most {} TLS connections at once: half of the {} KiB of heap free, {} KiB each",
            budget.connections(),
            heap.size.saturating_sub(heap.used) / 1024,
            CONNECTION_HEAP / 1024
        );
    }
    let failed_handshakes = Rc::new(HandshakeLog::default());
    let e = accept_loop(&platform, &admission, &budget, &mut https, |conn, peer, charge| {
        let (tls, files, limits, clock) = (tls.clone(), files.clone(), limits.clone(), clock.clone());
        let (failed_handshakes, stats) = (failed_handshakes.clone(), stats.clone());
        async move {
            match timeout(&clock, limits.header_timeout, tls.accept(conn)).await {
                Ok(Ok(session)) => {
                    stats.handshakes.add();
                    match serve_counting(session, &*files, &clock, &limits, &stats.http).await {
                        Ok(conn) => log::debug!("{peer}: {} requests", conn.requests),
                        Err(e) => log::debug!("{peer}: {e}"),
                    }
                }
                Ok(Err(e)) => {
                    stats.failed.add();
                    failed_handshakes.failed(clock.now(), peer, &e)
                }
                Err(TimedOut) => {
                    stats.timed_out.add();
                    failed_handshakes.timed_out(clock.now(), peer)
                }
            }
            drop(charge);
        }
    })
    .await;
    Err(Error::Accept(e))
}

/// Failed and timed-out TLS handshakes: at info level the first, then a count at most once per
/// [`REPORT_EVERY`] (a flood of broken clients is not a flood of lines); the others at debug level.
#[derive(Default)]
struct HandshakeLog {
    failed: core::cell::RefCell<Throttle>,
    timed_out: core::cell::RefCell<Throttle>,
}

impl HandshakeLog {
    fn failed(&self, now: morgana::Instant, peer: SocketAddr, e: &dyn fmt::Display) {
        match self.failed.borrow_mut().hit(now) {
            Some((_, None)) => log::info!("{peer}: TLS handshake failed: {e}"),
            Some((n, Some(since))) => log::info!(
                "{n} TLS {} failed in the last {:.1} s; the latest, {peer}: {e}",
                handshakes(n),
                since.as_secs_f64()
            ),
            None => log::debug!("{peer}: TLS handshake failed: {e}"),
        }
    }

    fn timed_out(&self, now: morgana::Instant, peer: SocketAddr) {
        match self.timed_out.borrow_mut().hit(now) {
            Some((_, None)) => log::info!("{peer}: TLS handshake timed out"),
            Some((n, Some(since))) => {
                log::info!("{n} TLS {} timed out in the last {:.1} s", handshakes(n), since.as_secs_f64())
            }
            None => log::debug!("{peer}: TLS handshake timed out"),
        }
    }
}

fn handshakes(n: u64) -> &'static str {
    if n == 1 { "handshake" } else { "handshakes" }
}

/// Connections an acceptor takes in a row before it lets the others run: a burst of thousands
/// of clients then sees its handshakes progress as it is accepted (as nginx accepts a few per
/// turn of its loop), instead of every handshake waiting for the whole burst to be accepted.
const ACCEPT_BATCH: u32 = 32;

/// Let every other ready task run once before continuing.
async fn yield_now() {
    let mut yielded = false;
    core::future::poll_fn(|cx| {
        if yielded {
            return core::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        core::task::Poll::Pending
    })
    .await
}

/// Accept connections from `listener` once there is room for them in `admission` and `gate`,
/// each served by the task `serve(conn, peer, charge)` makes; running out of descriptors or
/// memory is waited out (and logged once per [`REPORT_EVERY`]), not fatal. Returns the error
/// that stopped it. The HTTPS and the plain HTTP listener both run this loop.
async fn accept_loop<P, L, G, T>(
    platform: &P,
    admission: &Admission<P>,
    gate: &G,
    listener: &mut L,
    mut serve: impl FnMut(L::Connection, SocketAddr, G::Charge) -> T,
) -> StackError
where
    P: Platform,
    L: TcpListener,
    G: Gate,
    T: Future<Output = ()> + 'static,
{
    let (mut out_of_resources, mut in_a_row) = (Throttle::default(), 0);
    loop {
        in_a_row += 1;
        if in_a_row > ACCEPT_BATCH {
            in_a_row = 0;
            yield_now().await;
        }
        match admission.accept(listener, gate).await {
            Ok((conn, peer, place, charge)) => admission.spawn(place, serve(conn, peer, charge)),
            Err(StackError::NoResources) => {
                let port = listener.local_addr().port();
                match out_of_resources.hit(platform.clock().now()) {
                    Some((_, None)) => log::warn!(
                        "port {port}: accept: out of resources (file descriptors or memory); retrying \
                         every 100 ms, new connections wait in the listen backlog ({} open)",
                        admission.live()
                    ),
                    Some((n, Some(since))) => log::warn!(
                        "port {port}: accept: out of resources {n} time(s) in the last {:.1} s; retrying \
                         every 100 ms ({} open)",
                        since.as_secs_f64(),
                        admission.live()
                    ),
                    None => {}
                }
                platform.clock().sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return e,
        }
    }
}

/// Accept plain HTTP connections and answer them with `handler`.
async fn serve_plain<P, L, H>(
    platform: P,
    mut listener: L,
    handler: Rc<H>,
    limits: Rc<Limits>,
    admission: Rc<Admission<P>>,
    stats: Rc<Stats>,
) where
    P: Platform,
    L: TcpListener + 'static,
    L::Connection: morgana::Flow<Error = StackError> + 'static,
    H: Handler + 'static,
{
    let e = accept_loop(&platform, &admission, &(), &mut listener, |conn, peer, ()| {
        let (handler, limits, clock, stats) =
            (handler.clone(), limits.clone(), platform.clock(), stats.clone());
        async move {
            if let Err(e) = serve_counting(conn, &*handler, &clock, &limits, &stats.http).await {
                log::debug!("{peer}: {e}");
            }
        }
    })
    .await;
    log::warn!("plain HTTP listener failed ({e}); port {} stops", listener.local_addr().port());
}
