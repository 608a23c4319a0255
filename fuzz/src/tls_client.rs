//! The TLS client (`morgana_tls::TlsClient::connect`): a server's byte stream, delivered in
//! pieces cut at points drawn from the input, to a client that trusts the development CA.
//!
//! Input: a little-endian u16 (the split seed), then the stream. Checked beyond "no panic":
//! once the server has closed, the handshake (or the session) ends; everything the client
//! writes is whole TLS records of the known types and versions. Seeds are the server flights of
//! real sessions (TLS 1.3 and 1.2); with TLS 1.2 the certificate is in the clear, so its
//! parsing and verification are reached.

use futures::future::join3;
use morgana::Flow;
use morgana_mem::{ManualClock, pipe};
use morgana_tls::{TlsClient, TlsTime};

use crate::tls_server::{CLIENT_CONFIG, NOW, check_records, echo, read_all, recorded_sessions, send_pieces};
use crate::util::{run_virtual, split, with_seed};

/// Feed one server byte stream.
pub fn run(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let seed = u16::from_le_bytes([data[0], data[1]]);
    let pieces = split(&data[2..], seed);
    let out = run_virtual(3600, |_| async {
        let (client_end, server_end) = pipe(64 * 1024);
        let (mut rx, mut tx) = server_end.split();
        let connect = async {
            let client =
                TlsClient::new(CLIENT_CONFIG.with(|c| c.clone()), TlsTime::new(ManualClock::new(NOW)));
            if let Ok(tls) = client.connect("localhost", client_end).await {
                echo(tls).await;
            }
        };
        join3(connect, send_pieces(&mut tx, &pieces), read_all(&mut rx)).await.2
    })
    .expect("the client finishes once the server has closed");
    check_records(&out, "client");
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
