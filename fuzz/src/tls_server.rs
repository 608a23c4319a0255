//! The TLS server (`morgana_tls::TlsServer::accept`): a client's byte stream, delivered in
//! pieces cut at points drawn from the input, to a server with the development certificate.
//!
//! Input: a little-endian u16 (the split seed), then the stream. Checked beyond "no panic":
//! once the client has closed, the handshake (or the session, if one was made) ends; it never
//! waits forever. Everything the server writes is a sequence of whole TLS records of the known
//! types and versions, each no longer than the protocol allows.
//!
//! Without the client's keys the fuzzer reaches record framing, ClientHello and the first
//! flight's parsing, and the errors and alerts after them; what follows a real handshake is
//! the pipe tests' ground (`stacks/tls/tests/pipe.rs`).

use std::sync::Arc;
use std::time::Duration;

use embedded_io_async::{Read, Write};
use morgana::{Flow, FlowWrite};
use morgana_mem::{ManualClock, PipeEnd, pipe};
use morgana_tls::rustls::crypto::CryptoProvider;
use morgana_tls::rustls::{ClientConfig, ServerConfig, version};
use morgana_tls::{TlsClient, TlsServer, TlsTime, client_config, dev, roots_from_pem, server_config};

use crate::util::{feed, run_virtual, split, with_seed};

/// 2026-01-01: inside the development certificate's validity.
pub(crate) const NOW: Duration = Duration::from_secs(1_767_225_600);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(morgana_tls::rustls::crypto::ring::default_provider())
}

thread_local! {
    /// Built once: parsing the certificate and key is not what is under test. Its time provider
    /// reads a fixed date.
    static SERVER_CONFIG: Arc<ServerConfig> = {
        let time = TlsTime::new(ManualClock::new(NOW));
        Arc::new(server_config(provider(), &time, dev::identity().expect("dev identity")).expect("server config"))
    };
    pub(crate) static CLIENT_CONFIG: Arc<ClientConfig> = {
        let time = TlsTime::new(ManualClock::new(NOW));
        let roots = roots_from_pem(dev::CA_PEM, "dev CA").expect("dev CA");
        Arc::new(client_config(provider(), &time, roots).expect("client config"))
    };
}

fn server() -> TlsServer<ManualClock> {
    TlsServer::new(SERVER_CONFIG.with(|c| c.clone()), TlsTime::new(ManualClock::new(NOW)))
}

/// After a handshake: echo what arrives until the peer closes or fails, then close.
pub(crate) async fn echo<F: Flow>(mut tls: F) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = tls.read(&mut buf).await {
        if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = tls.close().await;
}

/// Check that `out` is whole TLS records (0x0301 is the version a ClientHello's record carries).
pub(crate) fn check_records(out: &[u8], who: &str) {
    let mut rest = out;
    let mut n = 0;
    while !rest.is_empty() {
        assert!(rest.len() >= 5, "{who}: record {n} has a truncated header: {rest:02x?}");
        let (ty, ver, len) =
            (rest[0], u16::from_be_bytes([rest[1], rest[2]]), u16::from_be_bytes([rest[3], rest[4]]));
        assert!(matches!(ty, 20..=23), "{who}: record {n} has content type {ty}");
        assert!(matches!(ver, 0x0301..=0x0303), "{who}: record {n} has version {ver:#06x}");
        assert!(usize::from(len) <= 16384 + 2048, "{who}: record {n} is {len} bytes long");
        assert!(rest.len() >= 5 + usize::from(len), "{who}: record {n} is cut short");
        rest = &rest[5 + usize::from(len)..];
        n += 1;
    }
}

/// Feed one client byte stream.
pub fn run(data: &[u8]) {
    feed_tls(data, "server", async |end| {
        if let Ok(tls) = server().accept(end).await {
            echo(tls).await;
        }
    });
}

/// The TLS harnesses' common part: split the stream after its seed, feed it to `side` (which
/// must end once the stream ends) and check what `side` wrote.
pub(crate) fn feed_tls(data: &[u8], who: &str, side: impl AsyncFnOnce(PipeEnd)) {
    if data.len() < 2 {
        return;
    }
    let pieces = split(&data[2..], u16::from_le_bytes([data[0], data[1]]));
    let out = run_virtual(3600, |_| async { feed(&pieces, side).await.1 })
        .unwrap_or_else(|| panic!("the {who} did not finish once its peer had closed"));
    check_records(&out, who);
}

/// A real handshake and a few bytes each way between morgana-tls's client and server (TLS 1.3,
/// and a TLS 1.2-only server); what the client sent and what the server sent.
pub(crate) fn recorded_sessions() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, tls12) in [("tls13", false), ("tls12", true)] {
        let (c2s, s2c) = run_virtual(3600, |_| async move {
            let server = if tls12 {
                let time = TlsTime::new(ManualClock::new(NOW));
                let id = dev::identity().expect("dev identity");
                let mut config = ServerConfig::builder_with_details(provider(), time.provider())
                    .with_protocol_versions(&[&version::TLS12])
                    .expect("TLS 1.2")
                    .with_no_client_auth()
                    .with_single_cert(id.chain, id.key)
                    .expect("dev certificate");
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                TlsServer::new(Arc::new(config), time)
            } else {
                server()
            };
            let client =
                TlsClient::new(CLIENT_CONFIG.with(|c| c.clone()), TlsTime::new(ManualClock::new(NOW)));
            let (client_end, relay_c) = pipe(64 * 1024);
            let (relay_s, server_end) = pipe(64 * 1024);
            let (c_rx, c_tx) = relay_c.split();
            let (s_rx, s_tx) = relay_s.split();
            let serve = async {
                if let Ok(tls) = server.accept(server_end).await {
                    echo(tls).await;
                }
            };
            let talk = async {
                let mut tls = client.connect("localhost", client_end).await.expect("dev handshake");
                tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("write");
                let mut buf = [0u8; 8];
                tls.read_exact(&mut buf).await.expect("echo");
                let _ = tls.close().await;
            };
            let up = relay_halves(c_rx, s_tx);
            let down = relay_halves(s_rx, c_tx);
            let (((), ()), (c2s, s2c)) =
                futures::future::join(futures::future::join(serve, talk), futures::future::join(up, down))
                    .await;
            (c2s, s2c)
        })
        .expect("a handshake on pipes finishes");
        out.push((name, c2s, s2c));
    }
    out
}

async fn relay_halves<R: Read, W: FlowWrite>(mut from: R, mut to: W) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let _ = to.shutdown_write().await;
    seen
}

/// What morgana-tls's own client sent in real sessions, whole and cut.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, c2s, _) in recorded_sessions() {
        let hello_len = 5 + usize::from(u16::from_be_bytes([c2s[3], c2s[4]]));
        out.push((format!("{name}-session"), with_seed(0, &c2s)));
        out.push((format!("{name}-session-split"), with_seed(0x7777, &c2s)));
        out.push((format!("{name}-hello"), with_seed(0, &c2s[..hello_len.min(c2s.len())])));
    }
    out
}
