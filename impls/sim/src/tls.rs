//! A rustls `CryptoProvider` whose every random byte is the current node's.
//!
//! rustls draws randomness in three places: `SecureRandom` (hello randoms, session ids,
//! nonces), the key exchange (each handshake's ephemeral key share), and signing (ECDSA's
//! per-signature nonce). The usual providers take all three from the OS (ring, and
//! rustls-rustcrypto through `OsRng`), which would make every handshake, and so every frame
//! after it, differ from run to run. Here all three come from the seeded generator of the node
//! being polled (set by the world around each node's step and boot), so a run replays bit for
//! bit. The cipher suites and signature verification are ring's, which draw nothing (and are
//! several times faster than the pure-Rust curves at verifying).
//!
//! Key exchange: X25519 and P-256. Signing: ECDSA P-256 keys (the development certificate's),
//! with the node's randomness, and Ed25519 keys, by ring (deterministic: nothing drawn).
//! Randomness drawn outside any node is a bug in the simulator, and panics saying so.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use p256::pkcs8::DecodePrivateKey;
use rand_chacha::ChaCha20Rng;
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, SharedSecret,
    SupportedKxGroup,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, NamedGroup, SignatureAlgorithm, SignatureScheme};

thread_local! {
    static CURRENT: RefCell<Option<Rc<RefCell<ChaCha20Rng>>>> = const { RefCell::new(None) };
}

/// Run `f` with `rng` as the source of TLS randomness (restoring the previous one after).
pub(crate) fn with_rng<R>(rng: &Rc<RefCell<ChaCha20Rng>>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Rc<RefCell<ChaCha20Rng>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.borrow_mut().replace(rng.clone())));
    f()
}

fn draw(buf: &mut [u8]) {
    use rand_core::RngCore;
    CURRENT.with(|c| {
        let c = c.borrow();
        let rng = c.as_ref().expect("TLS randomness drawn outside a simulated node (a simulator bug)");
        rng.borrow_mut().fill_bytes(buf);
    })
}

/// The current node's generator, as the `rand_core` 0.6 RNG the RustCrypto curves take.
struct NodeRng;

impl rand_core06::RngCore for NodeRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        draw(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        draw(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        draw(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core06::Error> {
        draw(dest);
        Ok(())
    }
}

impl rand_core06::CryptoRng for NodeRng {}

/// The provider: ring's cipher suites and signature verification (which draw nothing), the
/// node's randomness for everything that does.
pub fn provider() -> Arc<CryptoProvider> {
    let base = rustls::crypto::ring::default_provider();
    // AES-128 with SHA-256 first (ring's order starts with SHA-384): a handshake's key schedule
    // is dozens of HMACs, and thousands of handshakes feel their hash.
    let mut cipher_suites = base.cipher_suites.clone();
    cipher_suites.sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(CryptoProvider {
        cipher_suites,
        kx_groups: vec![&X25519, &P256],
        secure_random: &NodeRandom,
        key_provider: &NodeRandom,
        ..base
    })
}

#[derive(Debug)]
struct NodeRandom;

impl SecureRandom for NodeRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        draw(buf);
        Ok(())
    }
}

impl KeyProvider for NodeRandom {
    fn load_private_key(&self, der: PrivateKeyDer<'static>) -> Result<Arc<dyn SigningKey>, Error> {
        let refused = || {
            Error::General(
                "the simulator's TLS provider signs with ECDSA P-256 or Ed25519 keys (PKCS#8) only".into(),
            )
        };
        let PrivateKeyDer::Pkcs8(k) = &der else { return Err(refused()) };
        if let Ok(key) = p256::ecdsa::SigningKey::from_pkcs8_der(k.secret_pkcs8_der()) {
            return Ok(Arc::new(EcdsaKey(Arc::new(key))));
        }
        // Ed25519 signatures draw no randomness (RFC 8032): ring's signer is deterministic as it is.
        rustls::crypto::ring::sign::any_eddsa_type(k).map_err(|_| refused())
    }
}

#[derive(Debug)]
struct EcdsaKey(Arc<p256::ecdsa::SigningKey>);

impl SigningKey for EcdsaKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(EcdsaSigner(self.0.clone())) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct EcdsaSigner(Arc<p256::ecdsa::SigningKey>);

impl Signer for EcdsaSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        use p256::ecdsa::signature::RandomizedSigner;
        let sig: p256::ecdsa::DerSignature = self
            .0
            .try_sign_with_rng(&mut NodeRng, message)
            .map_err(|_| Error::General("ECDSA signing failed".into()))?;
        Ok(sig.as_bytes().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

#[derive(Debug)]
struct X25519;

impl SupportedKxGroup for X25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let secret = x25519_dalek::EphemeralSecret::random_from_rng(NodeRng);
        let public = x25519_dalek::PublicKey::from(&secret);
        Ok(Box::new(X25519Kx { secret, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

struct X25519Kx {
    secret: x25519_dalek::EphemeralSecret,
    public: x25519_dalek::PublicKey,
}

impl ActiveKeyExchange for X25519Kx {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        let peer: [u8; 32] =
            peer.try_into().map_err(|_| Error::from(rustls::PeerMisbehaved::InvalidKeyShare))?;
        Ok(self.secret.diffie_hellman(&peer.into()).as_bytes()[..].into())
    }

    fn pub_key(&self) -> &[u8] {
        self.public.as_bytes()
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

#[derive(Debug)]
struct P256;

impl SupportedKxGroup for P256 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let secret = p256::ecdh::EphemeralSecret::random(&mut NodeRng);
        let public = p256::EncodedPoint::from(secret.public_key()).as_bytes().to_vec();
        Ok(Box::new(P256Kx { secret, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

struct P256Kx {
    secret: p256::ecdh::EphemeralSecret,
    public: Vec<u8>,
}

impl ActiveKeyExchange for P256Kx {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        let peer = p256::PublicKey::from_sec1_bytes(peer)
            .map_err(|_| Error::from(rustls::PeerMisbehaved::InvalidKeyShare))?;
        Ok(self.secret.diffie_hellman(&peer).raw_secret_bytes()[..].into())
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;
    use rustls::pki_types::pem::PemObject;

    fn key_share(seed: u64) -> Vec<u8> {
        let rng = Rc::new(RefCell::new(ChaCha20Rng::seed_from_u64(seed)));
        with_rng(&rng, || X25519.start().unwrap().pub_key().to_vec())
    }

    #[test]
    fn key_shares_and_randoms_follow_the_node_seed() {
        assert_eq!(key_share(1), key_share(1), "the same seed, the same key share");
        assert_ne!(key_share(1), key_share(2));
        let rng = Rc::new(RefCell::new(ChaCha20Rng::seed_from_u64(5)));
        let (a, b) = with_rng(&rng, || {
            let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
            NodeRandom.fill(&mut a).unwrap();
            NodeRandom.fill(&mut b).unwrap();
            (a, b)
        });
        assert_ne!(a, b, "a generator, not a constant");
        let again = Rc::new(RefCell::new(ChaCha20Rng::seed_from_u64(5)));
        let mut c = [0u8; 32];
        with_rng(&again, || NodeRandom.fill(&mut c).unwrap());
        assert_eq!(a, c);
    }

    #[test]
    fn p256_key_exchange_agrees_and_signatures_verify() {
        let rng = Rc::new(RefCell::new(ChaCha20Rng::seed_from_u64(9)));
        with_rng(&rng, || {
            let (a, b) = (P256.start().unwrap(), P256.start().unwrap());
            let pa = a.pub_key().to_vec();
            let sa = a.complete(b.pub_key()).unwrap();
            let sb = b.complete(&pa).unwrap();
            assert_eq!(sa.secret_bytes(), sb.secret_bytes());
            let der = rustls::pki_types::PrivateKeyDer::from_pem_slice(morgana_tls::dev::KEY_PEM).unwrap();
            let key = NodeRandom.load_private_key(der).unwrap();
            let signer = key.choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256]).unwrap();
            let sig = signer.sign(b"hello").unwrap();
            use p256::ecdsa::signature::Verifier;
            let vk = *p256::ecdsa::SigningKey::from_pkcs8_der(
                rustls::pki_types::PrivateKeyDer::from_pem_slice(morgana_tls::dev::KEY_PEM)
                    .unwrap()
                    .secret_der(),
            )
            .unwrap()
            .verifying_key();
            let sig = p256::ecdsa::DerSignature::try_from(&sig[..]).unwrap();
            assert!(vk.verify(b"hello", &sig).is_ok());
        });
    }
}
