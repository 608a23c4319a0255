//! `dns` on the in-memory switch: the unikernel's stack asks a DNS server that runs on a
//! second stack (queries parsed with smoltcp's wire types, answers built by hand).

use std::net::{IpAddr, Ipv4Addr};

use morgana::{Platform, Spawn, StackError, UdpSocket, UdpStack};
use morgana_mem::Switch;
use morgana_mem::sim::SimPlatform;
use morgana_tcpip::{Config, Stack};
use smoltcp::wire::{DnsPacket, DnsQuestion};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 53);

fn stack(p: &SimPlatform, switch: &Switch, n: u8, config: Config) -> Stack {
    let ip = Ipv4Addr::new(10, 0, 0, n);
    let (stack, runner) =
        morgana_tcpip::new(switch.port([2, 0, 0, 0, 0, n]), p.clock(), config.ipv4_static(ip, 24, None));
    p.spawn(async move { runner.run().await });
    stack
}

/// Answer A and AAAA queries for `robur.test`; NXDOMAIN for anything else.
async fn serve(stack: Stack) {
    let mut sock = stack.bind(53).await.unwrap();
    let mut buf = vec![0u8; 1500];
    loop {
        let (n, from) = sock.recv_from(&mut buf).await.unwrap();
        let Ok(q) = DnsPacket::new_checked(&buf[..n]) else { continue };
        let Ok((rest, question)) = DnsQuestion::parse(q.payload()) else { continue };
        let Ok(labels) = q.parse_name(question.name).collect::<Result<Vec<&[u8]>, _>>() else { continue };
        let known = labels == [&b"robur"[..], &b"test"[..]];
        let rdata: Vec<Vec<u8>> = match (known, u16::from(question.type_)) {
            (true, 1) => vec![vec![10, 0, 0, 80], vec![10, 0, 0, 81]],
            (true, 28) => vec![b"\xfd\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x80".to_vec()],
            _ => vec![],
        };
        let mut out = q.transaction_id().to_be_bytes().to_vec();
        out.extend_from_slice(&(0x8180u16 | if known { 0 } else { 3 }).to_be_bytes());
        for count in [1, rdata.len() as u16, 0, 0] {
            out.extend_from_slice(&count.to_be_bytes());
        }
        out.extend_from_slice(&q.payload()[..q.payload().len() - rest.len()]);
        for r in &rdata {
            out.extend_from_slice(&[0xc0, 12]);
            out.extend_from_slice(&u16::from(question.type_).to_be_bytes());
            out.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            out.extend_from_slice(&(r.len() as u16).to_be_bytes());
            out.extend_from_slice(r);
        }
        sock.send_to(&out, from).await.unwrap();
    }
}

fn resolve(name: &str) -> (Result<Vec<IpAddr>, dns::Error>, Vec<String>) {
    let name = name.to_string();
    let out = morgana_mem::sim::Sim::new(1).run(|p| async move {
        let switch = Switch::default();
        p.spawn(serve(stack(&p, &switch, 53, Config::default())));
        let mut config = Config::default();
        config.dns_servers = vec![SERVER.into()];
        let unikernel = stack(&p, &switch, 2, config);
        dns::start(&unikernel, dns::Config { name }).await
    });
    let messages = out.messages().into_iter().map(String::from).collect();
    (out.result.expect("no stall"), messages)
}

#[test]
fn resolves_a_name_and_prints_its_addresses() {
    let (result, messages) = resolve("robur.test");
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(result, Ok(vec![ip("10.0.0.80"), ip("10.0.0.81"), ip("fd00::80")]));
    assert_eq!(
        messages,
        [
            "robur.test has address 10.0.0.80",
            "robur.test has address 10.0.0.81",
            "robur.test has IPv6 address fd00::80"
        ]
    );
}

#[test]
fn an_unknown_name_is_a_one_line_error() {
    let (result, messages) = resolve("nope.test");
    let e = result.unwrap_err();
    assert_eq!(e.cause, StackError::NameNotFound);
    assert_eq!(e.to_string(), "cannot resolve nope.test: name not found");
    assert!(messages.is_empty());
}

#[test]
fn the_name_is_required() {
    let args = morgana_args::Args::parse(&[dns::ARGS], [""; 0]).unwrap();
    assert_eq!(dns::Config::from_args(&args).unwrap_err().to_string(), "--name: required");
}
