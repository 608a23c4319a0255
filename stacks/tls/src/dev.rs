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

/// The development CA of the Ed25519 identity (PEM): trust it to accept [`ED25519_CHAIN_PEM`].
pub const ED25519_CA_PEM: &[u8] = include_bytes!("../dev-certs/ed25519-ca.pem");

/// The `localhost` certificate with an Ed25519 key (PEM), signed by [`ED25519_CA_PEM`].
pub const ED25519_CHAIN_PEM: &[u8] = include_bytes!("../dev-certs/ed25519-server.pem");

/// The private key of [`ED25519_CHAIN_PEM`] (PKCS#8 PEM, Ed25519).
pub const ED25519_KEY_PEM: &[u8] = include_bytes!("../dev-certs/ed25519-server.key");

/// The development identity with an Ed25519 key, parsed: its signatures are deterministic
/// (RFC 8032 draws no randomness), which a simulator with seeded randomness wants, and cheaper
/// than ECDSA's. The simulator's `www` serves it; [`identity`] stays the default, since more
/// clients accept ECDSA P-256.
pub fn ed25519_identity() -> Result<crate::Identity, crate::ConfigError> {
    crate::Identity::from_pem(ED25519_CHAIN_PEM, ED25519_KEY_PEM)
}
