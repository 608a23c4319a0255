//! TCP between two stacks on the in-memory switch, on virtual time.

mod common;

use std::time::Instant as WallInstant;

use common::*;
use embedded_io_async::{Read, Write};
use morgana::{Clock, Duration, Flow, FlowWrite, Platform, Spawn, StackError, TcpListener, TcpStack};
use morgana_mem::FaultConfig;
use morgana_tcpip::Config;

const MIB: usize = 1 << 20;

/// A sends `len` bytes to B, both directions faulted by `faults`; B checks every byte.
/// Returns what B counted. Buffer sizes vary with the seed, as smoltcp's netsim sweeps them.
fn transfer(seed: u64, faults: FaultConfig, len: usize) -> usize {
    let kib = [8, 16, 64, 256][(seed % 4) as usize] * 1024;
    let config = Config::default().tcp_buffers(kib, kib);
    let out = run(seed, |p| async move {
        let (a, b) = two_stacks(&p, faults, seed, config);
        let mut listener = b.listen(7, 1).await.unwrap();
        let (done_tx, done_rx) = futures::channel::oneshot::channel();
        p.spawn(async move {
            let (mut conn, peer) = listener.accept().await.unwrap();
            assert_eq!(peer.ip(), IP_A);
            let _ = done_tx.send(expect_pattern(&mut conn, seed).await);
        });
        let at = |what: &str, e: morgana::StackError| -> ! { panic!("seed {seed}: {what}: {e}") };
        let mut conn = a.connect(addr(IP_B, 7)).await.unwrap_or_else(|e| at("connect", e));
        send_pattern(&mut conn, seed, len).await.unwrap_or_else(|e| at("send", e));
        conn.close().await.unwrap_or_else(|e| at("close", e));
        done_rx.await.unwrap().unwrap_or_else(|e| at("receive", e))
    });
    out.result.unwrap_or_else(|e| panic!("seed {seed}: {e}"))
}

fn lossy_sweep(seeds: std::ops::Range<u64>) {
    let t = WallInstant::now();
    for seed in seeds.clone() {
        assert_eq!(transfer(seed, FaultConfig::lossy(0.1), 10 * MIB), 10 * MIB, "seed {seed}");
    }
    eprintln!("seeds {seeds:?}: {:?}", t.elapsed());
}

// 100 seeds of 10 MiB under 10% loss, 10% reordering and 10% duplication in both directions,
// in four tests so the harness spreads them over the cores. `cargo xtask bench tcpip --soak`
// runs many more.
#[test]
fn ten_mib_byte_exact_under_faults_seeds_0_to_24() {
    lossy_sweep(0..25);
}
#[test]
fn ten_mib_byte_exact_under_faults_seeds_25_to_49() {
    lossy_sweep(25..50);
}
#[test]
fn ten_mib_byte_exact_under_faults_seeds_50_to_74() {
    lossy_sweep(50..75);
}
#[test]
fn ten_mib_byte_exact_under_faults_seeds_75_to_99() {
    lossy_sweep(75..100);
}

/// `MORGANA_SOAK_SEEDS=N cargo test --release -- --ignored soak`: `cargo xtask bench tcpip
/// --soak` runs this.
#[test]
#[ignore = "long: run by cargo xtask bench tcpip --soak"]
fn soak() {
    let n: u64 = std::env::var("MORGANA_SOAK_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let first = 1_000_000;
    lossy_sweep(first..first + n);
    println!("soak: {n} seeds of 10 MiB under faults, byte-exact");
}

#[test]
fn clean_transfer_is_byte_exact_and_takes_no_virtual_time() {
    let out = run(1, |p| async move {
        let (a, b) = two_stacks(&p, FaultConfig::default(), 1, Config::default());
        let mut listener = b.listen(80, 1).await.unwrap();
        p.spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            send_pattern(&mut conn, 9, 3 * MIB + 123).await.unwrap();
        });
        let mut conn = a.connect(addr(IP_B, 80)).await.unwrap();
        expect_pattern(&mut conn, 9).await.unwrap()
    });
    assert_eq!(out.result.unwrap(), 3 * MIB + 123);
    // A switch has no latency; only the 10 ms delayed ACK at the end may show.
    assert!(out.end.as_millis() < 100, "took {}", out.end);
}

#[test]
fn a_closed_port_refuses_the_connection() {
    let out = run(3, |p| async move {
        let (a, b) = two_stacks(&p, FaultConfig::default(), 3, Config::default());
        let _other = b.listen(81, 1).await.unwrap();
        let r = a.connect(addr(IP_B, 80)).await.err();
        (r, p.clock().now())
    });
    let (err, at) = out.result.unwrap();
    assert_eq!(err, Some(StackError::ConnectionRefused));
    assert!(at.as_millis() < 100, "refused at once, not after a timeout ({at})");
}

#[test]
fn an_abrupt_peer_reset_is_an_error_not_a_hang() {
    let out = run(4, |p| async move {
        let (a, b) = two_stacks(&p, FaultConfig::default(), 4, Config::default());
        let mut listener = b.listen(80, 1).await.unwrap();
        p.spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5];
            conn.read_exact(&mut buf).await.unwrap();
            conn.abort();
        });
        let mut conn = a.connect(addr(IP_B, 80)).await.unwrap();
        conn.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 16];
        let read = conn.read(&mut buf).await;
        let write = conn.write_all(&[0u8; 100]).await;
        (read, write)
    });
    let (read, write) = out.result.expect("no stall");
    assert_eq!(read, Err(StackError::ConnectionReset));
    assert_eq!(write, Err(StackError::ConnectionReset));
}

#[test]
fn connecting_to_a_silent_address_times_out() {
    let out = run(5, |p| async move {
        let (a, _b) = two_stacks(&p, FaultConfig::default(), 5, Config::default());
        let started = p.clock().now();
        let r = a.connect(addr(std::net::Ipv4Addr::new(10, 0, 0, 99), 80)).await.err();
        (r, p.clock().now() - started)
    });
    let (err, took) = out.result.unwrap();
    assert_eq!(err, Some(StackError::TimedOut));
    assert!((Duration::from_secs(74)..Duration::from_secs(80)).contains(&took), "took {took:?}");
}

#[test]
fn no_route_and_bad_addresses_fail_at_once() {
    let out = run(6, |p| async move {
        let (a, _b) = two_stacks(&p, FaultConfig::default(), 6, Config::default());
        (
            a.connect(addr(std::net::Ipv4Addr::new(192, 168, 1, 1), 80)).await.err(),
            a.connect(addr(IP_B, 0)).await.err(),
            a.connect("[2001:db8::1]:80".parse().unwrap()).await.err(),
        )
    });
    assert_eq!(
        out.result.unwrap(),
        (Some(StackError::NoRoute), Some(StackError::InvalidInput), Some(StackError::NoRoute))
    );
}

#[test]
fn a_port_listened_on_twice_is_in_use() {
    let out = run(7, |p| async move {
        let (a, _b) = two_stacks(&p, FaultConfig::default(), 7, Config::default());
        let first = a.listen(80, 4).await.unwrap();
        let second = a.listen(80, 4).await.err();
        drop(first);
        let again = a.listen(80, 4).await.map(|l| l.local_addr().port());
        let any = a.listen(0, 1).await.map(|l| l.local_addr().port()).unwrap();
        (second, again, any)
    });
    let (second, again, any) = out.result.unwrap();
    assert_eq!(second, Some(StackError::AddrInUse));
    assert_eq!(again, Ok(80), "a dropped listener frees its port");
    assert!(any >= 49152, "port 0 picks an ephemeral port, got {any}");
}

#[test]
fn half_close_lets_the_peer_answer_after_our_fin() {
    let out = run(8, |p| async move {
        let (a, b) = two_stacks(&p, FaultConfig::lossy(0.05), 8, Config::default());
        let mut listener = b.listen(80, 1).await.unwrap();
        p.spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 100];
            loop {
                let n = conn.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            // The client's FIN arrived; our side is still open.
            conn.write_all(format!("got {} bytes", req.len()).as_bytes()).await.unwrap();
            conn.close().await.unwrap();
        });
        let mut conn = a.connect(addr(IP_B, 80)).await.unwrap();
        conn.write_all(&[7u8; 3000]).await.unwrap();
        conn.shutdown_write().await.unwrap();
        assert_eq!(conn.write(b"late").await, Err(StackError::NotConnected));
        let mut reply = Vec::new();
        let mut buf = [0u8; 100];
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(reply).unwrap()
    });
    assert_eq!(out.result.unwrap(), "got 3000 bytes");
}

#[test]
fn split_halves_run_full_duplex_from_two_tasks() {
    // The client writes 2 MiB before reading anything back; with 16 KiB buffers an unsplit
    // client would deadlock against the echo server.
    let config = Config::default().tcp_buffers(16 * 1024, 16 * 1024);
    let out = run(9, |p| async move {
        let (a, b) = two_stacks(&p, FaultConfig::lossy(0.02), 9, config);
        let mut listener = b.listen(7, 1).await.unwrap();
        p.spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            let (mut rx, mut tx) = conn.split();
            let mut buf = [0u8; 4096];
            loop {
                let n = rx.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                tx.write_all(&buf[..n]).await.unwrap();
            }
            tx.shutdown_write().await.unwrap();
        });
        let conn = a.connect(addr(IP_B, 7)).await.unwrap();
        let (mut rx, mut tx) = conn.split();
        p.spawn(async move { send_pattern(&mut tx, 11, 2 * MIB).await.unwrap() });
        expect_pattern(&mut rx, 11).await.unwrap()
    });
    assert_eq!(out.result.unwrap(), 2 * MIB);
}

#[test]
fn many_concurrent_connections_through_a_small_backlog() {
    const CLIENTS: usize = 40;
    let out = run(10, |p| async move {
        let (a, b) = two_stacks(&p, FaultConfig::lossy(0.02), 10, Config::default().tcp_buffers(8192, 8192));
        let mut listener = b.listen(7, 4).await.unwrap();
        let server = p.clone();
        p.spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                server.spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => conn.write_all(&buf[..n]).await.unwrap(),
                        }
                    }
                    let _ = conn.close().await;
                });
            }
        });
        let (tx, mut rx) = futures::channel::mpsc::unbounded();
        for i in 0..CLIENTS {
            let (a, tx, clock) = (a.clone(), tx.clone(), p.clock());
            p.spawn(async move {
                // Staggered, so the four LISTEN sockets are refilled between arrivals.
                clock.sleep(Duration::from_millis(5 * i as u64)).await;
                let conn = a.connect(addr(IP_B, 7)).await.unwrap();
                let (mut r, mut w) = conn.split();
                let msg = vec![i as u8; 20_000 + i];
                let writer = async {
                    w.write_all(&msg).await.unwrap();
                    w.shutdown_write().await.unwrap();
                };
                let reader = async {
                    let mut back = Vec::new();
                    let mut buf = [0u8; 2048];
                    loop {
                        let n = r.read(&mut buf).await.unwrap();
                        if n == 0 {
                            break back;
                        }
                        back.extend_from_slice(&buf[..n]);
                    }
                };
                let ((), back) = futures::join!(writer, reader);
                tx.unbounded_send(back == msg).unwrap();
            });
        }
        drop(tx);
        let mut ok = 0;
        while let Some(good) = futures::StreamExt::next(&mut rx).await {
            ok += usize::from(good);
        }
        // Let every closing connection finish, then check nothing leaked.
        p.clock().sleep(Duration::from_secs(30)).await;
        (ok, a.sockets_in_use(), b.sockets_in_use())
    });
    let (ok, sockets_a, sockets_b) = out.result.unwrap();
    assert_eq!(ok, CLIENTS, "every client got its bytes back");
    assert_eq!(sockets_a, 0, "A holds no socket: closed connections were reaped");
    assert_eq!(sockets_b, 5, "B holds only the listener's pool of four and its SYN-dropping guard");
}

#[test]
fn dropping_a_connection_closes_it_and_unread_data_resets_it() {
    let out = run(11, |p| async move {
        let (a, b) = two_stacks(&p, FaultConfig::default(), 11, Config::default());
        let mut listener = b.listen(80, 2).await.unwrap();
        // Dropped with nothing unread: the peer sees a clean end of stream.
        let conn = a.connect(addr(IP_B, 80)).await.unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();
        drop(conn);
        let mut buf = [0u8; 10];
        let clean = peer.read(&mut buf).await;
        // Dropped with data left unread: the peer is reset, as Linux does.
        let mut conn = a.connect(addr(IP_B, 80)).await.unwrap();
        let (mut peer2, _) = listener.accept().await.unwrap();
        peer2.write_all(b"unread").await.unwrap();
        p.clock().sleep(Duration::from_millis(50)).await;
        let mut one = [0u8; 1];
        conn.read_exact(&mut one).await.unwrap();
        drop(conn);
        p.clock().sleep(Duration::from_millis(50)).await;
        let reset = peer2.write_all(b"more").await.and(peer2.flush().await);
        (clean, reset)
    });
    let (clean, reset) = out.result.unwrap();
    assert_eq!(clean, Ok(0));
    assert_eq!(reset, Err(StackError::ConnectionReset));
}

#[test]
fn keep_alive_detects_a_silent_peer() {
    let mut config = Config::default();
    config.tcp_keep_alive = Some(Duration::from_secs(10));
    config.tcp_timeout = Some(Duration::from_secs(45));
    let out = run(12, |p| async move {
        let (a, b, open) = two_cuttable_stacks(&p, config);
        let mut listener = b.listen(80, 1).await.unwrap();
        let mut conn = a.connect(addr(IP_B, 80)).await.unwrap();
        let _peer = listener.accept().await.unwrap();
        // An idle connection survives while keep-alives are answered...
        p.clock().sleep(Duration::from_secs(120)).await;
        conn.write_all(b"still there").await.unwrap();
        conn.flush().await.unwrap();
        // ...and fails once the peer goes silent.
        open.set(false);
        let cut = p.clock().now();
        let mut buf = [0u8; 8];
        let r = conn.read(&mut buf).await;
        (r, p.clock().now() - cut)
    });
    let (r, took) = out.result.unwrap();
    assert_eq!(r, Err(StackError::TimedOut));
    assert!(took <= Duration::from_secs(60), "noticed after {took:?}");
}

#[test]
fn tcp_over_ipv6_link_local_and_static() {
    let out = run(13, |p| async move {
        let cfg = |n| Config::default().ipv6_static(format!("fd00::{n}").parse().unwrap(), 64);
        let switch = morgana_mem::Switch::default();
        let a = stack_on(&p, &switch, MAC_A, cfg(1), FaultConfig::lossy(0.05), 13);
        let b = stack_on(&p, &switch, MAC_B, cfg(2), FaultConfig::lossy(0.05), 14);
        let mut listener = b.listen(7, 2).await.unwrap();
        p.spawn(async move {
            loop {
                let (mut conn, peer) = listener.accept().await.unwrap();
                let text = peer.ip().to_string();
                conn.write_all(text.as_bytes()).await.unwrap();
                conn.close().await.unwrap();
            }
        });
        let mut seen = Vec::new();
        let link_local = b.ipv6()[0];
        for target in
            [std::net::Ipv6Addr::from([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]), link_local]
        {
            let mut conn = a.connect(std::net::SocketAddr::new(target.into(), 7)).await.unwrap();
            let mut buf = [0u8; 64];
            let mut got = Vec::new();
            loop {
                let n = conn.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            seen.push(String::from_utf8(got).unwrap());
        }
        (seen, a.ipv6())
    });
    let (seen, a_addrs) = out.result.unwrap();
    assert_eq!(seen[0], "fd00::1");
    assert_eq!(seen[1], a_addrs[0].to_string());
    assert!(seen[1].starts_with("fe80::"), "{}", seen[1]);
}

/// A `Net` that counts how often it is asked for a frame: once per runner poll, at least.
struct Counting<N> {
    inner: N,
    polls: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<N: morgana::Net> morgana::Net for Counting<N> {
    type RxToken<'a>
        = N::RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = N::TxToken<'a>
    where
        Self: 'a;
    fn receive(&mut self, cx: &mut std::task::Context<'_>) -> Option<(N::RxToken<'_>, N::TxToken<'_>)> {
        self.polls.set(self.polls.get() + 1);
        self.inner.receive(cx)
    }
    fn transmit(&mut self, cx: &mut std::task::Context<'_>) -> Option<N::TxToken<'_>> {
        self.inner.transmit(cx)
    }
    fn link_state(&mut self, cx: &mut std::task::Context<'_>) -> morgana::LinkState {
        self.inner.link_state(cx)
    }
    fn capabilities(&self) -> morgana::Capabilities {
        self.inner.capabilities()
    }
    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }
    fn stats(&self) -> morgana::NetStats {
        self.inner.stats()
    }
}

#[test]
fn an_idle_stack_sleeps_no_busy_loop_no_tick() {
    let out = run(14, |p| async move {
        let switch = morgana_mem::Switch::default();
        let polls = std::rc::Rc::new(std::cell::Cell::new(0));
        let net = Counting { inner: switch.port(MAC_A), polls: polls.clone() };
        let (a, runner) = morgana_tcpip::new(net, p.clock(), Config::default().ipv4_static(IP_A, 24, None));
        p.spawn(async move { runner.run().await });
        let b = stack_on(
            &p,
            &switch,
            MAC_B,
            Config::default().ipv4_static(IP_B, 24, None),
            FaultConfig::default(),
            15,
        );
        let mut listener = b.listen(7, 1).await.unwrap();
        let mut conn = a.connect(addr(IP_B, 7)).await.unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();
        conn.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        peer.read_exact(&mut buf).await.unwrap();
        p.clock().sleep(Duration::from_secs(1)).await;
        // An hour with an open, idle connection (without keep-alive it never times out).
        let before = polls.get();
        p.clock().sleep(Duration::from_secs(3600)).await;
        let idle = polls.get() - before;
        // And it still works afterwards.
        peer.write_all(b"pong").await.unwrap();
        conn.read_exact(&mut buf).await.unwrap();
        (idle, buf)
    });
    let (idle, buf) = out.result.unwrap();
    assert_eq!(&buf, b"pong");
    // A tick of even one second would be 3600 polls; what remains is the tail of the last
    // exchange (the last ACKs and the delayed-ACK timer).
    assert!(idle <= 10, "the runner polled {idle} times during an idle hour");
    assert!(out.wall < std::time::Duration::from_secs(2), "took {:?}", out.wall);
}

#[test]
fn unacknowledged_data_times_out_when_the_peer_vanishes() {
    let mut config = Config::default();
    config.tcp_timeout = Some(Duration::from_secs(120));
    let out = run(16, |p| async move {
        let (a, b, open) = two_cuttable_stacks(&p, config);
        let mut listener = b.listen(80, 1).await.unwrap();
        let mut conn = a.connect(addr(IP_B, 80)).await.unwrap();
        let _peer = listener.accept().await.unwrap();
        // Idle for longer than the timeout: without keep-alive that is fine.
        p.clock().sleep(Duration::from_secs(600)).await;
        conn.write_all(b"are you there").await.unwrap();
        conn.flush().await.unwrap();
        open.set(false);
        let cut = p.clock().now();
        conn.write_all(b"hello?").await.unwrap();
        let r = conn.flush().await;
        (r, p.clock().now() - cut)
    });
    let (r, took) = out.result.unwrap();
    assert_eq!(r, Err(StackError::TimedOut));
    assert!((Duration::from_secs(120)..Duration::from_secs(200)).contains(&took), "gave up after {took:?}");
}
