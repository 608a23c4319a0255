//! The TLS client (`morgana_tls::TlsClient::connect`): a server's byte stream, delivered in
//! pieces cut at points drawn from the input, to a client that trusts the development CA.
//!
//! Input: a little-endian u16 (the split seed), then the stream. Checked beyond "no panic":
//! once the server has closed, the handshake (or the session) ends; everything the client
//! writes is whole TLS records of the known types and versions. Seeds are the server flights of
//! real sessions (TLS 1.3 and 1.2); with TLS 1.2 the certificate is in the clear, so its
//! parsing and verification are reached.

use morgana_mem::ManualClock;
use morgana_tls::{TlsClient, TlsTime};

use crate::tls_server::{CLIENT_CONFIG, NOW, echo, feed_tls, recorded_sessions};
use crate::util::with_seed;

/// Feed one server byte stream.
pub fn run(data: &[u8]) {
    feed_tls(data, "client", async |end| {
        let client = TlsClient::new(CLIENT_CONFIG.with(|c| c.clone()), TlsTime::new(ManualClock::new(NOW)));
        if let Ok(tls) = client.connect("localhost", end).await {
            echo(tls).await;
        }
    });
}

/// What morgana-tls's own server sent in real sessions, whole and cut.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, _, s2c) in recorded_sessions() {
        out.push((format!("{name}-server"), with_seed(0, &s2c)));
        out.push((format!("{name}-server-split"), with_seed(0x3c3c, &s2c)));
    }
    out
}
