//! The development certificate: a `localhost` server certificate (also valid for `127.0.0.1`
//! and `::1`) signed by a development CA, valid 2000–2099.
//!
//! For local development and tests only: the private key is public (it is in this crate's
//! source). `dev-certs/generate.sh` made the files; `www` serves this certificate when it is given
//! none, and says so in its log; `http-fetch --ca` and the tests trust [`CA_PEM`].

/// The development CA certificate (PEM): trust it to accept [`CHAIN_PEM`].
pub const CA_PEM: &[u8] = include_bytes!("../dev-certs/ca.pem");

/// The `localhost` certificate (PEM), signed by [`CA_PEM`].
pub const CHAIN_PEM: &[u8] = include_bytes!("../dev-certs/server.pem");

/// The private key of [`CHAIN_PEM`] (PKCS#8 PEM, ECDSA P-256).
pub const KEY_PEM: &[u8] = include_bytes!("../dev-certs/server.key");

/// The development identity, parsed.
pub fn identity() -> Result<crate::Identity, crate::ConfigError> {
    crate::Identity::from_pem(CHAIN_PEM, KEY_PEM)
}
