//! Configurations: certificates and keys from a key-value store, time from a `WallClock`.

use alloc::format;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use morgana::{Key, KvRo, WallClock};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::time_provider::TimeProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::ConfigError;

/// The ALPN protocol the project's servers and clients speak.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";
/// HTTP/1.0's ALPN name, which servers also accept (`curl --http1.0` offers only it).
pub const ALPN_HTTP10: &[u8] = b"http/1.0";

/// rustls's clock, fed from a [`WallClock`].
///
/// rustls wants a `Send + Sync` time source for the whole configuration, while a unikernel's
/// clock is a single-threaded handle; so the clock's reading is published in an atomic that
/// rustls reads. [`TlsServer`](crate::TlsServer) and [`TlsClient`](crate::TlsClient) refresh
/// it before every handshake step, which is when certificates and tickets are checked.
pub struct TlsTime<C> {
    clock: C,
    shared: Arc<PublishedTime>,
}

#[derive(Debug, Default)]
struct PublishedTime {
    unix_secs: AtomicU64,
}

impl TimeProvider for PublishedTime {
    fn current_time(&self) -> Option<UnixTime> {
        match self.unix_secs.load(Ordering::Relaxed) {
            0 => None,
            s => Some(UnixTime::since_unix_epoch(core::time::Duration::from_secs(s))),
        }
    }
}

impl<C: WallClock> TlsTime<C> {
    /// Time read from `clock`.
    pub fn new(clock: C) -> Self {
        let t = Self { clock, shared: Arc::new(PublishedTime::default()) };
        t.refresh();
        t
    }

    /// The provider to build a rustls configuration with (`builder_with_details`).
    pub fn provider(&self) -> Arc<dyn TimeProvider> {
        self.shared.clone()
    }

    /// Publish the clock's current reading to rustls.
    pub fn refresh(&self) {
        self.shared.unix_secs.store(self.clock.now_unix().as_secs(), Ordering::Relaxed);
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

/// A certificate chain (leaf first) and its private key.
pub struct Identity {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl Identity {
    /// Parse a PEM certificate chain and a PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, ConfigError> {
        Ok(Self { chain: certs_from_pem(chain_pem, "chain")?, key: key_from_pem(key_pem, "key")? })
    }

    /// Read the chain and the key from PEM files in `kv` (as Mirage reads them from a
    /// certificate store), e.g. `/server.pem` and `/server.key`.
    pub async fn from_kv<K: KvRo>(kv: &K, chain: &Key, key: &Key) -> Result<Self, ConfigError> {
        let chain_pem = kv.get(chain).await?;
        let key_pem = kv.get(key).await?;
        Ok(Self {
            chain: certs_from_pem(&chain_pem, &format!("{chain}"))?,
            key: key_from_pem(&key_pem, &format!("{key}"))?,
        })
    }
}

/// Where a certificate store keeps the chain (PEM, leaf first).
pub const CHAIN_KEY: &str = "/server.pem";
/// Where a certificate store keeps the chain's private key (PEM).
pub const KEY_KEY: &str = "/server.key";

impl Identity {
    /// A server's identity: from the certificate store `certs` ([`CHAIN_KEY`], [`KEY_KEY`]) when
    /// there is one, else the built-in development identity, with a warning in the log that its
    /// key is public (what `www` and `notes` serve without `--certs DIR`).
    pub async fn from_certs_or_dev<K: KvRo>(certs: Option<&K>) -> Result<Self, ConfigError> {
        match certs {
            Some(kv) => {
                let (chain, key) = (Key::parse(CHAIN_KEY), Key::parse(KEY_KEY));
                Self::from_kv(kv, &chain.unwrap_or_default(), &key.unwrap_or_default()).await
            }
            None => {
                log::warn!(
                    "using the built-in development certificate for localhost (its key is public: pass --certs DIR for a real one)"
                );
                crate::dev::identity()
            }
        }
    }
}

/// Every certificate in a PEM file.
pub fn certs_from_pem(pem: &[u8], name: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(ConfigError::Pem { key: name.into(), expected: "CERTIFICATE" });
    }
    Ok(certs)
}

fn key_from_pem(pem: &[u8], name: &str) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|_| ConfigError::Pem { key: name.into(), expected: "PRIVATE KEY" })
}

/// Trust anchors from a PEM file of CA certificates.
pub fn roots_from_pem(pem: &[u8], name: &str) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(pem, name)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// A server configuration: TLS 1.3 and 1.2, no client authentication, ALPN `http/1.1` then
/// `http/1.0` (a client that offers ALPN but neither of them is refused, as RFC 7301 asks; one that
/// offers no ALPN gets none).
pub fn server_config<C: WallClock>(
    provider: Arc<CryptoProvider>,
    time: &TlsTime<C>,
    identity: Identity,
) -> Result<ServerConfig, ConfigError> {
    let mut config = ServerConfig::builder_with_details(provider, time.provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec(), ALPN_HTTP10.to_vec()];
    Ok(config)
}

/// A client configuration trusting `roots`: TLS 1.3 and 1.2, ALPN `http/1.1`.
pub fn client_config<C: WallClock>(
    provider: Arc<CryptoProvider>,
    time: &TlsTime<C>,
    roots: RootCertStore,
) -> Result<ClientConfig, ConfigError> {
    let mut config = ClientConfig::builder_with_details(provider, time.provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(config)
}
