//! `SocketStack` on loopback: TCP both ways, UDP, name resolution, errors, and the event loop
//! parking while sockets wait.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration as StdDuration;

use common::run;
use futures::future::join;
use morgana::embedded_io_async::{Read as _, Write as _};
use morgana::{
    Clock, Duration, Flow, FlowWrite, Platform, Resolver, Spawn, StackError, TcpListener, TcpStack,
};
use morgana::{UdpSocket, UdpStack};
use morgana_netns::free_port;
use morgana_unix::SocketStack;

const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn payload(len: usize, seed: u32) -> Vec<u8> {
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

/// A port nobody listens on (bound, then released).
#[test]
fn tcp_flows_in_both_directions_at_once() {
    run(|p| async move {
        let stack = SocketStack::with_ipv4(LOCALHOST);
        let mut listener = stack.listen(0, 8).await.unwrap();
        let addr = listener.local_addr();
        assert_eq!(addr.ip(), IpAddr::V4(LOCALHOST));
        // Echo server: it reads and writes the same flow, so the client must read while it
        // writes, through a split flow, or both sides' buffers fill up.
        p.spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 16 * 1024];
            loop {
                let n = conn.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                conn.write_all(&buf[..n]).await.unwrap();
            }
            conn.close().await.unwrap();
        });
        let data = payload(4 << 20, 1);
        let conn = stack.connect(addr).await.unwrap();
        let (mut rx, mut tx) = conn.split();
        let send = async {
            tx.write_all(&data).await.unwrap();
            tx.shutdown_write().await.unwrap();
        };
        let receive = async {
            let mut got = Vec::with_capacity(data.len());
            let mut buf = [0u8; 64 * 1024];
            loop {
                match rx.read(&mut buf).await.unwrap() {
                    0 => break got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        };
        let ((), got) = join(send, receive).await;
        assert!(got == data, "4 MiB echoed byte-exact ({} bytes back)", got.len());
    });
}

#[test]
fn listeners_take_ipv4_and_ipv6_by_default_and_report_plain_ipv4_peers() {
    run(|p| async move {
        let stack = SocketStack::new();
        let mut listener = stack.listen(0, 8).await.unwrap();
        let port = listener.local_addr().port();
        let (tx, rx) = futures::channel::oneshot::channel();
        p.spawn(async move {
            let mut peers = Vec::new();
            for _ in 0..2 {
                let (mut conn, peer) = listener.accept().await.unwrap();
                conn.write_all(b"hi").await.unwrap();
                conn.close().await.unwrap();
                peers.push(peer.ip());
            }
            let _ = tx.send(peers);
        });
        for target in [IpAddr::V4(LOCALHOST), "::1".parse().unwrap()] {
            let mut conn = stack.connect(SocketAddr::new(target, port)).await.unwrap();
            let mut buf = [0u8; 8];
            let mut n = 0;
            while let Ok(m @ 1..) = conn.read(&mut buf[n..]).await {
                n += m;
            }
            assert_eq!(&buf[..n], b"hi", "served over {target}");
        }
        let peers = rx.await.unwrap();
        assert_eq!(peers, [IpAddr::V4(LOCALHOST), "::1".parse::<IpAddr>().unwrap()]);
    });
}

#[test]
fn a_blocking_host_client_talks_to_the_stack() {
    run(|p| async move {
        let stack = SocketStack::with_ipv4(LOCALHOST);
        let mut listener = stack.listen(0, 4).await.unwrap();
        let addr = listener.local_addr();
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"ping").unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut back = String::new();
            s.read_to_string(&mut back).unwrap();
            back
        });
        let (mut conn, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), IpAddr::V4(LOCALHOST));
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        loop {
            match conn.read(&mut buf).await.unwrap() {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(got, b"ping", "read until the client's FIN");
        p.clock().sleep(Duration::from_millis(1)).await;
        conn.write_all(b"pong").await.unwrap();
        conn.close().await.unwrap();
        assert_eq!(client.join().unwrap(), "pong");
    });
}

#[test]
fn errors_are_reported_as_stack_errors() {
    run(|_| async {
        let stack = SocketStack::with_ipv4(LOCALHOST);
        let closed = SocketAddr::from((LOCALHOST, free_port()));
        assert_eq!(stack.connect(closed).await.err(), Some(StackError::ConnectionRefused));
        assert_eq!(
            stack.connect(SocketAddr::from((LOCALHOST, 0))).await.err(),
            Some(StackError::InvalidInput)
        );
        let first = stack.listen(0, 1).await.unwrap();
        let taken = first.local_addr().port();
        assert_eq!(stack.listen(taken, 1).await.err(), Some(StackError::AddrInUse));
    });
}

#[test]
fn a_reset_from_the_peer_surfaces_on_read() {
    run(|_| async {
        let stack = SocketStack::with_ipv4(LOCALHOST);
        let mut listener = stack.listen(0, 1).await.unwrap();
        let addr = listener.local_addr();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let client = std::thread::spawn(move || {
            let s = std::net::TcpStream::connect(addr).unwrap();
            // Closing with data left unread makes the kernel send a RST instead of a FIN.
            let _ = done_rx.recv();
            std::thread::sleep(StdDuration::from_millis(50));
            drop(s);
        });
        let (mut conn, _) = listener.accept().await.unwrap();
        conn.write_all(b"never read").await.unwrap();
        done_tx.send(()).unwrap();
        client.join().unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(conn.read(&mut buf).await, Err(StackError::ConnectionReset));
    });
}

#[test]
fn udp_datagrams_go_both_ways() {
    run(|_| async {
        let stack = SocketStack::new();
        let mut a = stack.bind(0).await.unwrap();
        let mut b = stack.bind(0).await.unwrap();
        let to_b = SocketAddr::from((LOCALHOST, b.local_addr().port()));
        a.send_to(b"hello over udp", to_b).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello over udp");
        assert_eq!(from, SocketAddr::from((LOCALHOST, a.local_addr().port())), "IPv4 senders are plain IPv4");
        b.send_to(b"back", from).await.unwrap();
        let mut small = [0u8; 2];
        let (n, _) = a.recv_from(&mut small).await.unwrap();
        assert_eq!(&small[..n], b"ba", "a datagram is truncated to the buffer");
        assert_eq!(a.send_to(&vec![0u8; 70_000], to_b).await, Err(StackError::InvalidInput), "too big");
    });
}

#[test]
fn names_resolve_through_the_host() {
    run(|_| async {
        let stack = SocketStack::new();
        assert_eq!(stack.resolve("192.0.2.1").await.unwrap(), [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]);
        assert_eq!(stack.resolve("::1").await.unwrap(), ["::1".parse::<IpAddr>().unwrap()]);
        let local = stack.resolve("localhost").await.unwrap();
        assert!(!local.is_empty() && local.iter().all(IpAddr::is_loopback), "localhost: {local:?}");
        assert_eq!(stack.resolve("bad name").await, Err(StackError::InvalidInput));
        assert_eq!(stack.resolve("").await, Err(StackError::InvalidInput));
    });
}
