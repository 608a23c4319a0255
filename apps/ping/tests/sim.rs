//! `ping` on the in-memory switch: a raw ICMP peer (frames built with smoltcp's wire types)
//! resolves the unikernel by ARP and NDP, pings it on IPv4 and IPv6, and checks the answers.

use std::future::poll_fn;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::pin::pin;
use std::task::Poll;

use futures::future::{Either, select};
use morgana::net::{Net, RxToken, TxToken};
use morgana::{Clock, Duration, Platform, Spawn};
use morgana_mem::{MemNet, Switch};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr,
    Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet,
    Ipv6Repr, NdiscRepr,
};

const APP_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const APP_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_IP6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const PAYLOAD: &[u8] = b"morgana ping payload, 56 bytes long, like ping(8) sends.";

/// The link-local address the stack derives from `APP_MAC`.
fn app_ip6() -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0x0000, 0x00ff, 0xfe00, 0x0002)
}

fn frame(dst: [u8; 6], ethertype: EthernetProtocol, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; 14 + len];
    EthernetRepr { src_addr: EthernetAddress(PEER_MAC), dst_addr: EthernetAddress(dst), ethertype }
        .emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
    out
}

fn arp_request() -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(PEER_MAC),
        source_protocol_addr: PEER_IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: APP_IP,
    };
    let mut out = frame([0xff; 6], EthernetProtocol::Arp, arp.buffer_len());
    arp.emit(&mut ArpPacket::new_unchecked(&mut out[14..]));
    out
}

fn ipv6_frame(dst_mac: [u8; 6], dst: Ipv6Addr, icmp: &Icmpv6Repr<'_>) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let ip = Ipv6Repr {
        src_addr: PEER_IP6,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: 255,
    };
    let mut out = frame(dst_mac, EthernetProtocol::Ipv6, 40 + icmp.buffer_len());
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut out[14..]));
    icmp.emit(&PEER_IP6, &dst, &mut Icmpv6Packet::new_unchecked(&mut out[54..]), &caps);
    out
}

fn neighbor_solicit() -> Vec<u8> {
    let target = app_ip6();
    let t = target.octets();
    let solicited =
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(t[13]), u16::from_be_bytes([t[14], t[15]]));
    let mac = [0x33, 0x33, 0xff, t[13], t[14], t[15]];
    let ns = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr: target,
        lladdr: Some(EthernetAddress(PEER_MAC).into()),
    });
    ipv6_frame(mac, solicited, &ns)
}

fn echo_v4(seq: u16) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let icmp = Icmpv4Repr::EchoRequest { ident: 0x4d47, seq_no: seq, data: PAYLOAD };
    let ip = Ipv4Repr {
        src_addr: PEER_IP,
        dst_addr: APP_IP,
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    let mut out = frame(APP_MAC, EthernetProtocol::Ipv4, 20 + icmp.buffer_len());
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut out[14..]), &caps);
    icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut out[34..]), &caps);
    out
}

fn echo_v6(seq: u16) -> Vec<u8> {
    ipv6_frame(APP_MAC, app_ip6(), &Icmpv6Repr::EchoRequest { ident: 0x4d47, seq_no: seq, data: PAYLOAD })
}

/// What the peer heard back.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    ArpReply { mac: [u8; 6] },
    NeighborAdvert { mac: Option<Vec<u8>> },
    EchoV4 { seq: u16, intact: bool },
    EchoV6 { seq: u16, intact: bool },
}

fn hear(f: &[u8]) -> Option<Heard> {
    let caps = ChecksumCapabilities::default();
    let eth = EthernetFrame::new_checked(f).ok()?;
    match eth.ethertype() {
        EthernetProtocol::Arp => match ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()? {
            ArpRepr::EthernetIpv4 { operation: ArpOperation::Reply, source_hardware_addr, .. } => {
                Some(Heard::ArpReply { mac: source_hardware_addr.0 })
            }
            _ => None,
        },
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
            match Icmpv4Repr::parse(&icmp, &caps).ok()? {
                Icmpv4Repr::EchoReply { seq_no, data, .. } => {
                    Some(Heard::EchoV4 { seq: seq_no, intact: data == PAYLOAD && ip.dst_addr() == PEER_IP })
                }
                _ => None,
            }
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
            match Icmpv6Repr::parse(&ip.src_addr(), &ip.dst_addr(), &icmp, &caps).ok()? {
                Icmpv6Repr::EchoReply { seq_no, data, .. } => {
                    Some(Heard::EchoV6 { seq: seq_no, intact: data == PAYLOAD && ip.dst_addr() == PEER_IP6 })
                }
                Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert { lladdr, .. }) => {
                    Some(Heard::NeighborAdvert { mac: lladdr.map(|l| l.as_bytes().to_vec()) })
                }
                _ => None,
            }
        }
        _ => None,
    }
}

async fn send(net: &mut MemNet, f: &[u8]) {
    poll_fn(|cx| match net.transmit(cx) {
        Some(tx) => {
            tx.consume(f.len(), |b| b.copy_from_slice(f));
            Poll::Ready(())
        }
        None => Poll::Pending,
    })
    .await
}

/// Everything the peer hears within `wait`.
async fn listen<C: Clock>(net: &mut MemNet, clock: &C, wait: Duration) -> Vec<Heard> {
    let mut heard = Vec::new();
    let deadline = clock.now() + wait;
    loop {
        let rx = pin!(poll_fn(|cx| match net.receive(cx) {
            Some((rx, _)) => Poll::Ready(rx.consume(|f| f.to_vec())),
            None => Poll::Pending,
        }));
        match select(rx, pin!(clock.sleep_until(deadline))).await {
            Either::Left((f, _)) => heard.extend(hear(&f)),
            Either::Right(_) => return heard,
        }
    }
}

#[test]
fn answers_ping_and_ping6_and_logs_each_answer() {
    let out = morgana_mem::sim::Sim::new(1).run(|p| async move {
        let switch = Switch::default();
        let mut peer = switch.port(PEER_MAC);
        let config =
            ping::Config { tcpip: morgana_tcpip::Config::default().ipv4_static(APP_IP, 24, None), count: 5 };
        let (done_tx, done_rx) = futures::channel::oneshot::channel();
        let app = switch.port(APP_MAC);
        let platform = p.clone();
        p.spawn(async move {
            let _ = done_tx.send(ping::start(platform, app, config).await);
        });
        let clock = p.clock();
        let mut heard = Vec::new();
        // Resolve the unikernel first, as ping(8) does, then one echo request a second.
        send(&mut peer, &arp_request()).await;
        send(&mut peer, &neighbor_solicit()).await;
        heard.extend(listen(&mut peer, &clock, Duration::from_millis(100)).await);
        for seq in 1..=3 {
            send(&mut peer, &echo_v4(seq)).await;
            if seq <= 2 {
                send(&mut peer, &echo_v6(seq)).await;
            }
            heard.extend(listen(&mut peer, &clock, Duration::from_secs(1)).await);
        }
        (heard, done_rx.await.unwrap())
    });
    let messages: Vec<String> = out.messages().into_iter().map(String::from).collect();
    let (heard, answered) = out.result.expect("no stall");
    assert_eq!(answered, Ok(5), "the app stops after --count answers");
    assert_eq!(
        heard,
        [
            Heard::ArpReply { mac: APP_MAC },
            Heard::NeighborAdvert { mac: Some(APP_MAC.to_vec()) },
            Heard::EchoV4 { seq: 1, intact: true },
            Heard::EchoV6 { seq: 1, intact: true },
            Heard::EchoV4 { seq: 2, intact: true },
            Heard::EchoV6 { seq: 2, intact: true },
            Heard::EchoV4 { seq: 3, intact: true },
        ]
    );
    assert_eq!(messages[0], "answering ping on 10.0.0.2/24");
    assert_eq!(messages[1], format!("answering ping6 on {}", app_ip6()));
    let answers: Vec<&String> = messages.iter().filter(|m| m.starts_with("answered")).collect();
    assert_eq!(answers.len(), 5);
    assert_eq!(answers[0], &format!("answered ping from 10.0.0.1: seq 1, {} bytes", PAYLOAD.len()));
    assert_eq!(answers[1], &format!("answered ping from fe80::1: seq 1, {} bytes", PAYLOAD.len()));
}

#[test]
fn the_unix_binary_says_what_is_missing() {
    let args = morgana_args::Args::parse(&[ping::ARGS, morgana_tcpip::ARGS], ["--count", "x"]).unwrap();
    let e = ping::Config::from_args(&args).unwrap_err().to_string();
    assert_eq!(e, "--count: expected a non-negative number, got \"x\"");
}
