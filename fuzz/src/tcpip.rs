//! The TCP/IP stack (`morgana-tcpip`): Ethernet frames into a stack that has a listener, an
//! accepted connection and a connection of its own open, through the `Net` trait on the
//! in-memory switch, on virtual time, so the TCP state machines are reached and not only the
//! header parsers.
//!
//! The stack under test, A (10.0.0.1), serves TCP and UDP echo on port 7; a real peer stack, B
//! (10.0.0.2), has connected to it, and A has connected to B's port 9. Then the input's frames
//! arrive at A from a third port. Input: records of `[delay][flags][len: u16 LE][frame]`, the
//! delay in virtual milliseconds before the frame (above 200, hundreds of milliseconds); the
//! flags byte is reserved. The harness fills in the IPv4 header checksum and the TCP, UDP and
//! ICMP checksums where the headers hold together, so that mutated frames get past them (smoltcp
//! does not check them in fuzzing builds anyway: this way a replay on stable sees the same).
//!
//! Checked beyond "no panic", on every frame A sends: it comes from A's MAC and, for ARP, IPv4
//! and IPv6, from one of A's own addresses; it fits the MTU; its IPv4 header and its TCP, UDP and
//! ICMP checksums are right (the link has no offloads). And after the input, unless the input
//! names the newcomer's addresses, a new peer (C, 10.0.0.3) still connects to A's port 7 and
//! is echoed.
//!
//! Seeds are the frames B sent A in a recorded session from the same starting state (data, a
//! half-close, UDP, a new connection over IPv6), so their sequence numbers are the ones A
//! expects.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::task::{Context, Waker};

use embedded_io_async::{Read, Write};
use morgana::{
    Capabilities, Clock, Duration, FlowWrite, Instant, LinkState, Net, NetStats, RxToken, Spawn, TcpListener,
    TcpStack, TxToken, UdpSocket, UdpStack,
};
use morgana_mem::{MemNet, Switch};
use morgana_tcpip::{Config, Stack};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, Icmpv4Packet, Icmpv6Packet, IpAddress, IpProtocol, Ipv4Packet,
    Ipv6Packet, TcpPacket, UdpPacket,
};

use crate::util::{Clock as Clk, run_virtual};

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const MAC_C: [u8; 6] = [2, 0, 0, 0, 0, 0xc];
const MAC_P: [u8; 6] = [2, 0, 0, 0, 0, 0xf];
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const IP_C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
/// Virtual time at which the setup is over and the input's frames start.
const START: Instant = Instant::from_millis(2000);
/// Most frames taken from one input.
const MAX_FRAMES: usize = 64;

/// The EUI-64 link-local address of `mac`.
fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 2,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ])
}

/// Frames A received, with when, while recording seeds.
type Recording = Rc<RefCell<Option<Vec<(Instant, Vec<u8>)>>>>;

/// A's device: the switch port, with every frame A sends checked and, when recording, every
/// frame it receives kept.
struct Checked {
    inner: MemNet,
    clock: Clk,
    recording: Recording,
}

struct CheckedRx<'a> {
    inner: <MemNet as Net>::RxToken<'a>,
    clock: &'a Clk,
    recording: &'a Recording,
}

impl RxToken for CheckedRx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        let (clock, recording) = (self.clock, self.recording);
        self.inner.consume(|buf| {
            if let Some(frames) = recording.borrow_mut().as_mut() {
                frames.push((clock.now(), buf.to_vec()));
            }
            f(buf)
        })
    }
}

struct CheckedTx<'a>(<MemNet as Net>::TxToken<'a>);

impl TxToken for CheckedTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        assert!(len <= 1514, "A sent a {len}-byte frame on a 1500-byte MTU link");
        self.0.consume(len, |buf| {
            let r = f(buf);
            check_sent(buf);
            r
        })
    }
    fn set_segment_size(&mut self, mss: u16) {
        self.0.set_segment_size(mss);
    }
}

impl Net for Checked {
    type RxToken<'a> = CheckedRx<'a>;
    type TxToken<'a> = CheckedTx<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(CheckedRx<'_>, CheckedTx<'_>)> {
        let (rx, tx) = self.inner.receive(cx)?;
        Some((CheckedRx { inner: rx, clock: &self.clock, recording: &self.recording }, CheckedTx(tx)))
    }
    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<CheckedTx<'_>> {
        self.inner.transmit(cx).map(CheckedTx)
    }
    fn link_state(&mut self, cx: &mut Context<'_>) -> LinkState {
        self.inner.link_state(cx)
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }
    fn stats(&self) -> NetStats {
        self.inner.stats()
    }
}

/// The checks on one frame A sent.
fn check_sent(frame: &[u8]) {
    let eth = EthernetFrame::new_checked(frame).expect("A sent a frame shorter than an Ethernet header");
    assert_eq!(eth.src_addr().0, MAC_A, "A sent a frame from another MAC: {frame:02x?}");
    match eth.ethertype() {
        EthernetProtocol::Arp => {
            let p = eth.payload();
            assert!(p.len() >= 28, "A sent a short ARP packet");
            assert_eq!(&p[8..14], &MAC_A, "A's ARP packet names another MAC as its sender");
            assert_eq!(&p[14..18], &IP_A.octets(), "A's ARP packet names another IPv4 address as its sender");
        }
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).expect("A sent a malformed IPv4 packet");
            assert_eq!(ip.src_addr(), IP_A, "A sent an IPv4 packet from another address: {frame:02x?}");
            let header = &eth.payload()[..usize::from(ip.header_len())];
            assert_eq!(internet_checksum(&[header]), 0, "A sent an IPv4 header with a bad checksum");
            let (src, dst) = (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()));
            check_l4(ip.next_header(), ip.payload(), &src, &dst);
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).expect("A sent a malformed IPv6 packet");
            assert_eq!(
                ip.src_addr(),
                link_local(MAC_A),
                "A sent an IPv6 packet from another address: {frame:02x?}"
            );
            let (src, dst) = (IpAddress::Ipv6(ip.src_addr()), IpAddress::Ipv6(ip.dst_addr()));
            check_l4(ip.next_header(), ip.payload(), &src, &dst);
        }
        other => panic!("A sent a frame of EtherType {other}"),
    }
}

fn check_l4(proto: IpProtocol, payload: &[u8], src: &IpAddress, dst: &IpAddress) {
    // Checked here rather than with smoltcp's `verify_checksum`, which says yes to everything
    // in fuzzing builds.
    let pseudo = |len: usize| -> Vec<u8> {
        let mut p = Vec::with_capacity(40);
        match (src, dst) {
            (IpAddress::Ipv4(s), IpAddress::Ipv4(d)) => {
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
                p.extend_from_slice(&[0, u8::from(proto)]);
                p.extend_from_slice(&(len as u16).to_be_bytes());
            }
            (IpAddress::Ipv6(s), IpAddress::Ipv6(d)) => {
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
                p.extend_from_slice(&(len as u32).to_be_bytes());
                p.extend_from_slice(&[0, 0, 0, u8::from(proto)]);
            }
            _ => unreachable!("one IP version per packet"),
        }
        p
    };
    let sums_to_zero = |with_pseudo: bool| {
        let head = if with_pseudo { pseudo(payload.len()) } else { Vec::new() };
        internet_checksum(&[&head, payload]) == 0
    };
    match proto {
        IpProtocol::Tcp => {
            TcpPacket::new_checked(payload).expect("A sent a malformed TCP segment");
            assert!(sums_to_zero(true), "A sent a TCP segment with a bad checksum");
        }
        IpProtocol::Udp => {
            UdpPacket::new_checked(payload).expect("A sent a malformed UDP datagram");
            assert!(sums_to_zero(true), "A sent a UDP datagram with a bad checksum");
        }
        IpProtocol::Icmp => {
            Icmpv4Packet::new_checked(payload).expect("A sent a malformed ICMP message");
            assert!(sums_to_zero(false), "A sent an ICMP message with a bad checksum");
        }
        IpProtocol::Icmpv6 => {
            Icmpv6Packet::new_checked(payload).expect("A sent a malformed ICMPv6 message");
            assert!(sums_to_zero(true), "A sent an ICMPv6 message with a bad checksum");
        }
        other => panic!("A sent an IP packet of protocol {other}"),
    }
}

/// The ones' complement of the ones' complement sum of `parts` (RFC 1071): 0 over a message
/// whose checksum field is right.
fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for part in parts {
        let mut words = part.chunks_exact(2);
        for w in &mut words {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            sum += u32::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Fill in the checksums of `frame` where its headers hold together.
fn fix_checksums(frame: &mut [u8]) {
    let Ok(mut eth) = EthernetFrame::new_checked(&mut *frame) else { return };
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else { return };
            ip.fill_checksum();
            let (src, dst) = (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()));
            let proto = ip.next_header();
            fix_l4(proto, ip.payload_mut(), &src, &dst);
        }
        EthernetProtocol::Ipv6 => {
            let Ok(mut ip) = Ipv6Packet::new_checked(eth.payload_mut()) else { return };
            let (src, dst) = (IpAddress::Ipv6(ip.src_addr()), IpAddress::Ipv6(ip.dst_addr()));
            let proto = ip.next_header();
            fix_l4(proto, ip.payload_mut(), &src, &dst);
        }
        _ => {}
    }
}

fn fix_l4(proto: IpProtocol, payload: &mut [u8], src: &IpAddress, dst: &IpAddress) {
    match (proto, src, dst) {
        (IpProtocol::Tcp, ..) => {
            if let Ok(mut p) = TcpPacket::new_checked(payload) {
                p.fill_checksum(src, dst);
            }
        }
        (IpProtocol::Udp, ..) => {
            if let Ok(mut p) = UdpPacket::new_checked(payload) {
                p.fill_checksum(src, dst);
            }
        }
        (IpProtocol::Icmp, ..) => {
            if let Ok(mut p) = Icmpv4Packet::new_checked(payload) {
                p.fill_checksum();
            }
        }
        (IpProtocol::Icmpv6, IpAddress::Ipv6(s), IpAddress::Ipv6(d)) => {
            if let Ok(mut p) = Icmpv6Packet::new_checked(payload) {
                p.fill_checksum(s, d);
            }
        }
        _ => {}
    }
}

/// One input record.
struct Record<'a> {
    delay: Duration,
    frame: &'a [u8],
}

fn records(mut data: &[u8]) -> Vec<Record<'_>> {
    let mut out = Vec::new();
    while let [delay, _flags, lo, hi, rest @ ..] = data {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len()).min(1514);
        let (frame, rest) = rest.split_at(len);
        let ms = if *delay <= 200 { u64::from(*delay) } else { u64::from(*delay - 200) * 100 };
        out.push(Record { delay: Duration::from_millis(ms), frame });
        data = rest;
        if out.len() == MAX_FRAMES {
            break;
        }
    }
    out
}

fn encode_delay(ms: u64) -> u8 {
    if ms <= 200 { ms as u8 } else { (200 + ms.div_ceil(100)).min(255) as u8 }
}

/// A stack on a new port of `switch`.
fn stack(clock: &Clk, switch: &Switch, mac: [u8; 6], ip: Ipv4Addr, seed: u64) -> Stack {
    let (stack, runner) = morgana_tcpip::new(
        switch.port(mac),
        clock.clone(),
        Config::default().ipv4_static(ip, 24, None).seed(seed),
    );
    clock.spawn(async move { runner.run().await });
    stack
}

/// Echo `conn` until it ends.
async fn echo<F: morgana::Flow>(mut conn: F) {
    let mut buf = [0u8; 2048];
    while let Ok(n) = conn.read(&mut buf).await {
        if n == 0 || conn.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = conn.close().await;
}

/// What the setup leaves open on B's side, for the recording session to use.
struct Peer {
    b: Stack,
    /// B's connection to A's port 7.
    to_a: morgana_tcpip::Connection,
    /// The connection A opened to B's port 9, as B accepted it.
    from_a: morgana_tcpip::Connection,
}

/// Start A and B, open the connections both ways and exchange a few bytes on each; return at
/// [`START`].
async fn setup(clock: &Clk, switch: &Switch, recording: Recording) -> Peer {
    let net = Checked { inner: switch.port(MAC_A), clock: clock.clone(), recording };
    let (a, runner) =
        morgana_tcpip::new(net, clock.clone(), Config::default().ipv4_static(IP_A, 24, None).seed(0xa));
    clock.spawn(async move { runner.run().await });
    let b = stack(clock, switch, MAC_B, IP_B, 0xb);
    // A: TCP and UDP echo on port 7.
    let mut listener = a.listen(7, 8).await.expect("A listens on 7");
    let spawner = clock.clone();
    clock.spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            spawner.spawn(echo(conn));
        }
    });
    let mut udp = a.bind(7).await.expect("A binds UDP 7");
    clock.spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            let _ = udp.send_to(&buf[..n], from).await;
        }
    });
    // B listens on 9; A connects to it and says hello; B connects to A's echo.
    let mut b_listener = b.listen(9, 4).await.expect("B listens on 9");
    let a2 = a.clone();
    clock.spawn(async move {
        if let Ok(mut c) = a2.connect(SocketAddr::new(IP_B.into(), 9)).await {
            let _ = c.write_all(b"hello from A").await;
            echo(c).await;
        }
    });
    let (mut from_a, _) = b_listener.accept().await.expect("A connects to B");
    let mut buf = [0u8; 12];
    from_a.read_exact(&mut buf).await.expect("A's hello");
    let mut to_a = b.connect(SocketAddr::new(IP_A.into(), 7)).await.expect("B connects to A");
    to_a.write_all(b"ping").await.expect("B writes");
    let mut pong = [0u8; 4];
    to_a.read_exact(&mut pong).await.expect("A echoes");
    assert_eq!(&pong, b"ping");
    assert!(clock.now() < START, "the setup took until {:?}", clock.now());
    clock.sleep_until(START).await;
    Peer { b, to_a, from_a }
}

/// Whether the input mentions C's MAC or IPv4 address: it may then have poisoned A's
/// neighbour cache for C on purpose, and C's failure to connect would prove nothing.
fn names_c(data: &[u8]) -> bool {
    data.windows(4).any(|w| w == IP_C.octets()) || data.windows(6).any(|w| w == MAC_C)
}

/// Feed one input's frames to A.
pub fn run(data: &[u8]) {
    let recs = records(data);
    run_virtual(24 * 3600, |clock| async move {
        let switch = Switch::new(Capabilities::default());
        let mut inject = switch.port(MAC_P);
        let c = stack(&clock, &switch, MAC_C, IP_C, 0xc);
        let _peer = setup(&clock, &switch, Rc::new(RefCell::new(None))).await;
        let mut cx = Context::from_waker(Waker::noop());
        for r in &recs {
            clock.sleep(r.delay).await;
            if r.frame.len() < 14 {
                continue;
            }
            let tx = inject.transmit(&mut cx).expect("the switch always takes a frame");
            tx.consume(r.frame.len(), |buf| {
                buf.copy_from_slice(r.frame);
                fix_checksums(buf);
            });
            // What A sends back is checked as it is sent; here it is only drained.
            while let Some((rx, _)) = inject.receive(&mut cx) {
                rx.consume(|_| ());
            }
        }
        clock.sleep(Duration::from_secs(1)).await;
        if !names_c(data) {
            let at = clock.now() + Duration::from_secs(30);
            let talk = async {
                let mut conn = c.connect(SocketAddr::new(IP_A.into(), 7)).await?;
                conn.write_all(b"still there?").await?;
                let mut buf = [0u8; 12];
                conn.read_exact(&mut buf).await.map_err(|_| morgana::StackError::ConnectionReset)?;
                Ok::<_, morgana::StackError>(buf)
            };
            match morgana_http::with_deadline(&clock, at, talk).await {
                Some(Ok(buf)) => assert_eq!(&buf, b"still there?", "A echoed something else to a new peer"),
                Some(Err(e)) => panic!("after the input, a new peer's connection to A failed: {e:?}"),
                None => panic!("after the input, a new peer could not talk to A within 30 s"),
            }
        }
    })
    .expect("the run ends within a day of virtual time");
}

/// Record the frames A receives while B uses the connections the setup left open (and opens
/// one over IPv6), from [`START`] on; encode them as an input.
fn record_session(session: u8) -> Vec<u8> {
    let recording: Recording = Rc::new(RefCell::new(None));
    let rec = recording.clone();
    let frames = run_virtual(24 * 3600, |clock| async move {
        let switch = Switch::new(Capabilities::default());
        let _c = stack(&clock, &switch, MAC_C, IP_C, 0xc);
        let mut peer = setup(&clock, &switch, rec.clone()).await;
        *rec.borrow_mut() = Some(Vec::new());
        match session {
            0 => {
                peer.to_a.write_all(b"hello, morgana").await.expect("B writes");
                let mut buf = [0u8; 14];
                peer.to_a.read_exact(&mut buf).await.expect("A echoes");
                peer.to_a.shutdown_write().await.expect("B half-closes");
                let mut rest = [0u8; 1];
                let _ = peer.to_a.read(&mut rest).await;
            }
            1 => {
                let mut buf = [0u8; 12];
                peer.from_a.write_all(b"hello from B").await.expect("B writes");
                peer.from_a.read_exact(&mut buf).await.expect("A echoes");
                drop(peer.from_a);
            }
            2 => {
                let mut u = peer.b.bind(5353).await.expect("B binds UDP");
                u.send_to(b"datagram", SocketAddr::new(IP_A.into(), 7)).await.expect("B sends");
                let mut buf = [0u8; 16];
                let _ = u.recv_from(&mut buf).await;
            }
            _ => {
                let v6 = SocketAddr::new(IpAddr::V6(link_local(MAC_A)), 7);
                let mut conn = peer.b.connect(v6).await.expect("B connects over IPv6");
                conn.write_all(b"over v6").await.expect("B writes");
                let mut buf = [0u8; 7];
                conn.read_exact(&mut buf).await.expect("A echoes");
                drop(conn);
            }
        }
        clock.sleep(Duration::from_secs(2)).await;
        rec.borrow_mut().take().unwrap_or_default()
    })
    .expect("the recorded session ends");
    let mut out = Vec::new();
    let mut last = START;
    for (at, frame) in frames {
        out.push(encode_delay(
            u64::try_from(at.saturating_duration_since(last).as_millis()).unwrap_or(u64::MAX),
        ));
        out.push(0);
        out.extend_from_slice(&(frame.len() as u16).to_le_bytes());
        out.extend_from_slice(&frame);
        last = at;
    }
    out
}

/// The recorded sessions: data and a half-close to A's echo, data on A's own connection, UDP,
/// and a new connection over IPv6.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    ["tcp-echo", "tcp-outgoing", "udp-echo", "tcp-ipv6"]
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_string(), record_session(i as u8)))
        .collect()
}
