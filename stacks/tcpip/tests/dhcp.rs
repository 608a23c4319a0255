//! DHCP against a small in-memory server built from smoltcp's wire types.

mod common;

use std::cell::Cell;
use std::future::poll_fn;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::task::Poll;

use common::*;
use morgana::net::{Net, RxToken, TxToken};
use morgana::{Clock, Duration, Platform, Spawn};
use morgana_mem::{MemNet, Switch};
use morgana_tcpip::Config;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame,
    EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x5e];
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const LEASED: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);
const LEASE_SECS: u32 = 60;

/// What the server saw.
#[derive(Default)]
struct Counts {
    discovers: Cell<u32>,
    requests: Cell<u32>,
    /// While false the server ignores everything (it went away).
    answering: Cell<bool>,
}

fn send(net: &mut MemNet, frame: &[u8]) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if let Some(tx) = net.transmit(&mut cx) {
        tx.consume(frame.len(), |b| b.copy_from_slice(frame));
    }
}

/// An answer to `frame` (ARP for our address, or a DHCP message), if it deserves one.
fn answer(frame: &[u8], counts: &Counts) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let eth_repr = EthernetRepr::parse(&eth).ok()?;
    let reply_eth = |dst: EthernetAddress, ethertype, len| {
        let mut out = vec![0u8; 14 + len];
        EthernetRepr { src_addr: EthernetAddress(SERVER_MAC), dst_addr: dst, ethertype }
            .emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
        out
    };
    match eth_repr.ethertype {
        EthernetProtocol::Arp => {
            let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()?;
            let ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr,
                source_protocol_addr,
                target_protocol_addr,
                ..
            } = arp
            else {
                return None;
            };
            if target_protocol_addr != SERVER_IP {
                return None;
            }
            let reply = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: EthernetAddress(SERVER_MAC),
                source_protocol_addr: SERVER_IP,
                target_hardware_addr: source_hardware_addr,
                target_protocol_addr: source_protocol_addr,
            };
            let mut out = reply_eth(source_hardware_addr, EthernetProtocol::Arp, reply.buffer_len());
            reply.emit(&mut ArpPacket::new_unchecked(&mut out[14..]));
            Some(out)
        }
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let caps = ChecksumCapabilities::default();
            let ip_repr = Ipv4Repr::parse(&ip, &caps).ok()?;
            if ip_repr.next_header != IpProtocol::Udp {
                return None;
            }
            let udp = UdpPacket::new_checked(ip.payload()).ok()?;
            let udp_repr =
                UdpRepr::parse(&udp, &ip_repr.src_addr.into(), &ip_repr.dst_addr.into(), &caps).ok()?;
            if udp_repr.dst_port != 67 {
                return None;
            }
            let dhcp = DhcpPacket::new_checked(udp.payload()).ok()?;
            let req = DhcpRepr::parse(&dhcp).ok()?;
            let message_type = match req.message_type {
                DhcpMessageType::Discover => {
                    counts.discovers.set(counts.discovers.get() + 1);
                    DhcpMessageType::Offer
                }
                DhcpMessageType::Request => {
                    counts.requests.set(counts.requests.get() + 1);
                    DhcpMessageType::Ack
                }
                _ => return None,
            };
            let mut dns = heapless::Vec::new();
            dns.push(SERVER_IP).ok()?;
            let reply = DhcpRepr {
                message_type,
                transaction_id: req.transaction_id,
                secs: 0,
                client_hardware_address: req.client_hardware_address,
                client_ip: Ipv4Addr::UNSPECIFIED,
                your_ip: LEASED,
                server_ip: SERVER_IP,
                router: Some(SERVER_IP),
                subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                relay_agent_ip: Ipv4Addr::UNSPECIFIED,
                broadcast: false,
                requested_ip: None,
                client_identifier: None,
                server_identifier: Some(SERVER_IP),
                parameter_request_list: None,
                dns_servers: Some(dns),
                max_size: None,
                lease_duration: Some(LEASE_SECS),
                renew_duration: None,
                rebind_duration: None,
                additional_options: &[],
            };
            let dhcp_len = reply.buffer_len();
            let dst = Ipv4Addr::BROADCAST;
            let ip_out = Ipv4Repr {
                src_addr: SERVER_IP,
                dst_addr: dst,
                next_header: IpProtocol::Udp,
                payload_len: 8 + dhcp_len,
                hop_limit: 64,
            };
            let mut out = reply_eth(req.client_hardware_address, EthernetProtocol::Ipv4, 20 + 8 + dhcp_len);
            ip_out.emit(&mut Ipv4Packet::new_unchecked(&mut out[14..]), &caps);
            UdpRepr { src_port: 67, dst_port: 68 }.emit(
                &mut UdpPacket::new_unchecked(&mut out[34..]),
                &SERVER_IP.into(),
                &dst.into(),
                dhcp_len,
                |buf| reply.emit(&mut DhcpPacket::new_unchecked(buf)).unwrap(),
                &caps,
            );
            Some(out)
        }
        _ => None,
    }
}

fn spawn_server(p: &morgana_mem::sim::SimPlatform, mut net: MemNet) -> Rc<Counts> {
    let counts = Rc::new(Counts::default());
    counts.answering.set(true);
    let c = counts.clone();
    p.spawn(async move {
        loop {
            let frame = poll_fn(|cx| match net.receive(cx) {
                Some((rx, _)) => Poll::Ready(rx.consume(|f| f.to_vec())),
                None => Poll::Pending,
            })
            .await;
            if c.answering.get()
                && let Some(out) = answer(&frame, &c)
            {
                send(&mut net, &out);
            }
        }
    });
    counts
}

#[test]
fn a_lease_is_obtained_renewed_and_lost_when_the_server_goes() {
    let out = run(40, |p| async move {
        let switch = Switch::default();
        let counts = spawn_server(&p, switch.port(SERVER_MAC));
        let (stack, runner) = morgana_tcpip::new(switch.port(MAC_A), p.clock(), Config::default().dhcp());
        p.spawn(async move { runner.run().await });
        assert_eq!(stack.ipv4(), None, "no address before the lease");
        let addr = stack.wait_ipv4().await;
        let leased_at = p.clock().now();
        let (prefix, dns) = (stack.ipv4().unwrap().1, stack.dns_servers());
        // Five lease lifetimes: renewals keep the address.
        p.clock().sleep(Duration::from_secs(5 * u64::from(LEASE_SECS))).await;
        let kept = stack.ipv4().map(|a| a.0);
        let renewals = counts.requests.get() - 1;
        // The server goes away: the lease runs out and the address is withdrawn.
        counts.answering.set(false);
        p.clock().sleep(Duration::from_secs(2 * u64::from(LEASE_SECS))).await;
        let after = stack.ipv4();
        (addr, leased_at, prefix, dns, kept, renewals, counts.discovers.get() >= 1, after)
    });
    let messages: Vec<String> = out.messages().into_iter().map(String::from).collect();
    let (addr, leased_at, prefix, dns, kept, renewals, discovered, after) = out.result.unwrap();
    assert!(discovered);
    assert_eq!((addr, prefix), (LEASED, 24));
    assert!(leased_at.as_millis() < 5_000, "leased at {leased_at}");
    assert_eq!(dns, [std::net::IpAddr::V4(SERVER_IP)], "DNS server learned from the lease");
    assert_eq!(kept, Some(LEASED), "still leased after five lifetimes");
    assert!(renewals >= 5, "renewed {renewals} times in five lease lifetimes");
    assert_eq!(after, None, "the address is withdrawn when the lease runs out");
    assert!(messages.iter().any(|m| m.starts_with("DHCP lease: 10.0.0.50/24 via 10.0.0.1")), "{messages:?}");
}

#[test]
fn connect_and_resolve_wait_for_the_first_lease_then_give_up_clearly() {
    let out = run(41, |p| async move {
        let switch = Switch::default();
        let counts = spawn_server(&p, switch.port(SERVER_MAC));
        // The server is slow to come up: it ignores the first DISCOVER (smoltcp asks again 10 s on).
        counts.answering.set(false);
        let c = counts.clone();
        let clock = p.clock();
        p.spawn(async move {
            clock.sleep(Duration::from_secs(3)).await;
            c.answering.set(true);
        });
        let server = stack_on(
            &p,
            &switch,
            MAC_B,
            Config::default().ipv4_static(IP_B, 24, None),
            Default::default(),
            1,
        );
        let mut listener = morgana::TcpStack::listen(&server, 7, 1).await.unwrap();
        let (client, runner) = morgana_tcpip::new(switch.port(MAC_A), p.clock(), Config::default().dhcp());
        p.spawn(async move { runner.run().await });
        // Used at once, as an app would: the connection waits for the lease instead of failing.
        let conn = morgana::TcpStack::connect(&client, addr(IP_B, 7)).await.map(|c| c.local_addr());
        let connected_at = p.clock().now();
        let (_, peer) = morgana::TcpListener::accept(&mut listener).await.unwrap();

        // A link where no server ever answers: both fail after 30 s, and the log says why.
        let lonely = Switch::default();
        let (alone, runner) = morgana_tcpip::new(lonely.port(MAC_A), p.clock(), Config::default().dhcp());
        p.spawn(async move { runner.run().await });
        let started = p.clock().now();
        let refused = morgana::TcpStack::connect(&alone, addr(IP_B, 7)).await.err();
        let waited = p.clock().now() - started;
        let unresolved = morgana::Resolver::resolve(&alone, "unikernel.test").await;
        (conn, connected_at, peer, refused, waited, unresolved)
    });
    let messages: Vec<String> = out.messages().into_iter().map(String::from).collect();
    let (conn, connected_at, peer, refused, waited, unresolved) = out.result.unwrap();
    assert_eq!(conn.map(|a| a.ip()), Ok(LEASED.into()), "connected from the leased address");
    assert_eq!(peer.ip(), std::net::IpAddr::from(LEASED));
    assert!(
        (10_000..15_000).contains(&connected_at.as_millis()),
        "after the second DISCOVER: {connected_at}"
    );
    assert_eq!(refused, Some(morgana::StackError::TimedOut));
    assert!((29..=31).contains(&waited.as_secs()), "gave up after {waited:?}");
    assert_eq!(unresolved, Err(morgana::StackError::TimedOut), "no lease, no DNS server: at once");
    assert!(messages.iter().any(|m| m.starts_with("no DHCP lease after 30 s")), "{messages:?}");
}
