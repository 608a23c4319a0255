//! `http-fetch` (mirage-skeleton's `device-usage/http-fetch`): resolve a URL's host, connect,
//! run TLS for `https`, `GET` the URL, and report the status, the headers and the SHA-256 of the
//! body. It trusts only the CA certificates it is given (`--ca FILE`, or `--dev-ca` for the `www`
//! development CA built into every image). `--resolve HOST:ADDR` pins a host to an address
//! without asking DNS, as `curl --resolve` does, so that a certificate's name can be checked
//! against a server reached by address (a guest reaching its host through QEMU's `10.0.2.2`).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, SocketAddr};

use morgana::{Clock, Duration, Flow, Platform, Resolver, StackError, TcpStack, WallClock};
use morgana_args::{ArgError, ArgSpec, ArgValue, Args};
use morgana_http::{Client, HttpError, with_deadline};
use morgana_target::Store;
use morgana_tls::rustls::crypto::CryptoProvider;
use morgana_tls::{ClientStream, TlsClient, TlsTime, client_config, roots_from_pem};
use sha2::{Digest, Sha256};

/// `--url`, `--dev-ca`, `--resolve` and `--timeout-ms` (the CA file is the device [`CA`]).
pub const ARGS: &[ArgSpec] = &[
    ArgSpec::value("url", "URL", "what to fetch: http://HOST[:PORT]/PATH or https://..."),
    ArgSpec::flag("dev-ca", "trust the built-in development CA (the one www serves with); for tests"),
    ArgSpec::value(
        "resolve",
        "HOST:ADDR",
        "connect to ADDR for HOST instead of asking DNS (as curl --resolve)",
    ),
    ArgSpec::value("timeout-ms", "MS", "give up after this long").default("30000"),
];

/// `--ca FILE`, where the target has files.
pub const CA: Store = Store::new(
    "ca",
    "PEM file of the CA certificates to trust for https",
    "--dev-ca trusts the built-in development CA",
);

/// A parsed `http` or `https` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https`?
    pub https: bool,
    /// The host: a name or an address (IPv6 without brackets).
    pub host: String,
    /// The port (80 or 443 unless given).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl Url {
    /// Parse `http://host[:port][/path]` or `https://...`.
    pub fn parse(s: &str) -> Option<Self> {
        let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else {
            (false, s.strip_prefix("http://")?)
        };
        let (authority, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let default = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => default,
                None => return None,
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().ok()?),
                None => (authority, default),
            }
        };
        let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':');
        if host.is_empty() || !host.bytes().all(valid) || port == 0 || target.bytes().any(|b| b <= b' ') {
            return None;
        }
        Some(Self { https, host: host.to_string(), port, target: target.to_string() })
    }

    /// The `Host` header: the host, with the port when it is not the default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        match (self.https, self.port) {
            (true, 443) | (false, 80) => host,
            (_, port) => format!("{host}:{port}"),
        }
    }
}

impl ArgValue for Url {
    const EXPECTED: &'static str = "a URL like https://localhost:8443/";
    fn parse_arg(s: &str) -> Option<Self> {
        Url::parse(s)
    }
}

/// What `http-fetch` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// What to fetch.
    pub url: Url,
    /// Give up after this long.
    pub timeout: Duration,
    /// Trust the built-in development CA ([`morgana_tls::dev::CA_PEM`]) as well.
    pub dev_ca: bool,
    /// A host answered with this address instead of by the resolver.
    pub resolve: Option<Pin>,
}

impl Config {
    /// Fetch `url`, giving up after `timeout`, trusting only what [`start`] is given, resolving
    /// names through the resolver.
    pub fn new(url: Url, timeout: Duration) -> Self {
        Self { url, timeout, dev_ca: false, resolve: None }
    }

    /// Read the configuration from the runtime arguments (`--url` is required).
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        Ok(Self {
            url: args.get("url")?,
            timeout: Duration::from_millis(args.get("timeout-ms")?),
            dev_ca: args.flag("dev-ca"),
            resolve: args.get_opt("resolve")?,
        })
    }

    /// Refuse an https URL with nothing to trust (`has_ca`: a CA file was given), in one line.
    pub fn check_trust(&self, has_ca: bool) -> Result<(), ArgError> {
        if self.url.https && !has_ca && !self.dev_ca {
            return Err(ArgError::Conflict(NO_TRUST));
        }
        Ok(())
    }
}

const NO_TRUST: &str = "an https URL needs --ca FILE or --dev-ca (there is no built-in trust store)";

/// `--resolve HOST:ADDR`: a host name pinned to an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The name, as written in URLs.
    pub host: String,
    /// The address to connect to for it.
    pub addr: IpAddr,
}

impl ArgValue for Pin {
    const EXPECTED: &'static str = "HOST:ADDR, like localhost:10.0.2.2 or localhost:[::1]";
    fn parse_arg(s: &str) -> Option<Self> {
        let (host, addr) = s.split_once(':')?;
        let addr = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(addr);
        (!host.is_empty()).then_some(())?;
        Some(Self { host: host.to_string(), addr: addr.parse().ok()? })
    }
}

/// A resolver that answers one pinned host itself and asks `inner` for every other name.
#[derive(Debug, Clone)]
pub struct Pinned<R> {
    inner: R,
    pin: Option<Pin>,
}

impl<R: Resolver> Pinned<R> {
    /// `inner`, with `pin`'s host (compared ignoring ASCII case) answered by its address.
    pub fn new(inner: R, pin: Option<Pin>) -> Self {
        Self { inner, pin }
    }
}

impl<R: Resolver> Resolver for Pinned<R> {
    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, StackError> {
        match &self.pin {
            Some(pin) if pin.host.eq_ignore_ascii_case(name) => Ok(alloc::vec![pin.addr]),
            _ => self.inner.resolve(name).await,
        }
    }
}

/// What was fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The HTTP minor version of the response: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor_version: u8,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The response headers, in order.
    pub headers: Vec<(String, String)>,
    /// SHA-256 of the body.
    pub sha256: [u8; 32],
    /// Length of the body.
    pub len: usize,
}

impl Fetched {
    /// The SHA-256 of the body in hex.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchError {
    /// The host name did not resolve.
    Resolve(String, StackError),
    /// The connection failed.
    Connect(SocketAddr, StackError),
    /// An https URL but no CA to trust.
    NoTrust,
    /// The CA file is unusable.
    Ca(String),
    /// The TLS handshake or session failed.
    Tls(String),
    /// The HTTP exchange failed.
    Http(String),
    /// It took longer than the timeout.
    TimedOut(Duration),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resolve(host, e) => write!(f, "cannot resolve {host}: {e}"),
            Self::Connect(addr, e) => write!(f, "cannot connect to {addr}: {e}"),
            Self::NoTrust => f.write_str(NO_TRUST),
            Self::Ca(e) => write!(f, "--ca: {e}"),
            Self::Tls(e) => f.write_str(e),
            Self::Http(e) => f.write_str(e),
            Self::TimedOut(d) => write!(f, "no answer within {} ms (raise --timeout-ms)", d.as_millis()),
        }
    }
}

impl core::error::Error for FetchError {}

/// A TLS client trusting the CA certificates in `ca_pem`, with time from `clock`.
pub fn tls_client<C: WallClock>(
    provider: Arc<CryptoProvider>,
    clock: C,
    ca_pem: &[u8],
) -> Result<TlsClient<C>, FetchError> {
    let roots = roots_from_pem(ca_pem, "CA file").map_err(|e| FetchError::Ca(e.to_string()))?;
    let time = TlsTime::new(clock);
    let config = client_config(provider, &time, roots).map_err(|e| FetchError::Ca(e.to_string()))?;
    Ok(TlsClient::new(Arc::new(config), time))
}

/// Resolve the URL's host and open a TCP connection to it.
pub async fn connect_tcp<S: TcpStack, R: Resolver>(
    stack: &S,
    resolver: &R,
    url: &Url,
) -> Result<S::Connection, FetchError> {
    let ips = resolver.resolve(&url.host).await.map_err(|e| FetchError::Resolve(url.host.clone(), e))?;
    let mut last = FetchError::Resolve(url.host.clone(), StackError::NameNotFound);
    for ip in ips {
        let addr = SocketAddr::new(ip, url.port);
        match stack.connect(addr).await {
            Ok(c) => return Ok(c),
            Err(e) => last = FetchError::Connect(addr, e),
        }
    }
    Err(last)
}

/// An HTTP client on a TLS session to the URL's host (keep-alive: send many requests).
pub async fn connect_tls<S: TcpStack, R: Resolver, C: WallClock>(
    stack: &S,
    resolver: &R,
    tls: &TlsClient<C>,
    url: &Url,
) -> Result<Client<ClientStream<S::Connection>>, FetchError> {
    let tcp = connect_tcp(stack, resolver, url).await?;
    let session = tls.connect(&url.host, tcp).await.map_err(|e| FetchError::Tls(e.to_string()))?;
    Ok(Client::new(session))
}

async fn get<F: Flow>(client: &mut Client<F>, url: &Url) -> Result<Fetched, HttpError<F::Error>>
where
    F::Error: fmt::Display,
{
    let r = client.request("GET", &url.host_header(), &url.target, &[("Connection", "close")]).await?;
    Ok(Fetched {
        minor_version: r.minor_version,
        status: r.status,
        reason: r.reason,
        headers: r.headers,
        sha256: Sha256::digest(&r.body).into(),
        len: r.body.len(),
    })
}

/// Fetch `url` once; `tls` is needed for https.
pub async fn fetch<S: TcpStack, R: Resolver, C: WallClock>(
    stack: &S,
    resolver: &R,
    tls: Option<&TlsClient<C>>,
    url: &Url,
) -> Result<Fetched, FetchError> {
    if url.https {
        let tls = tls.ok_or(FetchError::NoTrust)?;
        let mut client = connect_tls(stack, resolver, tls, url).await?;
        let fetched = get(&mut client, url).await.map_err(|e| FetchError::Http(e.to_string()))?;
        let _ = client.into_inner().close().await;
        Ok(fetched)
    } else {
        let mut client = Client::new(connect_tcp(stack, resolver, url).await?);
        let fetched = get(&mut client, url).await.map_err(|e| FetchError::Http(e.to_string()))?;
        let _ = client.into_inner().close().await;
        Ok(fetched)
    }
}

/// Fetch the configured URL and log the status line, the headers and the body's SHA-256.
///
/// `ca_pem` (from `--ca FILE`) and, with `--dev-ca`, the development CA are trusted for https.
pub async fn start<P: Platform, S: TcpStack, R: Resolver>(
    platform: P,
    stack: S,
    resolver: R,
    provider: Arc<CryptoProvider>,
    mut ca_pem: Option<Vec<u8>>,
    config: Config,
) -> Result<Fetched, FetchError> {
    let clock = platform.clock();
    if config.dev_ca {
        log::warn!("trusting the built-in development CA (--dev-ca): for tests, not for real servers");
        let pem = ca_pem.get_or_insert_with(Vec::new);
        pem.extend_from_slice(b"\n");
        pem.extend_from_slice(morgana_tls::dev::CA_PEM);
    }
    let tls = match &ca_pem {
        Some(pem) => Some(tls_client(provider, clock.clone(), pem)?),
        None => None,
    };
    if let Some(pin) = &config.resolve {
        log::info!("--resolve: {} is {}", pin.host, pin.addr);
    }
    let resolver = Pinned::new(resolver, config.resolve.clone());
    let at = clock.now() + config.timeout;
    let fetched = with_deadline(&clock, at, fetch(&stack, &resolver, tls.as_ref(), &config.url))
        .await
        .ok_or(FetchError::TimedOut(config.timeout))??;
    log::info!("HTTP/1.{} {} {}", fetched.minor_version, fetched.status, fetched.reason);
    for (name, value) in &fetched.headers {
        log::info!("{name}: {value}");
    }
    log::info!("sha256 {} ({} bytes)", fetched.sha256_hex(), fetched.len);
    Ok(fetched)
}
