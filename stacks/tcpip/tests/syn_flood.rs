//! A listener under a flood of spoofed SYNs, on the in-memory switch and virtual time: new
//! legitimate connections keep working during the flood and after it.

mod common;

use std::cell::Cell;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::task::{Context, Waker};

use common::*;
use embedded_io_async::{Read, Write};
use morgana::{Clock, Duration, Net, Platform, Spawn, StackError, TcpListener, TcpStack, TxToken};
use morgana_mem::{FaultConfig, MemNet, Switch};
use morgana_tcpip::{Config, Stack};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr,
    IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};

const MAC_ATTACKER: [u8; 6] = [2, 0, 0, 0, 0, 0xee];

/// Sends spoofed SYNs to B: 10.0.0.3 to 10.0.0.254 (hosts that do not exist, so nothing they
/// are sent can leave: B's ARP requests go unanswered), from port after port.
struct Attacker {
    port: MemNet,
    n: u32,
}

impl Attacker {
    /// An ARP request for B from a made-up host (10.0.1.0/24 is not on the link, so B fills
    /// its cache from 10.0.0.3 to 10.0.0.254 instead: those are the hosts B is asked about).
    fn arp(&mut self) {
        let n = self.n;
        self.n = self.n.wrapping_add(1);
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([2, 0, 0, 1, (n >> 8) as u8, n as u8]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 3 + (n % 252) as u8),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: IP_B,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress(MAC_ATTACKER),
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Arp,
        };
        let len = eth.buffer_len() + arp.buffer_len();
        let mut cx = Context::from_waker(Waker::noop());
        let tx = self.port.transmit(&mut cx).expect("the switch always takes a frame");
        tx.consume(len, |buf| {
            let mut frame = EthernetFrame::new_unchecked(buf);
            eth.emit(&mut frame);
            arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        });
        while let Some((rx, _)) = self.port.receive(&mut cx) {
            morgana::RxToken::consume(rx, |_| ());
        }
    }

    fn syn(&mut self, dst_port: u16) {
        let n = self.n;
        self.n = self.n.wrapping_add(1);
        let src = Ipv4Addr::new(10, 0, 0, 3 + (n % 252) as u8);
        let tcp = TcpRepr {
            src_port: 1024 + (n / 252 % 60000) as u16,
            dst_port,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(n.wrapping_mul(2_654_435_761) as i32),
            ack_number: None,
            window_len: 64240,
            window_scale: Some(7),
            max_seg_size: Some(1460),
            sack_permitted: true,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: IP_B,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress(MAC_ATTACKER),
            dst_addr: EthernetAddress(MAC_B),
            ethertype: EthernetProtocol::Ipv4,
        };
        let len = eth.buffer_len() + ip.buffer_len() + tcp.buffer_len();
        let mut cx = Context::from_waker(Waker::noop());
        let caps = ChecksumCapabilities::default();
        let tx = self.port.transmit(&mut cx).expect("the switch always takes a frame");
        tx.consume(len, |buf| {
            let mut frame = EthernetFrame::new_unchecked(buf);
            eth.emit(&mut frame);
            let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
            ip.emit(&mut packet, &caps);
            let mut segment = TcpPacket::new_unchecked(packet.payload_mut());
            tcp.emit(&mut segment, &src.into(), &IP_B.into(), &caps);
        });
        // Drain what B sends the attacker's port (ARP requests for the spoofed hosts).
        while let Some((rx, _)) = self.port.receive(&mut cx) {
            morgana::RxToken::consume(rx, |_| ());
        }
    }
}

/// An echo server on B's port 7 with a pool of `backlog` sockets.
async fn echo_server<P: Platform>(p: &P, b: &Stack, backlog: usize) {
    let mut listener = b.listen(7, backlog).await.unwrap();
    p.spawn({
        let p = p.clone();
        async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                p.spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = conn.read(&mut buf).await {
                        if conn.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
    });
}

/// Connect to B's echo server and get 1000 bytes back, within 10 s.
async fn echo_once<P: Platform>(p: &P, a: &Stack) -> Result<(), StackError> {
    let attempt = async {
        let mut conn = a.connect(addr(IP_B, 7)).await?;
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        conn.write_all(&data).await?;
        let mut back = vec![0u8; data.len()];
        conn.read_exact(&mut back).await.map_err(|_| StackError::ConnectionReset)?;
        assert_eq!(back, data);
        Ok(())
    };
    let clock = p.clock();
    let deadline = clock.now() + Duration::from_secs(10);
    futures::pin_mut!(attempt);
    match futures::future::select(attempt, std::pin::pin!(clock.sleep_until(deadline))).await {
        futures::future::Either::Left((r, _)) => r,
        futures::future::Either::Right(_) => Err(StackError::TimedOut),
    }
}

fn two_stacks_and_attacker(p: &morgana_mem::sim::SimPlatform) -> (Stack, Stack, Attacker) {
    let switch = Switch::default();
    let config = Config::default();
    let a =
        stack_on(p, &switch, MAC_A, config.clone().ipv4_static(IP_A, 24, None), FaultConfig::default(), 1);
    let b = stack_on(p, &switch, MAC_B, config.ipv4_static(IP_B, 24, None), FaultConfig::default(), 2);
    (a, b, Attacker { port: switch.port(MAC_ATTACKER), n: 0 })
}

#[test]
fn a_syn_flood_never_stops_new_connections() {
    let out = run(3, |p| async move {
        let (a, b, mut attacker) = two_stacks_and_attacker(&p);
        echo_server(&p, &b, 16).await;
        let flooding = Rc::new(Cell::new(true));
        // 10,000 spoofed SYNs a second for 30 s: 10 every millisecond.
        p.spawn({
            let (p, flooding) = (p.clone(), flooding.clone());
            async move {
                while flooding.get() {
                    for _ in 0..10 {
                        attacker.syn(7);
                    }
                    p.clock().sleep(Duration::from_millis(1)).await;
                }
            }
        });
        let mut results = Vec::new();
        for at in [1, 5, 10, 20, 29] {
            p.clock().sleep_until(morgana::Instant::from_millis(at * 1000)).await;
            results.push((at, echo_once(&p, &a).await));
        }
        flooding.set(false);
        // After the flood, and after the half-open handshakes have timed out.
        for at in [31, 60, 100] {
            p.clock().sleep_until(morgana::Instant::from_millis(at * 1000)).await;
            results.push((at, echo_once(&p, &a).await));
        }
        results
    });
    let log: Vec<String> = out.messages().into_iter().map(String::from).collect();
    for (at, r) in out.result.expect("no stall") {
        assert_eq!(r, Ok(()), "a connection at {at} s: {log:?}");
    }
    // Once when it starts, then a count at most every 10 s while connections come by cookie
    // (the last 15 s after the flood, while its half-open sockets time out): not once per
    // connection, nor once per SYN.
    let warned: Vec<&String> = log.iter().filter(|l| l.contains("SYN cookie")).collect();
    assert!(!warned.is_empty() && warned.len() <= 5, "the flood is logged with counts: {log:?}");
    assert!(log.iter().any(|l| l.contains("more connections accepted by SYN cookie in")), "{log:?}");
    assert!(warned[0].contains("every handshake slot was taken"), "{warned:?}");
}

/// The first wave's outage: a pool whose half-open sockets time out while their resets cannot
/// be sent (no ARP answer from a spoofed source) must listen again.
#[test]
fn half_open_sockets_whose_reset_cannot_leave_listen_again() {
    let out = run(4, |p| async move {
        let (a, b, mut attacker) = two_stacks_and_attacker(&p);
        // A pool of one: no cookie socket, so only re-listening can save it.
        echo_server(&p, &b, 1).await;
        for _ in 0..16 {
            attacker.syn(7);
        }
        p.clock().sleep(Duration::from_secs(1)).await;
        let during = echo_once(&p, &a).await;
        // Past the 15 s handshake timeout of the pool's sockets, and the reset's wait.
        p.clock().sleep_until(morgana::Instant::from_millis(20_000)).await;
        let after = echo_once(&p, &a).await;
        (during, after)
    });
    let (during, after) = out.result.expect("no stall");
    assert!(during.is_err(), "a pool of one, taken by a spoofed SYN, cannot accept: {during:?}");
    assert_eq!(after, Ok(()), "the socket listens again once its handshake timed out");
}

/// A flood of ARP requests and SYNs from made-up hosts neither pushes a live peer out of the
/// neighbour cache nor holds back the ARP requests for a real host behind those for fake ones:
/// an idle connection answers at once after the flood began, and a new one opens at once.
#[test]
fn an_arp_and_syn_flood_neither_evicts_live_peers_nor_starves_their_arp() {
    let out = run(5, |p| async move {
        let (a, b, mut attacker) = two_stacks_and_attacker(&p);
        echo_server(&p, &b, 16).await;
        let mut conn = a.connect(addr(IP_B, 7)).await.unwrap();
        let flooding = Rc::new(Cell::new(true));
        p.spawn({
            let (p, flooding) = (p.clone(), flooding.clone());
            async move {
                while flooding.get() {
                    for _ in 0..5 {
                        attacker.arp();
                        attacker.syn(7);
                    }
                    p.clock().sleep(Duration::from_millis(1)).await;
                }
            }
        });
        let mut latencies = Vec::new();
        for at in [2, 10, 30] {
            p.clock().sleep_until(morgana::Instant::from_millis(at * 1000)).await;
            let start = p.clock().now();
            conn.write_all(b"ping").await.unwrap();
            let mut back = [0u8; 4];
            conn.read_exact(&mut back).await.unwrap();
            latencies.push((at, p.clock().now() - start));
        }
        let start = p.clock().now();
        let fresh = echo_once(&p, &a).await;
        let fresh_took = p.clock().now() - start;
        flooding.set(false);
        (latencies, fresh, fresh_took)
    });
    let (latencies, fresh, fresh_took) = out.result.expect("no stall");
    for (at, took) in latencies {
        assert!(took < Duration::from_millis(50), "an echo at {at} s took {took:?}");
    }
    assert_eq!(fresh, Ok(()));
    assert!(fresh_took < Duration::from_millis(100), "a new connection took {fresh_took:?}");
}

/// 120 clients connect at the same instant to a pool of 16: those past the pool come in by SYN
/// cookie, each returning cookie completed at once (the runner gives the cookie slot a fresh
/// socket as soon as one takes a connection, so no ACK meets a port with no socket listening
/// and waits for the client's retransmission), never reset.
#[test]
fn a_burst_of_connections_larger_than_the_pool_is_served_in_full() {
    let out = run(6, |p| async move {
        let (a, b, _attacker) = two_stacks_and_attacker(&p);
        echo_server(&p, &b, 16).await;
        let (tx, mut rx) = futures::channel::mpsc::unbounded();
        for _ in 0..120 {
            let (p, a, tx) = (p.clone(), a.clone(), tx.clone());
            p.clone().spawn(async move {
                let start = p.clock().now();
                let r = echo_once(&p, &a).await;
                tx.unbounded_send(r.map(|()| p.clock().now() - start)).unwrap();
            });
        }
        drop(tx);
        let mut results = Vec::new();
        while let Some(r) = futures::StreamExt::next(&mut rx).await {
            results.push(r);
        }
        results
    });
    let results = out.result.expect("no stall");
    assert_eq!(results.len(), 120);
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "{} of 120 failed: {failed:?}", failed.len());
    let slowest = results.iter().flatten().max().copied().unwrap_or_default();
    eprintln!("slowest of 120: {slowest:?}");
    // A wait for a retransmission would take 200 ms (the minimum RTO) or 1 s (a SYN's).
    assert!(slowest < Duration::from_millis(100), "the slowest of 120 took {slowest:?}");
}

/// After a short flood, the listener's bookkeeping (the count of cookie connections it logs)
/// waits on timers like everything else: the stack goes idle in virtual time instead of
/// spinning while half-open sockets time out (a spinning runner would stall this test).
#[test]
fn after_a_short_flood_the_stack_goes_idle() {
    let out = run(7, |p| async move {
        let (a, b, mut attacker) = two_stacks_and_attacker(&p);
        echo_server(&p, &b, 4).await;
        for _ in 0..100 {
            attacker.syn(7);
        }
        p.clock().sleep(Duration::from_millis(100)).await;
        // By cookie: the pool is half-open.
        let during = echo_once(&p, &a).await;
        p.clock().sleep_until(morgana::Instant::from_millis(60_000)).await;
        let after = echo_once(&p, &a).await;
        (during, after)
    });
    let log: Vec<String> = out.messages().into_iter().map(String::from).collect();
    let (during, after) = out.result.expect("no stall");
    assert_eq!(during, Ok(()));
    assert_eq!(after, Ok(()));
    assert!(log.iter().any(|l| l.contains("handshake slots free again")), "{log:?}");
}
