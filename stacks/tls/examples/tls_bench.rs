//! morgana-tls against raw rustls (its unbuffered API driven by hand, as in rustls's own
//! examples), same provider (ring), same in-memory pipe: full handshakes per second and bulk
//! throughput. Run by `cargo xtask bench www`; prints one line per figure with the ratio.

use std::sync::Arc;
use std::time::Instant as StdInstant;

use embedded_io_async::{Read, Write};
use futures::future::join;
use morgana_mem::{PipeEnd, pipe};
use morgana_rt::{Executor, Handle, VirtualTime};
use morgana_tls::rustls::client::{Resumption, UnbufferedClientConnection};
use morgana_tls::rustls::crypto::CryptoProvider;
use morgana_tls::rustls::pki_types::ServerName;
use morgana_tls::rustls::server::UnbufferedServerConnection;
use morgana_tls::rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use morgana_tls::rustls::{ClientConfig, ServerConfig};
use morgana_tls::{Side, TlsClient, TlsServer, TlsTime, client_config, dev, roots_from_pem, server_config};

type Clock = Handle<VirtualTime>;

const PIPE: usize = 256 * 1024;
const BULK: usize = 32 << 20;
const PIECE: usize = 16 * 1024;

fn configs(clock: &Clock) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let provider: Arc<CryptoProvider> = Arc::new(morgana_tls::rustls::crypto::ring::default_provider());
    let time = TlsTime::new(clock.clone());
    let mut server = server_config(provider.clone(), &time, dev::identity().unwrap()).unwrap();
    // Full handshakes only: no tickets, no resumption.
    server.send_tls13_tickets = 0;
    let roots = roots_from_pem(dev::CA_PEM, "dev CA").unwrap();
    let mut client = client_config(provider, &time, roots).unwrap();
    client.resumption = Resumption::disabled();
    (Arc::new(server), Arc::new(client))
}

/// Raw rustls over a pipe end: the loop of rustls's unbuffered examples.
struct Raw<S> {
    conn: S,
    io: PipeEnd,
    incoming: Vec<u8>,
    used: usize,
    outgoing: Vec<u8>,
    out_used: usize,
}

impl<S: Side> Raw<S> {
    fn new(conn: S, io: PipeEnd) -> Self {
        Self {
            conn,
            io,
            incoming: vec![0; 18 * 1024 + 512],
            used: 0,
            outgoing: vec![0; 64 * 1024],
            out_used: 0,
        }
    }

    async fn send(&mut self) {
        self.io.write_all(&self.outgoing[..self.out_used]).await.unwrap();
        self.out_used = 0;
    }

    async fn recv(&mut self) {
        let n = self.io.read(&mut self.incoming[self.used..]).await.unwrap();
        assert!(n > 0, "peer closed");
        self.used += n;
    }

    /// Drive until the handshake is over; then, if `data` is given, encrypt and send it; collect
    /// up to `want` bytes of plaintext into `sink` (copied, as any reader would).
    async fn drive(&mut self, data: Option<&[u8]>, want: usize, sink: &mut [u8]) -> usize {
        let mut got = 0;
        let mut data = data;
        loop {
            let UnbufferedStatus { mut discard, state } = self.conn.process(&mut self.incoming[..self.used]);
            let mut io = None;
            match state.unwrap() {
                ConnectionState::ReadTraffic(mut t) => {
                    while let Some(rec) = t.next_record() {
                        let rec = rec.unwrap();
                        discard += rec.discard;
                        let n = rec.payload.len().min(sink.len());
                        sink[..n].copy_from_slice(&rec.payload[..n]);
                        got += rec.payload.len();
                    }
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    let n = match e.encode(&mut self.outgoing[self.out_used..]) {
                        Ok(n) => n,
                        Err(EncodeError::InsufficientSize(s)) => {
                            self.outgoing.resize(self.out_used + s.required_size, 0);
                            e.encode(&mut self.outgoing[self.out_used..]).unwrap()
                        }
                        Err(e) => panic!("{e}"),
                    };
                    self.out_used += n;
                }
                ConnectionState::TransmitTlsData(t) => {
                    t.done();
                    io = Some(true);
                }
                ConnectionState::BlockedHandshake => io = Some(false),
                ConnectionState::WriteTraffic(mut w) => {
                    if let Some(d) = data.take() {
                        let n = match w.encrypt(d, &mut self.outgoing[self.out_used..]) {
                            Ok(n) => n,
                            Err(EncryptError::InsufficientSize(s)) => {
                                self.outgoing.resize(self.out_used + s.required_size, 0);
                                w.encrypt(d, &mut self.outgoing[self.out_used..]).unwrap()
                            }
                            Err(e) => panic!("{e}"),
                        };
                        self.out_used += n;
                        io = Some(true);
                    } else if got >= want && !self.conn.common().is_handshaking() {
                        if discard > 0 {
                            self.incoming.copy_within(discard..self.used, 0);
                            self.used -= discard;
                        }
                        if self.out_used > 0 {
                            self.send().await;
                        }
                        return got;
                    } else {
                        io = Some(false);
                    }
                }
                other => panic!("unexpected state {other:?}"),
            }
            if discard > 0 {
                self.incoming.copy_within(discard..self.used, 0);
                self.used -= discard;
            }
            match io {
                Some(true) => self.send().await,
                Some(false) => {
                    if self.out_used > 0 {
                        self.send().await;
                    }
                    self.recv().await;
                }
                None => {}
            }
        }
    }
}

fn exec<T>(f: impl AsyncFnOnce(Clock) -> T) -> T {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let clock = exec.handle();
    exec.block_on(&mut time.park(), f(clock)).unwrap()
}

fn morgana_handshakes(n: usize) -> f64 {
    exec(async |clock| {
        let (s, c) = configs(&clock);
        let server = TlsServer::new(s, TlsTime::new(clock.clone()));
        let client = TlsClient::new(c, TlsTime::new(clock.clone()));
        let start = StdInstant::now();
        for _ in 0..n {
            let (a, b) = pipe(PIPE);
            let (s, c) = join(server.accept(a), client.connect("localhost", b)).await;
            assert!(s.is_ok() && c.is_ok());
        }
        n as f64 / start.elapsed().as_secs_f64()
    })
}

fn raw_handshakes(n: usize) -> f64 {
    exec(async |clock| {
        let (s, c) = configs(&clock);
        let start = StdInstant::now();
        for _ in 0..n {
            let (a, b) = pipe(PIPE);
            let mut server = Raw::new(UnbufferedServerConnection::new(s.clone()).unwrap(), a);
            let name = ServerName::try_from("localhost").unwrap();
            let mut client = Raw::new(UnbufferedClientConnection::new(c.clone(), name).unwrap(), b);
            let mut sink = [0u8; 0];
            let mut sink2 = [0u8; 0];
            join(server.drive(None, 0, &mut sink), client.drive(None, 0, &mut sink2)).await;
        }
        n as f64 / start.elapsed().as_secs_f64()
    })
}

fn morgana_bulk() -> f64 {
    exec(async |clock| {
        let (s, c) = configs(&clock);
        let server = TlsServer::new(s, TlsTime::new(clock.clone()));
        let client = TlsClient::new(c, TlsTime::new(clock.clone()));
        let (a, b) = pipe(PIPE);
        let (s, c) = join(server.accept(a), client.connect("localhost", b)).await;
        let (mut s, mut c) = (s.unwrap(), c.unwrap());
        let piece = vec![7u8; PIECE];
        let start = StdInstant::now();
        join(
            async {
                for _ in 0..BULK / PIECE {
                    c.write_all(&piece).await.unwrap();
                }
            },
            async {
                let mut buf = vec![0u8; PIECE];
                let mut got = 0;
                while got < BULK {
                    got += s.read(&mut buf).await.unwrap();
                }
            },
        )
        .await;
        BULK as f64 / 1e6 / start.elapsed().as_secs_f64()
    })
}

fn raw_bulk() -> f64 {
    exec(async |clock| {
        let (s, c) = configs(&clock);
        let (a, b) = pipe(PIPE);
        let mut server = Raw::new(UnbufferedServerConnection::new(s).unwrap(), a);
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = Raw::new(UnbufferedClientConnection::new(c, name).unwrap(), b);
        let (mut x, mut y) = ([0u8; 0], [0u8; 0]);
        join(server.drive(None, 0, &mut x), client.drive(None, 0, &mut y)).await;
        let piece = vec![7u8; PIECE];
        let start = StdInstant::now();
        join(
            async {
                let mut none = [0u8; 0];
                for _ in 0..BULK / PIECE {
                    client.drive(Some(&piece), 0, &mut none).await;
                }
            },
            async {
                let mut buf = vec![0u8; PIECE];
                let mut got = 0;
                while got < BULK {
                    got += server.drive(None, 1, &mut buf).await;
                }
            },
        )
        .await;
        BULK as f64 / 1e6 / start.elapsed().as_secs_f64()
    })
}

/// Best of `rounds`, alternating the two contenders so drift and other load hit both alike.
fn best(rounds: usize, a: impl Fn() -> f64, b: impl Fn() -> f64) -> (f64, f64) {
    let (mut x, mut y) = (0f64, 0f64);
    for _ in 0..rounds {
        x = x.max(a());
        y = y.max(b());
    }
    (x, y)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, n) = if quick { (1, 20) } else { (7, 100) };
    let (m, r) = best(rounds, || morgana_handshakes(n), || raw_handshakes(n));
    println!(
        "tls full handshakes/s (TLS 1.3, ECDSA P-256, ring)  morgana-tls {m:8.0}  rustls {r:8.0}  ratio {:.2}  (target >= 0.95)",
        m / r
    );
    let (m, r) = best(rounds, morgana_bulk, raw_bulk);
    println!(
        "tls bulk MB/s (32 MiB in 16 KiB writes, in-memory pipe)  morgana-tls {m:8.0}  rustls {r:8.0}  ratio {:.2}  (target >= 0.95)",
        m / r
    );
}
