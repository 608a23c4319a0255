//! The link emulator between two namespaces, with UDP from this process: A (10.81.0.1 on a TAP)
//! ↔ [`Link`] ↔ B (10.81.0.2 on a TAP). Loss shows as datagrams missing in the measured
//! proportion, delay in the round-trip time, the rate limit as a cap on what arrives.
//!
//! These tests need root (namespaces, TAP devices): without it, or with
//! `MORGANA_SKIP_ROOT_TESTS=1`, one line says so and each is reported as ignored, not passed
//! (`harness = false`, on this crate's [`Suite`]).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use morgana_netns::{Impairment, Link, LinkConfig, Need, Netns, Port, Suite};

fn main() -> ExitCode {
    let mut suite = Suite::new();
    for (name, test) in [
        (
            "ten_percent_loss_drops_about_a_tenth_of_the_datagrams",
            ten_percent_loss_drops_about_a_tenth_of_the_datagrams as fn(),
        ),
        ("twenty_ms_of_delay_shows_in_the_round_trip_time", twenty_ms_of_delay_shows_in_the_round_trip_time),
        ("a_ten_mbit_limit_caps_what_arrives", a_ten_mbit_limit_caps_what_arrives),
        (
            "offloaded_tcp_from_a_packet_port_arrives_cut_checksummed_and_byte_exact",
            offloaded_tcp_from_a_packet_port_arrives_cut_checksummed_and_byte_exact,
        ),
    ] {
        suite.test(name, &[Need::Root, Need::program("ip", "iproute2")], test);
    }
    suite.run()
}

const A: &str = "10.81.0.1";
const B: &str = "10.81.0.2";

/// Two namespaces joined by a link emulator; IPv4 only and neighbours fixed, so the only
/// frames on the link are the test's.
fn pair(tag: &str, config: LinkConfig) -> (Netns, Netns, Link) {
    let (a, b) = (Netns::new(&format!("{tag}a")), Netns::new(&format!("{tag}b")));
    a.ipv4_only();
    b.ipv4_only();
    a.tap("mgla", &[&format!("{A}/24")]);
    b.tap("mglb", &[&format!("{B}/24")]);
    let link = Link::start(Port::tap(&a, "mgla"), vec![Port::tap(&b, "mglb")], config);
    let (mac_a, mac_b) = (a.mac("mgla"), b.mac("mglb"));
    a.run(&["ip", "neigh", "replace", B, "lladdr", &mac_b, "dev", "mgla", "nud", "permanent"]);
    b.run(&["ip", "neigh", "replace", A, "lladdr", &mac_a, "dev", "mglb", "nud", "permanent"]);
    (a, b, link)
}

fn udp(ns: &Netns, addr: &str) -> UdpSocket {
    let addr = addr.to_string();
    ns.enter(move || UdpSocket::bind(&addr)).expect("bind a UDP socket")
}

/// Datagrams received on `sock` until it has been quiet for `quiet`: (count, bytes, first, last).
fn drain(sock: &UdpSocket, quiet: Duration) -> (u64, u64, Option<Instant>, Option<Instant>) {
    sock.set_read_timeout(Some(quiet)).unwrap();
    let mut buf = [0u8; 2048];
    let (mut count, mut bytes, mut first, mut last) = (0, 0, None, None);
    while let Ok(n) = sock.recv(&mut buf) {
        let now = Instant::now();
        first.get_or_insert(now);
        last = Some(now);
        count += 1;
        bytes += n as u64;
    }
    (count, bytes, first, last)
}

fn ten_percent_loss_drops_about_a_tenth_of_the_datagrams() {
    let (a, b, link) = pair("ll", LinkConfig::new(11).a_to_b(Impairment::default().loss(0.10)));
    let rx = udp(&b, &format!("{B}:9000"));
    let tx = udp(&a, &format!("{A}:0"));
    let receiver = std::thread::spawn(move || drain(&rx, Duration::from_millis(500)));
    const SENT: u64 = 4000;
    for i in 0..SENT {
        tx.send_to(&i.to_be_bytes(), format!("{B}:9000")).unwrap();
        if i % 100 == 99 {
            // Paced, so that no queue on the way overflows: only the dice drop.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let (received, _, _, _) = receiver.join().unwrap();
    let stats = link.stop().a_to_b;
    eprintln!("{received} of {SENT} datagrams arrived; link: {stats:?}");
    assert_eq!(stats.frames, SENT, "frames other than the datagrams crossed the link");
    assert_eq!(received, SENT - stats.lost, "the link's loss count is not what the receiver saw");
    // 10 % of 4000 is 400 ± 19 (one standard deviation): ± 100 is over 5 of them.
    let lost = SENT - received;
    assert!((300..=500).contains(&lost), "{lost} of {SENT} lost at 10 % loss");
}

fn twenty_ms_of_delay_shows_in_the_round_trip_time() {
    let (a, b, link) =
        pair("ld", LinkConfig::new(1).both(Impairment::default().delay(Duration::from_millis(10))));
    let server = udp(&b, &format!("{B}:9001"));
    let client = udp(&a, &format!("{A}:0"));
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = server.recv_from(&mut buf) {
            let _ = server.send_to(&buf[..n], from);
        }
    });
    client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut rtts = Vec::new();
    for i in 0u32..20 {
        let started = Instant::now();
        client.send_to(&i.to_be_bytes(), format!("{B}:9001")).unwrap();
        let mut buf = [0u8; 64];
        let n = client.recv(&mut buf).expect("an answer within 2 s");
        assert_eq!(&buf[..n], &i.to_be_bytes());
        rtts.push(started.elapsed());
    }
    rtts.sort();
    let stats = link.stop();
    eprintln!("round trips {:?} min, {:?} median; {stats}", rtts[0], rtts[10]);
    assert!(rtts[0] >= Duration::from_millis(20), "a round trip of {:?} through 2 × 10 ms", rtts[0]);
    assert!(rtts[10] < Duration::from_millis(120), "median round trip {:?} through 2 × 10 ms", rtts[10]);
    assert_eq!(stats.a_to_b.delayed, 20);
}

fn a_ten_mbit_limit_caps_what_arrives() {
    const RATE: u64 = 10_000_000;
    let imp = Impairment::default().rate(RATE, 0).queue(64 << 10);
    let (a, b, link) = pair("lr", LinkConfig::new(2).a_to_b(imp));
    let rx = udp(&b, &format!("{B}:9002"));
    let tx = udp(&a, &format!("{A}:0"));
    let receiver = std::thread::spawn(move || drain(&rx, Duration::from_millis(500)));
    // Offer far more than 10 Mbit/s for a second: 1400-byte datagrams as fast as they go.
    let payload = [0x5au8; 1400];
    let started = Instant::now();
    let mut offered = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        if tx.send_to(&payload, format!("{B}:9002")).is_ok() {
            offered += 1;
        }
    }
    let (count, bytes, first, last) = receiver.join().unwrap();
    let stats = link.stop().a_to_b;
    let secs = (last.unwrap() - first.unwrap()).as_secs_f64();
    // Frame bytes on the wire: the payload plus UDP, IPv4 and Ethernet headers.
    let bits_per_s = (bytes + count * (8 + 20 + 14)) as f64 * 8.0 / secs;
    eprintln!(
        "{offered} offered, {count} arrived in {secs:.2} s: {:.1} Mbit/s; link: {stats:?}",
        bits_per_s / 1e6
    );
    assert!(stats.queue_dropped > 0, "the sender never filled the queue: {stats:?}");
    // Loose: the right order of magnitude, not a timing test.
    assert!(bits_per_s < 2.0 * RATE as f64, "{bits_per_s} bit/s through a {RATE} bit/s limit");
    assert!(bits_per_s > 0.2 * RATE as f64, "{bits_per_s} bit/s through a {RATE} bit/s limit");
}

/// Linux TCP with its offloads on (a veth sends TSO super-frames whose checksums are left to
/// be finished) read by a packet port, as the emulator reads a unikernel's offloading TAP:
/// the frames reach the other side cut into wire segments with right checksums (a wrong one
/// is dropped by the receiving kernel, and the transfer would stall), byte-exact under loss.
fn offloaded_tcp_from_a_packet_port_arrives_cut_checksummed_and_byte_exact() {
    let (a, b, w) = (Netns::new("lpa"), Netns::new("lpb"), Netns::new("lpw"));
    for ns in [&a, &b, &w] {
        ns.ipv4_only();
    }
    a.tap("mgla", &[&format!("{A}/24")]);
    // B's end has the address and the offloads; W's end carries B's frames to the emulator.
    b.veth("mglv", &[&format!("{B}/24")], &w, "mglw", &[]);
    let config = LinkConfig::new(5).b_to_a(Impairment::default().loss(0.01));
    let link = Link::start(Port::tap(&a, "mgla"), vec![Port::packet(&w, "mglw")], config);
    let (mac_a, mac_b) = (a.mac("mgla"), b.mac("mglv"));
    a.run(&["ip", "neigh", "replace", B, "lladdr", &mac_b, "dev", "mgla", "nud", "permanent"]);
    b.run(&["ip", "neigh", "replace", A, "lladdr", &mac_a, "dev", "mglv", "nud", "permanent"]);

    let listener = a.enter(|| TcpListener::bind(format!("{A}:9003"))).expect("listen in A");
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let sent = data.clone();
    let sender = std::thread::spawn(move || {
        let mut s = b.enter(|| TcpStream::connect(format!("{A}:9003"))).expect("connect from B");
        s.write_all(&sent).expect("send 8 MiB");
        b
    });
    listener.set_nonblocking(true).unwrap();
    let started = Instant::now();
    let mut conn = loop {
        match listener.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(started.elapsed() < Duration::from_secs(10), "no connection from B in 10 s");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let (mut got, mut buf) = (Vec::new(), vec![0u8; 1 << 16]);
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(30), "{} of 8 MiB arrived in 30 s", got.len());
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("receiving: {e}"),
        }
    }
    let _b = sender.join().unwrap();
    let stats = link.stop().b_to_a;
    eprintln!("8 MiB in {:?}; link B to A: {stats:?}", started.elapsed());
    assert!(got == data, "{} bytes arrived, not the 8 MiB sent", got.len());
    assert!(stats.oversized > 0, "no super-frame crossed: the test did not test offloads");
    assert!(stats.lost > 0, "no loss happened");
}
