//! `TlsListener` on the in-memory TCP stack, on virtual time: a client that never speaks does
//! not stall `accept` for the next one, and its handshake is dropped at the deadline.

use std::future::Future;
use std::sync::Arc;

use embedded_io_async::{Read, Write};
use futures::future::join;
use morgana::time::{TimedOut, timeout};
use morgana::{Clock, Duration, Instant, TcpListener, TcpStack};
use morgana_mem::MemTcpNet;
use morgana_rt::{Executor, Handle, VirtualTime};
use morgana_tls::{
    TlsClient, TlsListener, TlsServer, TlsTime, client_config, dev, roots_from_pem, server_config,
};

type VClock = Handle<VirtualTime>;

fn run<F: Future>(f: impl FnOnce(VClock) -> F) -> F::Output {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    exec.block_on(&mut time.park(), f(exec.handle())).expect("the test must not stall")
}

fn provider() -> Arc<morgana_tls::rustls::crypto::CryptoProvider> {
    Arc::new(morgana_tls::rustls::crypto::ring::default_provider())
}

fn server(clock: &VClock) -> TlsServer<VClock> {
    let time = TlsTime::new(clock.clone());
    TlsServer::new(Arc::new(server_config(provider(), &time, dev::identity().unwrap()).unwrap()), time)
}

fn client(clock: &VClock) -> TlsClient<VClock> {
    let time = TlsTime::new(clock.clone());
    let roots = roots_from_pem(dev::CA_PEM, "dev CA").unwrap();
    TlsClient::new(Arc::new(client_config(provider(), &time, roots).unwrap()), time)
}

#[test]
fn a_silent_client_does_not_stall_accept_and_its_handshake_times_out() {
    run(|clock| async move {
        let net = MemTcpNet::new();
        let (host, peer) = (net.host([10, 0, 0, 1]), net.host([10, 0, 0, 2]));
        let inner = host.listen(443, 8).await.unwrap();
        let limit = Duration::from_secs(10);
        let mut listener = TlsListener::new(inner, server(&clock), clock.clone(), limit);
        let addr = "10.0.0.1:443".parse().unwrap();

        // First in the backlog: one that never speaks, and one that speaks nonsense.
        let mut silent = peer.connect(addr).await.unwrap();
        let mut garbage = peer.connect(addr).await.unwrap();
        garbage.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();

        let talk = async {
            let conn = peer.connect(addr).await.unwrap();
            let mut tls = client(&clock).connect("localhost", conn).await.unwrap();
            tls.write_all(b"ping").await.unwrap();
            tls.flush().await.unwrap();
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.unwrap();
            buf
        };
        let serve = async {
            let (mut session, from) = listener.accept().await.unwrap();
            let at = clock.now();
            let mut buf = [0u8; 4];
            session.read_exact(&mut buf).await.unwrap();
            session.write_all(b"pong").await.unwrap();
            session.flush().await.unwrap();
            (at, from, session)
        };
        let ((at, from, session), reply) = join(serve, talk).await;
        assert_eq!(&reply, b"pong");
        assert!(
            at < Instant::ZERO + Duration::from_secs(1),
            "served at {at}, not after the silent one's deadline"
        );
        assert_eq!(from.ip(), peer.ip());
        assert_eq!(listener.failed(), 1, "the nonsense is a failed handshake, not an accept error");
        assert_eq!(listener.in_flight(), 1, "the silent one is still waited for");

        // Nobody else comes: `accept` keeps waiting, and meanwhile the silent handshake ends at
        // its deadline and its connection is closed.
        let next = timeout(&clock, Duration::from_secs(30), listener.accept()).await;
        assert!(matches!(next, Err(TimedOut)), "no session came");
        assert_eq!((listener.timed_out(), listener.in_flight()), (1, 0));
        let mut buf = [0u8; 16];
        assert_eq!(silent.read(&mut buf).await, Ok(0), "the silent client's connection is closed");
        assert_eq!(listener.local_addr(), addr);
        drop(session);
    });
}

#[test]
fn at_most_max_in_flight_handshakes_are_waited_for_at_once() {
    run(|clock| async move {
        let net = MemTcpNet::new();
        let (host, peer) = (net.host([10, 0, 0, 1]), net.host([10, 0, 0, 2]));
        let inner = host.listen(443, 8).await.unwrap();
        let mut listener = TlsListener::new(inner, server(&clock), clock.clone(), Duration::from_secs(5))
            .with_max_in_flight(2);
        let addr = "10.0.0.1:443".parse().unwrap();
        let _silent: Vec<_> = {
            let mut v = Vec::new();
            for _ in 0..2 {
                v.push(peer.connect(addr).await.unwrap());
            }
            v
        };
        let talk = async {
            let conn = peer.connect(addr).await.unwrap();
            let tls = client(&clock).connect("localhost", conn).await.unwrap();
            (clock.now(), tls)
        };
        let serve = async { listener.accept().await.unwrap().0 };
        let (_session, (handshaken, _tls)) = join(serve, talk).await;
        // Two silent ones hold both places: the third waits in the backlog until they time out.
        assert!(handshaken >= Instant::ZERO + Duration::from_secs(5), "handshake done at {handshaken}");
        assert!(handshaken < Instant::ZERO + Duration::from_secs(6), "handshake done at {handshaken}");
        assert_eq!(listener.timed_out(), 2);
    });
}
