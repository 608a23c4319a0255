//! `TapNet` against the Linux side of real TAP devices, inside network namespaces these tests
//! create (root). Each test re-runs one helper of this binary inside its namespace with `ip
//! netns exec`, so the TAP device is born there; the namespace is removed afterwards, also when
//! the helper fails. A helper is a test of this binary only when it runs as one
//! (`MORGANA_TAP_HELPER` set).
//!
//! Without root, or with `MORGANA_SKIP_ROOT_TESTS=1`, the tests that need it are reported as
//! ignored, with one line saying why (`harness = false`, on `morgana_netns::Suite`).

mod common;

use std::future::poll_fn;
use std::pin::pin;
use std::process::{Command, ExitCode, Output};
use std::task::Poll;

use common::run;
use futures::future::{Either, select};
use morgana::net::{Net, RxToken, TxToken};
use morgana::{Clock, Duration, Platform};
use morgana_args::{Args, COMMON};
use morgana_netns::{Need, Netns, Suite};
use morgana_unix::{TapError, TapNet};

/// Set in the environment of a helper run by one of the tests below.
const HELPER: &str = "MORGANA_TAP_HELPER";

const IP: Need = Need::program("ip", "iproute2");

fn main() -> ExitCode {
    let mut suite = Suite::new();
    if std::env::var_os(HELPER).is_some() {
        // Started by a test below, inside its namespace (or without CAP_NET_ADMIN).
        suite.test("helper_unprivileged", &[], helper_unprivileged);
        suite.test("helper_answer_ping", &[], helper_answer_ping);
        suite.test("helper_bridged_pair", &[], helper_bridged_pair);
        return suite.run();
    }
    suite.test(
        "a_tap_device_sees_frames_from_linux_and_answers_ping",
        &[Need::Root, IP, Need::program("ping", "iputils-ping")],
        a_tap_device_sees_frames_from_linux_and_answers_ping,
    );
    suite.test(
        "two_bridged_tap_devices_pass_the_net_suite",
        &[Need::Root, IP],
        two_bridged_tap_devices_pass_the_net_suite,
    );
    // Without root it checks the error a user sees; as root it drops CAP_NET_ADMIN first.
    let unprivileged = if morgana_netns::is_root() {
        vec![Need::Root, Need::program("setpriv", "util-linux")]
    } else {
        vec![]
    };
    suite.test(
        "without_cap_net_admin_the_error_says_what_to_do",
        &unprivileged,
        without_cap_net_admin_the_error_says_what_to_do,
    );
    suite.run()
}

/// Run the helper test `helper` of this binary inside `ns`.
fn run_helper(ns: &Netns, helper: &str) {
    let out = ns
        .command(std::env::current_exe().unwrap())
        .args(["--exact", helper, "--nocapture", "--test-threads=1"])
        .env(HELPER, "1")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "helper {helper} failed:\n{text}");
}

fn sh(cmd: &[&str]) -> Output {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn a_tap_device_sees_frames_from_linux_and_answers_ping() {
    run_helper(&Netns::new("tp"), "helper_answer_ping");
}

fn two_bridged_tap_devices_pass_the_net_suite() {
    run_helper(&Netns::new("tb"), "helper_bridged_pair");
}

fn without_cap_net_admin_the_error_says_what_to_do() {
    const LINE: &str = "TAP needs root or CAP_NET_ADMIN; run as root or use --net socket";
    if !morgana_netns::is_root() {
        assert_eq!(TapNet::open("mgnoperm0").unwrap_err().to_string(), LINE);
        return;
    }
    // As root, drop CAP_NET_ADMIN from a copy of this test binary and ask it to open a TAP.
    let out = Command::new("setpriv")
        .args(["--bounding-set", "-net_admin", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "helper_unprivileged", "--nocapture", "--test-threads=1"])
        .env(HELPER, "1")
        .output()
        .expect("setpriv (util-linux)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
    assert!(text.contains(&format!("error line: {LINE}\n")), "{text}");
    let device_line = "device error line: TAP needs root or CAP_NET_ADMIN; run as root\n";
    assert!(text.contains(device_line), "{text}");
}

/// Helper of `without_cap_net_admin_the_error_says_what_to_do`, without CAP_NET_ADMIN.
fn helper_unprivileged() {
    let e = TapNet::open("mgnoperm0").unwrap_err();
    assert!(matches!(e, TapError::Permission), "{e:?}");
    // What an app's start prints: an app on the default stack, and one that needs the
    // device itself (like ping, for which host sockets are no alternative).
    let rt = morgana_unix::Runtime::new().unwrap();
    let args =
        Args::parse(&[COMMON, morgana_unix::NET_ARGS, morgana_tcpip::ARGS], ["--net", "tap:mgnoperm0"])
            .unwrap();
    let start = morgana_unix::stack(&rt.platform(), &args).err().unwrap();
    assert_eq!(start.exit_code(), 1);
    println!("error line: {start}");
    let start = morgana_unix::net(&args).unwrap_err();
    assert_eq!(start.exit_code(), 1);
    println!("device error line: {start}");
}

const LINUX_IP: [u8; 4] = [10, 77, 0, 1];
const OUR_IP: [u8; 4] = [10, 77, 0, 2];
const OUR_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x77, 0x00, 0x02];

/// The next frame `net` receives that `want` accepts, or `None` after `timeout`.
async fn next_frame<N: Net, C: Clock>(
    net: &mut N,
    clock: &C,
    timeout: Duration,
    want: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let rx = pin!(poll_fn(|cx| {
        while let Some((rx, _)) = net.receive(cx) {
            let frame = rx.consume(|f| f.to_vec());
            if want(&frame) {
                return Poll::Ready(frame);
            }
        }
        Poll::Pending
    }));
    match select(rx, pin!(clock.sleep(timeout))).await {
        Either::Left((f, _)) => Some(f),
        Either::Right(_) => None,
    }
}

fn send<N: Net>(net: &mut N, frame: &[u8]) {
    let waker = futures::task::noop_waker();
    let tx = net.transmit(&mut std::task::Context::from_waker(&waker)).expect("a TAP can always send");
    tx.consume(frame.len(), |buf| buf.copy_from_slice(frame));
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 =
        data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Helper of `a_tap_device_sees_frames_from_linux_and_answers_ping`, in its namespace.
fn helper_answer_ping() {
    let mut tap = TapNet::open("mgtap0").unwrap().with_mac(OUR_MAC);
    assert_eq!(tap.name(), "mgtap0");
    sh(&["ip", "addr", "add", "10.77.0.1/24", "dev", "mgtap0"]);
    sh(&["ip", "link", "set", "mgtap0", "up"]);
    let linux_mac = std::fs::read_to_string("/sys/class/net/mgtap0/address").unwrap();
    let linux_mac: Vec<u8> =
        linux_mac.trim().split(':').map(|h| u8::from_str_radix(h, 16).unwrap()).collect();
    // The Linux side pings the unikernel's address: first it must ask for our MAC (ARP).
    let ping = Command::new("ping").args(["-c", "1", "-W", "5", "10.77.0.2"]).spawn().expect("ping");
    run(|p| async move {
        let clock = p.clock();
        let wait = Duration::from_secs(5);
        let arp = next_frame(&mut tap, &clock, wait, |f| {
            f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 1] && f[38..42] == OUR_IP
        })
        .await
        .expect("an ARP request for 10.77.0.2 from the Linux side");
        assert_eq!(&arp[0..6], &[0xff; 6], "ARP requests are broadcast");
        assert_eq!(&arp[6..12], &linux_mac[..], "sent by the Linux side of the TAP");
        assert_eq!(&arp[28..32], &LINUX_IP, "asking on behalf of 10.77.0.1");

        // Answer it; Linux then sends the echo request to our MAC.
        let mut reply = Vec::with_capacity(42);
        reply.extend_from_slice(&linux_mac);
        reply.extend_from_slice(&OUR_MAC);
        reply.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
        reply.extend_from_slice(&OUR_MAC);
        reply.extend_from_slice(&OUR_IP);
        reply.extend_from_slice(&linux_mac);
        reply.extend_from_slice(&LINUX_IP);
        send(&mut tap, &reply);
        let echo = next_frame(&mut tap, &clock, wait, |f| {
            f.len() >= 42 && f[12..14] == [0x08, 0x00] && f[23] == 1 && f[30..34] == OUR_IP && f[34] == 8
        })
        .await
        .expect("an ICMP echo request to our MAC once our ARP reply arrived");
        assert_eq!(&echo[0..6], &OUR_MAC, "Linux learned our MAC from the reply we sent");

        // Echo reply: swap MACs and addresses, type 0, fresh ICMP checksum.
        let mut pong = echo.clone();
        pong[0..6].copy_from_slice(&echo[6..12]);
        pong[6..12].copy_from_slice(&OUR_MAC);
        pong[26..30].copy_from_slice(&OUR_IP);
        pong[30..34].copy_from_slice(&LINUX_IP);
        let ihl = usize::from(echo[14] & 0x0f) * 4;
        let icmp = 14 + ihl;
        let ip_len = usize::from(u16::from_be_bytes([echo[16], echo[17]]));
        pong[icmp] = 0;
        pong[icmp + 2..icmp + 4].copy_from_slice(&[0, 0]);
        let sum = checksum(&pong[icmp..14 + ip_len]);
        pong[icmp + 2..icmp + 4].copy_from_slice(&sum.to_be_bytes());
        send(&mut tap, &pong);
        let stats = tap.stats();
        assert!(stats.rx_frames >= 2 && stats.tx_frames == 2 && stats.tx_dropped == 0, "{stats:?}");
    });
    let status = ping.wait_with_output().unwrap().status;
    assert!(status.success(), "ping from the Linux side got our echo reply");
}

/// Helper of `two_bridged_tap_devices_pass_the_net_suite`, in its namespace.
fn helper_bridged_pair() {
    // Quiet links: no IPv6 autoconfiguration chatter (the suite skips other traffic anyway).
    std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1").unwrap();
    let mut a = TapNet::open("mgtapa").unwrap();
    let mut b = TapNet::open("mgtapb").unwrap();
    sh(&["ip", "link", "add", "mgbr0", "type", "bridge", "forward_delay", "0"]);
    for dev in ["mgtapa", "mgtapb"] {
        sh(&["ip", "link", "set", dev, "master", "mgbr0"]);
        sh(&["ip", "link", "set", dev, "up"]);
    }
    sh(&["ip", "link", "set", "mgbr0", "up"]);
    // Bridge ports forward once they reach state 3 (forwarding).
    let forwarding = |dev: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{dev}/brport/state")).is_ok_and(|s| s.trim() == "3")
    };
    let started = std::time::Instant::now();
    while !(forwarding("mgtapa") && forwarding("mgtapb")) {
        assert!(started.elapsed().as_secs() < 10, "bridge ports never started forwarding");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    run(|p| async move {
        morgana_testkit::net::check_pair(&mut a, &mut b, &p.clock()).await;
    });
}
