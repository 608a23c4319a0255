//! UDP datagrams and DNS resolution between stacks on the in-memory switch.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use common::*;
use morgana::{Clock, Duration, Platform, Resolver, Spawn, StackError, UdpSocket, UdpStack};
use morgana_mem::FaultConfig;
use morgana_tcpip::{Config, Stack};
use smoltcp::wire::{DnsPacket, DnsQuestion};

/// Datagram `i`: its index, then a pattern, `len` bytes in all.
fn datagram(i: u16, len: usize) -> Vec<u8> {
    let mut d = vec![0u8; len.max(2)];
    d[..2].copy_from_slice(&i.to_be_bytes());
    Pattern::new(u64::from(i) + 1).fill(&mut d[2..]);
    d.truncate(len.max(2));
    d
}

/// Echo datagrams on `port` of `stack` forever.
fn spawn_echo(p: &morgana_mem::sim::SimPlatform, stack: &Stack, port: u16) {
    let stack = stack.clone();
    p.spawn(async move {
        let mut sock = stack.bind(port).await.unwrap();
        let mut buf = vec![0u8; 2048];
        loop {
            let (n, from) = sock.recv_from(&mut buf).await.unwrap();
            sock.send_to(&buf[..n], from).await.unwrap();
        }
    });
}

#[test]
fn datagrams_of_every_size_arrive_intact() {
    let out = run(20, |p| async move {
        let (a, b) = two_stacks(&p, FaultConfig::default(), 20, Config::default());
        spawn_echo(&p, &b, 7);
        let mut sock = a.bind(0).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let mut bad = Vec::new();
        for (i, len) in (2..=1472).step_by(7).chain([1472]).enumerate() {
            let d = datagram(i as u16, len);
            sock.send_to(&d, addr(IP_B, 7)).await.unwrap();
            let (n, from) = sock.recv_from(&mut buf).await.unwrap();
            if buf[..n] != d[..] || from != addr(IP_B, 7) {
                bad.push(len);
            }
        }
        bad
    });
    assert_eq!(out.result.unwrap(), Vec::<usize>::new(), "datagrams that came back altered");
}

#[test]
fn corrupted_datagrams_are_dropped_never_delivered() {
    let faults = FaultConfig { corrupt: 0.2, loss: 0.05, ..FaultConfig::default() };
    let out = run(21, |p| async move {
        let (a, b) = two_stacks(&p, faults, 21, Config::default());
        let mut rx = b.bind(9).await.unwrap();
        let mut tx = a.bind(0).await.unwrap();
        let (sent_tx, mut sent_rx) = futures::channel::oneshot::channel();
        let clock = p.clock();
        p.spawn(async move {
            for i in 0..500u16 {
                tx.send_to(&datagram(i, 200 + usize::from(i)), addr(IP_B, 9)).await.unwrap();
                clock.sleep(Duration::from_millis(1)).await;
            }
            let _ = sent_tx.send(());
        });
        let (mut good, mut bad) = (0, 0);
        let mut buf = vec![0u8; 2048];
        let clock = p.clock();
        loop {
            let got = {
                let recv = std::pin::pin!(rx.recv_from(&mut buf));
                let wait = std::pin::pin!(clock.sleep(Duration::from_secs(1)));
                match futures::future::select(recv, wait).await {
                    futures::future::Either::Left((r, _)) => Some(r.unwrap().0),
                    futures::future::Either::Right(_) => None,
                }
            };
            match got {
                Some(n) => {
                    let i = u16::from_be_bytes([buf[0], buf[1]]);
                    if buf[..n] == datagram(i, 200 + usize::from(i))[..] { good += 1 } else { bad += 1 }
                }
                None if sent_rx.try_recv().is_ok_and(|s| s.is_some()) => break,
                None => {}
            }
        }
        (good, bad)
    });
    let (good, bad) = out.result.unwrap();
    assert_eq!(bad, 0, "a corrupted datagram was delivered");
    assert!((300..490).contains(&good), "{good} of 500 delivered through 20% corruption and 5% loss");
}

#[test]
fn udp_errors_are_clear() {
    let out = run(22, |p| async move {
        let (a, _b) = two_stacks(&p, FaultConfig::default(), 22, Config::default());
        let mut s = a.bind(5000).await.unwrap();
        let in_use = a.bind(5000).await.err();
        let ephemeral = a.bind(0).await.unwrap().local_addr().port();
        let too_big = s.send_to(&[0u8; 1473], addr(IP_B, 9)).await.err();
        let no_route = s.send_to(b"x", addr(Ipv4Addr::new(8, 8, 8, 8), 53)).await.err();
        let port_zero = s.send_to(b"x", addr(IP_B, 0)).await.err();
        (in_use, ephemeral, too_big, no_route, port_zero)
    });
    let (in_use, ephemeral, too_big, no_route, port_zero) = out.result.unwrap();
    assert_eq!(in_use, Some(StackError::AddrInUse));
    assert!(ephemeral >= 49152);
    assert_eq!(too_big, Some(StackError::InvalidInput));
    assert_eq!(no_route, Some(StackError::NoRoute));
    assert_eq!(port_zero, Some(StackError::InvalidInput));
}

/// The names the test DNS server knows.
fn zone(name: &str, qtype: u16) -> Option<Vec<Vec<u8>>> {
    let (a, aaaa): (Vec<Ipv4Addr>, Vec<Ipv6Addr>) = match name {
        "unikernel.test" => (vec![Ipv4Addr::new(10, 0, 0, 42)], vec!["fd00::42".parse().unwrap()]),
        "v4only.test" => (vec![Ipv4Addr::new(10, 0, 0, 7), Ipv4Addr::new(10, 0, 0, 8)], vec![]),
        _ => return None,
    };
    Some(match qtype {
        1 => a.iter().map(|a| a.octets().to_vec()).collect(),
        28 => aaaa.iter().map(|a| a.octets().to_vec()).collect(),
        _ => vec![],
    })
}

/// A DNS server on UDP port 53 of `stack`: queries parsed with smoltcp's wire types, answers
/// built by hand. It counts the queries it answered.
fn spawn_dns_server(p: &morgana_mem::sim::SimPlatform, stack: &Stack) -> std::rc::Rc<std::cell::Cell<u32>> {
    let count = std::rc::Rc::new(std::cell::Cell::new(0));
    let (stack, counter) = (stack.clone(), count.clone());
    p.spawn(async move {
        let mut sock = stack.bind(53).await.unwrap();
        let mut buf = vec![0u8; 1500];
        loop {
            let (n, from) = sock.recv_from(&mut buf).await.unwrap();
            let Ok(query) = DnsPacket::new_checked(&buf[..n]) else { continue };
            let Ok((rest, question)) = DnsQuestion::parse(query.payload()) else { continue };
            let labels: Result<Vec<&[u8]>, _> = query.parse_name(question.name).collect();
            let Ok(labels) = labels else { continue };
            let name = labels.iter().map(|l| String::from_utf8_lossy(l)).collect::<Vec<_>>().join(".");
            let answers = zone(&name, u16::from(question.type_));
            let mut out = Vec::new();
            out.extend_from_slice(&query.transaction_id().to_be_bytes());
            let rcode = if answers.is_some() { 0 } else { 3 };
            out.extend_from_slice(&(0x8180u16 | rcode).to_be_bytes());
            let answers = answers.unwrap_or_default();
            for count in [1, answers.len() as u16, 0, 0] {
                out.extend_from_slice(&count.to_be_bytes());
            }
            out.extend_from_slice(&query.payload()[..query.payload().len() - rest.len()]);
            for rdata in &answers {
                out.extend_from_slice(&[0xc0, 12]);
                out.extend_from_slice(&u16::from(question.type_).to_be_bytes());
                out.extend_from_slice(&[0, 1, 0, 0, 1, 0]);
                out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                out.extend_from_slice(rdata);
            }
            counter.set(counter.get() + 1);
            sock.send_to(&out, from).await.unwrap();
        }
    });
    count
}

async fn lookup<R: Resolver>(resolver: R, name: &str) -> Result<Vec<IpAddr>, StackError> {
    resolver.resolve(name).await
}

fn resolve_all(
    faults: FaultConfig,
    dns: IpAddr,
    names: &'static [&'static str],
) -> Vec<(Result<Vec<IpAddr>, StackError>, u64)> {
    let out = run(23, |p| async move {
        let mut config = Config::default();
        config.dns_servers = vec![dns];
        let (a, b) = two_stacks(&p, faults, 23, config);
        spawn_dns_server(&p, &b);
        let mut results = Vec::new();
        for name in names {
            let t = p.clock().now();
            // Through `&Stack`: a borrowed stack is a `Resolver` too.
            let r = lookup(&a, name).await;
            results.push((r, (p.clock().now() - t).as_millis() as u64));
        }
        results
    });
    out.result.unwrap()
}

#[test]
fn names_resolve_through_a_dns_server() {
    let r = resolve_all(
        FaultConfig::default(),
        IP_B.into(),
        &["unikernel.test", "v4only.test", "10.1.2.3", "nope.test"],
    );
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(r[0].0, Ok(vec![ip("10.0.0.42"), ip("fd00::42")]));
    assert_eq!(r[1].0, Ok(vec![ip("10.0.0.7"), ip("10.0.0.8")]));
    assert_eq!(r[2], (Ok(vec![ip("10.1.2.3")]), 0), "a literal resolves to itself, at once");
    assert_eq!(r[3].0, Err(StackError::NameNotFound));
    assert!(r[3].1 < 1000, "NXDOMAIN is final, not retried ({} ms)", r[3].1);
}

#[test]
fn resolution_survives_loss() {
    let r = resolve_all(
        FaultConfig::lossy(0.2),
        IP_B.into(),
        &["unikernel.test", "v4only.test", "unikernel.test"],
    );
    for (res, _) in &r {
        assert!(res.as_ref().is_ok_and(|a| !a.is_empty()), "{res:?}");
    }
}

#[test]
fn a_silent_dns_server_times_out_and_none_is_a_clear_error() {
    let r = resolve_all(FaultConfig::default(), Ipv4Addr::new(10, 0, 0, 99).into(), &["unikernel.test"]);
    assert_eq!(r[0].0, Err(StackError::TimedOut));
    assert!((9_000..=30_000).contains(&r[0].1), "gave up after {} ms", r[0].1);
    let out = run(24, |p| async move {
        let (a, _b) = two_stacks(&p, FaultConfig::default(), 24, Config::default());
        (a.resolve("unikernel.test").await, a.resolve("").await)
    });
    let messages: Vec<String> = out.messages().into_iter().map(String::from).collect();
    let (none, empty) = out.result.unwrap();
    assert_eq!(none, Err(StackError::NoRoute));
    assert!(messages.iter().any(|m| m.contains("no DNS server (pass --dns-server")), "{messages:?}");
    assert_eq!(empty, Err(StackError::NoRoute), "checked before the name");
}

#[test]
fn udp_over_ipv6() {
    let out = run(25, |p| async move {
        let switch = morgana_mem::Switch::default();
        let a = stack_on(&p, &switch, MAC_A, Config::default(), FaultConfig::default(), 25);
        let b = stack_on(&p, &switch, MAC_B, Config::default(), FaultConfig::default(), 26);
        spawn_echo(&p, &b, 7);
        let to = SocketAddr::new(b.ipv6()[0].into(), 7);
        let mut s = a.bind(0).await.unwrap();
        s.send_to(b"over v6", to).await.unwrap();
        let mut buf = [0u8; 32];
        let (n, from) = s.recv_from(&mut buf).await.unwrap();
        (buf[..n].to_vec(), from == to)
    });
    assert_eq!(out.result.unwrap(), (b"over v6".to_vec(), true));
}
