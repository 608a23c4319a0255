//! `TlsStack` under an app that only knows `TcpStack`: `apps/echo`'s generic `start` over TLS on
//! the in-memory stack, on the simulated platform (virtual time, so deadlines cost nothing).

use std::pin::pin;
use std::sync::Arc;

use futures::future::{Either, join, select};
use morgana::embedded_io_async::{Read, Write};
use morgana::{Clock, Duration, Flow, FlowWrite, Instant, Platform, StackError, TcpListener, TcpStack};
use morgana_mem::sim::{Sim, SimPlatform};
use morgana_mem::{MemTcp, MemTcpNet};
use morgana_rt::{Handle, VirtualTime};
use morgana_tls::rustls::ProtocolVersion;
use morgana_tls::rustls::crypto::CryptoProvider;
use morgana_tls::{TlsStack, dev, roots_from_pem};

type Tls = TlsStack<MemTcp, Handle<VirtualTime>>;

const ECHO: &str = "127.0.0.1:7";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(morgana_tls::rustls::crypto::ring::default_provider())
}

/// Both sides over `stack`: the development certificate served, its CA trusted.
fn tls(p: &SimPlatform, stack: MemTcp) -> Tls {
    TlsStack::new(stack, p.clock())
        .with_identity(provider(), dev::identity().unwrap())
        .unwrap()
        .with_roots(provider(), roots_from_pem(dev::CA_PEM, "dev CA").unwrap())
        .unwrap()
}

/// Run `echo` on `server` (port 7) while `clients` runs; the clients' result.
async fn with_echo<T>(p: SimPlatform, server: Tls, clients: impl Future<Output = T>) -> T {
    let echo = echo::start(p, server, echo::Config { port: 7, backlog: 16 });
    match select(pin!(echo), pin!(clients)).await {
        Either::Left((stopped, _)) => panic!("echo stopped: {stopped:?}"),
        Either::Right((out, _)) => out,
    }
}

/// Send `data` on one half and read on the other until the peer closes: what came back.
async fn round_trip<F: Flow<Error = StackError>>(conn: F, data: &[u8]) -> Vec<u8> {
    let (mut rx, mut tx) = conn.split();
    let send = async {
        tx.write_all(data).await.unwrap();
        tx.shutdown_write().await.unwrap();
    };
    let receive = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match rx.read(&mut buf).await.unwrap() {
                0 => break got,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    join(send, receive).await.1
}

#[test]
fn echo_over_tls_echoes_what_a_client_of_the_same_stack_sends() {
    let out = Sim::new(1).run(|p| async move {
        let stack = tls(&p, MemTcpNet::new().host([127, 0, 0, 1]));
        with_echo(p, stack.clone(), async {
            let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
            let conn = stack.connect(ECHO.parse().unwrap()).await.unwrap();
            assert_eq!(conn.protocol_version(), Some(ProtocolVersion::TLSv1_3));
            let got = round_trip(conn, &data).await;
            assert!(got == data, "{} of {} bytes back, byte-exact", got.len(), data.len());
        })
        .await
    });
    out.result.unwrap();
    let closed = out.messages().iter().any(|m| m.ends_with("closed: 200000 bytes echoed"));
    assert!(closed, "echo saw a clean TLS close: {:?}", out.messages());
}

#[test]
fn a_client_that_never_handshakes_is_cut_at_the_deadline_while_a_real_one_is_served() {
    let out = Sim::new(2).run(|p| async move {
        let clock = p.clock();
        let inner = MemTcpNet::new().host([127, 0, 0, 1]);
        let stack = tls(&p, inner.clone()).with_handshake_timeout(Duration::from_secs(5));
        with_echo(p, stack.clone(), async {
            // Plain TCP to the TLS port, and not a byte sent.
            let mut silent = inner.connect(ECHO.parse().unwrap()).await.unwrap();
            let conn = stack.connect(ECHO.parse().unwrap()).await.unwrap();
            assert_eq!(round_trip(conn, b"served").await, b"served");
            let served = clock.now();
            assert!(
                served < Instant::ZERO + Duration::from_secs(1),
                "served at {served}, before the deadline"
            );
            let mut buf = [0u8; 16];
            assert_eq!(silent.read(&mut buf).await, Ok(0), "the silent connection is closed");
            clock.now()
        })
        .await
    });
    let cut = out.result.unwrap();
    assert!(
        cut >= Instant::ZERO + Duration::from_secs(5) && cut < Instant::ZERO + Duration::from_secs(6),
        "cut at {cut}, not at the 5 s deadline"
    );
}

#[test]
fn a_certificate_for_another_name_is_refused_at_connect_with_a_clear_error() {
    let out = Sim::new(3).run(|p| async move {
        let net = MemTcpNet::new();
        let server = tls(&p, net.host([10, 0, 0, 1]));
        let client = tls(&p, net.host([10, 0, 0, 2]));
        let addr = "10.0.0.1:7".parse().unwrap();
        with_echo(p, server, async {
            // By default the name checked is the address, which the certificate does not name.
            let by_address = client.connect(addr).await.err();
            let wrong =
                client.clone().with_server_name("example.com".try_into().unwrap()).connect(addr).await.err();
            // A name per address, the right one: served.
            let right = client.clone().with_server_names(|_| "localhost".try_into().unwrap());
            let echoed = round_trip(right.connect(addr).await.unwrap(), b"named").await;
            (by_address, wrong, echoed)
        })
        .await
    });
    let (by_address, wrong, echoed) = out.result.unwrap();
    let refused = StackError::Tls("the peer's certificate is not valid for the server name");
    assert_eq!(by_address, Some(refused));
    assert_eq!(wrong, Some(refused));
    assert_eq!(refused.to_string(), "TLS: the peer's certificate is not valid for the server name");
    assert_eq!(echoed, b"named");
}

#[test]
fn connect_gives_up_on_a_server_that_never_answers_the_handshake() {
    let out = Sim::new(4).run(|p| async move {
        let clock = p.clock();
        let net = MemTcpNet::new();
        let mut mute = net.host([10, 0, 0, 1]).listen(443, 1).await.unwrap();
        let client = tls(&p, net.host([10, 0, 0, 2])).with_handshake_timeout(Duration::from_secs(3));
        let (held, refused) = join(mute.accept(), client.connect("10.0.0.1:443".parse().unwrap())).await;
        let mut held = held.unwrap().0;
        // The client hung up at its deadline.
        let mut hello = Vec::new();
        held.read_to_end_or_eof(&mut hello).await;
        assert!(!hello.is_empty(), "the ClientHello was sent");
        (refused.err(), clock.now())
    });
    let (refused, at) = out.result.unwrap();
    assert_eq!(refused, Some(StackError::TimedOut));
    assert_eq!(at, Instant::ZERO + Duration::from_secs(3));
}

#[test]
fn a_side_left_unconfigured_is_unsupported() {
    let out = Sim::new(5).run(|p| async move {
        let net = MemTcpNet::new();
        let bare = TlsStack::new(net.host([10, 0, 0, 1]), p.clock());
        let listen = bare.listen(443, 1).await.err();
        let connect = bare.connect("10.0.0.1:443".parse().unwrap()).await.err();
        (listen, connect)
    });
    assert_eq!(out.result.unwrap(), (Some(StackError::Unsupported), Some(StackError::Unsupported)));
}

/// Read until end of file, ignoring how it ended (the peer may reset).
trait ReadToEnd {
    async fn read_to_end_or_eof(&mut self, out: &mut Vec<u8>);
}

impl<R: Read> ReadToEnd for R {
    async fn read_to_end_or_eof(&mut self, out: &mut Vec<u8>) {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = self.read(&mut buf).await {
            out.extend_from_slice(&buf[..n]);
        }
    }
}

/// The README's `TlsStack` example is lines of `TlsStack`'s doc example, which runs: it cannot rot.
#[test]
fn the_readme_example_is_the_doc_example_that_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../../README.md")).unwrap();
    let section =
        readme.split("**TLS over your own `TcpStack`.**").nth(1).expect("the README's TLS paragraph");
    let block = section.split("```rust\n").nth(1).and_then(|b| b.split("\n```").next()).unwrap();
    let source = std::fs::read_to_string(root.join("src/stack.rs")).unwrap();
    let doc: Vec<&str> = source.lines().filter_map(|l| l.strip_prefix("///")).map(str::trim).collect();
    let lines: Vec<&str> = block.lines().map(str::trim).collect();
    assert!(
        doc.windows(lines.len()).any(|w| w == lines),
        "the README's example is not in TlsStack's doc example:\n{block}"
    );
}
