//! TLS sessions over the in-memory pipe, on virtual time: handshakes, data both ways in small
//! pieces, close_notify and half-close, and broken peers.

use std::future::Future;
use std::sync::Arc;

use embedded_io_async::{Read, Write};
use futures::future::join;
use morgana::{Flow, FlowWrite, Key, KvError, KvRw, StackError};
use morgana_mem::{MemKv, PipeEnd, pipe, pipe_chunked};
use morgana_rt::{Executor, Handle, VirtualTime};
use morgana_tls::rustls::crypto::CryptoProvider;
use morgana_tls::rustls::{AlertDescription, CertificateError, ProtocolVersion, ServerConfig, version};
use morgana_tls::{
    ConfigError, Identity, TlsClient, TlsError, TlsServer, TlsTime, client_config, dev, roots_from_pem,
    server_config,
};

type Clock = Handle<VirtualTime>;

fn run<F: Future>(f: impl FnOnce(Clock) -> F) -> F::Output {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let out = exec.block_on(&mut time.park(), f(exec.handle()));
    out.expect("the test must not stall")
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(morgana_tls::rustls::crypto::ring::default_provider())
}

fn server(clock: &Clock) -> TlsServer<Clock> {
    let time = TlsTime::new(clock.clone());
    let config = server_config(provider(), &time, dev::identity().unwrap()).unwrap();
    TlsServer::new(Arc::new(config), time)
}

/// A server that only speaks `version`.
fn server_only(
    clock: &Clock,
    version: &'static morgana_tls::rustls::SupportedProtocolVersion,
) -> TlsServer<Clock> {
    let time = TlsTime::new(clock.clone());
    let id = dev::identity().unwrap();
    let mut config = ServerConfig::builder_with_details(provider(), time.provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(id.chain, id.key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsServer::new(Arc::new(config), time)
}

fn client(clock: &Clock) -> TlsClient<Clock> {
    let time = TlsTime::new(clock.clone());
    let roots = roots_from_pem(dev::CA_PEM, "dev CA").unwrap();
    TlsClient::new(Arc::new(client_config(provider(), &time, roots).unwrap()), time)
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Read until EOF with reads of at most `chunk` bytes.
async fn read_to_end<R: Read>(r: &mut R, chunk: usize) -> Result<Vec<u8>, R::Error> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn handshakes_with_tls13_and_tls12_and_agrees_on_http11() {
    for (version, expected) in
        [(&version::TLS13, ProtocolVersion::TLSv1_3), (&version::TLS12, ProtocolVersion::TLSv1_2)]
    {
        let (s, c) = run(|clock| async move {
            let (server, client) = (server_only(&clock, version), client(&clock));
            let (a, b) = pipe(16 * 1024);
            let (s, c) = join(server.accept(a), client.connect("localhost", b)).await;
            let (s, c) = (s.unwrap(), c.unwrap());
            (
                (s.protocol_version(), s.alpn_protocol()),
                (c.protocol_version(), c.alpn_protocol(), c.cipher_suite().is_some()),
            )
        });
        assert_eq!(s, (Some(expected), Some(b"http/1.1".to_vec())));
        assert_eq!(c, (Some(expected), Some(b"http/1.1".to_vec()), true));
    }
}

/// A client offering exactly `alpn` (none: no ALPN extension).
fn client_offering(clock: &Clock, alpn: &[&[u8]]) -> TlsClient<Clock> {
    let time = TlsTime::new(clock.clone());
    let roots = roots_from_pem(dev::CA_PEM, "dev CA").unwrap();
    let mut config = client_config(provider(), &time, roots).unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsClient::new(Arc::new(config), time)
}

#[test]
fn the_server_accepts_alpn_http10_and_prefers_http11() {
    // What `curl --http1.0` offers, what curl offers by default, no ALPN at all, and only h2.
    let offers: [&[&[u8]]; 5] = [&[b"http/1.0"], &[b"http/1.1"], &[b"http/1.0", b"http/1.1"], &[], &[b"h2"]];
    let outcomes = run(|clock| async move {
        let server = server(&clock);
        let mut outcomes = Vec::new();
        for offer in offers {
            let client = client_offering(&clock, offer);
            let (a, b) = pipe(16 * 1024);
            let (s, c) = join(server.accept(a), client.connect("localhost", b)).await;
            outcomes.push(match (s, c) {
                (Ok(s), Ok(c)) => Ok((s.alpn_protocol(), c.alpn_protocol())),
                (s, c) => Err((s.err().map(|e| e.to_string()), c.err().map(|e| e.to_string()))),
            });
        }
        outcomes
    });
    let agreed = |p: &[u8]| Ok((Some(p.to_vec()), Some(p.to_vec())));
    assert_eq!(outcomes[0], agreed(b"http/1.0"), "curl --http1.0");
    assert_eq!(outcomes[1], agreed(b"http/1.1"));
    assert_eq!(outcomes[2], agreed(b"http/1.1"), "the server's preference wins");
    assert_eq!(outcomes[3], Ok((None, None)), "no ALPN offered, none chosen");
    let Err((server_side, client_side)) = &outcomes[4] else { panic!("h2 only: {:?}", outcomes[4]) };
    let server_side = server_side.as_deref().unwrap_or_default();
    assert!(server_side.contains("peer doesn't support any known protocol"), "{server_side}");
    assert!(client_side.is_some(), "the client's handshake fails too");
}

#[test]
fn data_both_ways_at_once_through_small_buffers_and_partial_io() {
    // 333-byte pipe operations and 7-byte application reads: every record arrives in pieces and
    // is read out in pieces, while both sides write at the same time (split halves).
    let up = pattern(300_000, 1);
    let down = pattern(200_000, 2);
    let (got_up, got_down) = run(|clock| {
        let (up, down) = (up.clone(), down.clone());
        async move {
            let (server, client) = (server(&clock), client(&clock));
            let (a, b) = pipe_chunked(1000, 333);
            let (s, c) = join(server.accept(a), client.connect("localhost", b)).await;
            let (mut sr, mut sw) = s.unwrap().split();
            let (mut cr, mut cw) = c.unwrap().split();
            let server_side = async {
                let send = async {
                    for piece in down.chunks(4097) {
                        sw.write_all(piece).await.unwrap();
                    }
                    sw.shutdown_write().await.unwrap();
                };
                let (_, got) = join(send, read_to_end(&mut sr, 7)).await;
                got.unwrap()
            };
            let client_side = async {
                let send = async {
                    cw.write_all(&up).await.unwrap();
                    cw.shutdown_write().await.unwrap();
                };
                let (_, got) = join(send, read_to_end(&mut cr, 1500)).await;
                got.unwrap()
            };
            join(server_side, client_side).await
        }
    });
    assert!(got_up == up, "client-to-server bytes differ");
    assert!(got_down == down, "server-to-client bytes differ");
}

#[test]
fn close_notify_ends_reads_and_the_other_direction_stays_open() {
    let (server_saw, client_saw, write_after_close) = run(|clock| async move {
        let (server, client) = (server(&clock), client(&clock));
        let (a, b) = pipe(64 * 1024);
        let (s, c) = join(server.accept(a), client.connect("localhost", b)).await;
        let (mut s, mut c) = (s.unwrap(), c.unwrap());
        s.write_all(b"last words").await.unwrap();
        s.shutdown_write().await.unwrap();
        let write_after_close = s.write(b"more").await;
        let client_saw = read_to_end(&mut c, 64).await.unwrap();
        // Half-closed: the client still talks, the server still listens.
        c.write_all(b"reply after close_notify").await.unwrap();
        c.close().await.unwrap();
        let server_saw = read_to_end(&mut s, 64).await.unwrap();
        (server_saw, client_saw, write_after_close)
    });
    assert_eq!(client_saw, b"last words");
    assert_eq!(server_saw, b"reply after close_notify");
    assert!(matches!(write_after_close, Err(TlsError::Closed)), "{write_after_close:?}");
}

#[test]
fn a_flow_closed_mid_record_is_a_truncation_not_a_clean_end() {
    let (in_handshake, in_session) = run(|clock| async move {
        let (server, client) = (server(&clock), client(&clock));
        // During the handshake: half a record header, then FIN.
        let (a, mut raw) = pipe(64 * 1024);
        raw.write_all(&[0x16, 0x03]).await.unwrap();
        raw.shutdown_write().await.unwrap();
        let in_handshake = server.accept(a).await.map(|_| ());
        // After it: the header of a 1000-byte record and 10 bytes of it, then FIN.
        let (a, b) = pipe(64 * 1024);
        let (s, c) = join(server.accept(a), client.connect("localhost", b)).await;
        let (mut s, mut c) = (s.unwrap(), c.unwrap());
        s.write_all(b"complete").await.unwrap();
        s.get_mut().write_all(&[0x17, 0x03, 0x03, 0x03, 0xe8]).await.unwrap();
        s.get_mut().write_all(&[0u8; 10]).await.unwrap();
        s.get_mut().shutdown_write().await.unwrap();
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"complete", "data before the cut arrives");
        (in_handshake, c.read(&mut buf).await)
    });
    assert!(matches!(in_handshake, Err(TlsError::UnexpectedEof)), "{in_handshake:?}");
    assert!(matches!(in_session, Err(TlsError::UnexpectedEof)), "{in_session:?}");
}

#[test]
fn garbage_gets_an_alert_and_a_clear_error() {
    let (result, reply) = run(|clock| async move {
        let server = server(&clock);
        let (a, mut raw) = pipe(64 * 1024);
        raw.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let result = server.accept(a).await.map(|_| ());
        let mut reply = Vec::new();
        let _ = raw.read_to_end_into(&mut reply).await;
        (result, reply)
    });
    assert!(matches!(result, Err(TlsError::Protocol(_))), "{result:?}");
    // A fatal alert record: content type 21, then a two-byte alert.
    assert_eq!(reply.first(), Some(&0x15), "the server answers with an alert record: {reply:?}");
    assert_eq!(reply.len(), 7);
    assert_eq!(reply[5], 2, "fatal");
}

/// Read everything a raw pipe end receives until EOF.
trait ReadToEnd {
    async fn read_to_end_into(&mut self, out: &mut Vec<u8>) -> Result<(), StackError>;
}

impl ReadToEnd for PipeEnd {
    async fn read_to_end_into(&mut self, out: &mut Vec<u8>) -> Result<(), StackError> {
        let mut buf = [0u8; 512];
        loop {
            let n = self.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            out.extend_from_slice(&buf[..n]);
        }
    }
}

#[test]
fn a_forged_record_after_the_handshake_fails_both_sides_cleanly() {
    let (server_read, client_read, write_after) = run(|clock| async move {
        let (server, client) = (server(&clock), client(&clock));
        let (a, b) = pipe(64 * 1024);
        let (s, c) = join(server.accept(a), client.connect("localhost", b)).await;
        let (mut s, mut c) = (s.unwrap(), c.unwrap());
        // An application-data record that no key produced.
        let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
        forged.extend_from_slice(&pattern(32, 9));
        c.get_mut().write_all(&forged).await.unwrap();
        let mut buf = [0u8; 64];
        let server_read = s.read(&mut buf).await.map(|_| ());
        let write_after = s.write(b"x").await.map(|_| ());
        let client_read = c.read(&mut buf).await.map(|_| ());
        (server_read, client_read, write_after)
    });
    assert!(
        matches!(server_read, Err(TlsError::Protocol(morgana_tls::rustls::Error::DecryptError))),
        "{server_read:?}"
    );
    assert!(
        matches!(write_after, Err(TlsError::Protocol(_))),
        "a failed session stays failed: {write_after:?}"
    );
    assert!(
        matches!(client_read, Err(TlsError::AlertReceived(AlertDescription::BadRecordMac))),
        "the client learns why: {client_read:?}"
    );
}

#[test]
fn an_unknown_ca_or_a_wrong_name_is_refused_on_both_sides() {
    let (wrong_name, unknown_ca, server_side) = run(|clock| async move {
        let server = server(&clock);
        let client = client(&clock);
        let (a, b) = pipe(64 * 1024);
        let (s, c) = join(server.accept(a), client.connect("example.com", b)).await;
        let wrong_name = c.map(|_| ());
        let _ = s;
        // A client whose only anchor is the leaf itself: the leaf's issuer is unknown to it.
        let time = TlsTime::new(clock.clone());
        let mut roots = morgana_tls::rustls::RootCertStore::empty();
        roots.add(dev::identity().unwrap().chain[0].clone()).unwrap();
        let strict = TlsClient::new(Arc::new(client_config(provider(), &time, roots).unwrap()), time);
        let (a, b) = pipe(64 * 1024);
        let (s, c) = join(server.accept(a), strict.connect("localhost", b)).await;
        (wrong_name, c.map(|_| ()), s.map(|_| ()))
    });
    assert!(
        matches!(wrong_name, Err(TlsError::Protocol(morgana_tls::rustls::Error::InvalidCertificate(_)))),
        "{wrong_name:?}"
    );
    assert!(
        matches!(
            unknown_ca,
            Err(TlsError::Protocol(morgana_tls::rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            )))
        ),
        "{unknown_ca:?}"
    );
    assert!(
        matches!(server_side, Err(TlsError::AlertReceived(AlertDescription::UnknownCA))),
        "{server_side:?}"
    );
}

#[test]
fn identity_comes_from_a_kv_store_and_bad_files_say_what_is_wrong() {
    run(|clock| async move {
        let kv = MemKv::new(clock.clone());
        let (pem, key) = (Key::parse("/server.pem").unwrap(), Key::parse("/server.key").unwrap());
        let missing = Identity::from_kv(&kv, &pem, &key).await.map(|_| ());
        assert_eq!(missing, Err(ConfigError::Kv(KvError::NotFound(pem.clone()))));
        kv.set(&pem, dev::CHAIN_PEM).await.unwrap();
        kv.set(&key, b"not a key").await.unwrap();
        let bad = Identity::from_kv(&kv, &pem, &key).await.map(|_| ()).unwrap_err();
        assert_eq!(bad.to_string(), "TLS configuration: /server.key: no PRIVATE KEY in PEM format");
        kv.set(&key, dev::KEY_PEM).await.unwrap();
        let id = Identity::from_kv(&kv, &pem, &key).await.unwrap();
        assert_eq!(id.chain.len(), 1);
        // A key that does not match the certificate is refused by rustls.
        let time = TlsTime::new(clock.clone());
        let mismatched = Identity { chain: roots_chain(), key: id.key.clone_key() };
        assert!(matches!(server_config(provider(), &time, mismatched), Err(ConfigError::Rustls(_))));
    });
}

fn roots_chain() -> Vec<morgana_tls::rustls::pki_types::CertificateDer<'static>> {
    morgana_tls::certs_from_pem(dev::CA_PEM, "ca").unwrap()
}

#[test]
fn the_bare_metal_provider_rustcrypto_interoperates_with_ring() {
    for version in [&version::TLS13, &version::TLS12] {
        let echoed = run(|clock| async move {
            let rustcrypto = Arc::new(rustls_rustcrypto::provider());
            // Server on rustcrypto, client on ring.
            let time = TlsTime::new(clock.clone());
            let id = dev::identity().unwrap();
            let mut config = ServerConfig::builder_with_details(rustcrypto.clone(), time.provider())
                .with_protocol_versions(&[version])
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(id.chain, id.key)
                .unwrap();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let server = TlsServer::new(Arc::new(config), time);
            // Client on rustcrypto too, against a ring server.
            let time = TlsTime::new(clock.clone());
            let roots = roots_from_pem(dev::CA_PEM, "dev CA").unwrap();
            let rc_client = TlsClient::new(Arc::new(client_config(rustcrypto, &time, roots).unwrap()), time);
            let mut echoed = Vec::new();
            for (server, client) in [(&server, &client(&clock)), (&server_only(&clock, version), &rc_client)]
            {
                let (a, b) = pipe(16 * 1024);
                let (s, c) = join(server.accept(a), client.connect("localhost", b)).await;
                let (mut s, mut c) = (s.unwrap(), c.unwrap());
                let msg = pattern(50_000, 3);
                let (_, got) = join(
                    async {
                        let mut buf = vec![0u8; msg.len()];
                        s.read_exact(&mut buf).await.unwrap();
                        s.write_all(&buf).await.unwrap();
                        s.close().await.unwrap();
                    },
                    async {
                        c.write_all(&msg).await.unwrap();
                        read_to_end(&mut c, 4096).await.unwrap()
                    },
                )
                .await;
                echoed.push((got == msg, s_version(&c)));
            }
            echoed
        });
        let expected = if std::ptr::eq(version, &version::TLS13) {
            ProtocolVersion::TLSv1_3
        } else {
            ProtocolVersion::TLSv1_2
        };
        assert_eq!(echoed, [(true, Some(expected)), (true, Some(expected))]);
    }
}

fn s_version<F: Flow>(c: &morgana_tls::ClientStream<F>) -> Option<ProtocolVersion> {
    c.protocol_version()
}
