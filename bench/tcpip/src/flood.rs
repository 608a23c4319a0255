//! `morgana-tcpip` against Linux TCP under a flood of spoofed SYNs, and the memory an idle
//! connection costs each of them.
//!
//! Two namespaces the bench creates and removes: in `client`, a TAP to `echo --net tap:`
//! (morgana-tcpip, 10.85.0.2) and a veth to `server`, where the same `echo` runs on Linux TCP
//! (host sockets, 10.86.0.2; SYN cookies on, Linux's default). For each server, hping3 sends
//! SYNs from random spoofed sources at a fixed rate while a client in `client` opens
//! connection after connection (connect, one byte echoed, close) for a few seconds: the figure
//! is connections completed per second, with and without the flood. Nothing leaves the
//! namespaces: they have no route out, so the replies to spoofed sources go nowhere.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use morgana_netns::{Netns, Proc};

const MORGANA: &str = "10.85.0.2";
const LINUX: &str = "10.86.0.2";

/// Connections completed per second by one client for `secs` (connect, 1 byte echoed, close),
/// each given at most 1 s.
fn connections_per_second(ns: &Netns, addr: &str, secs: f64) -> f64 {
    let addr: SocketAddr = format!("{addr}:7").parse().expect("an address");
    ns.enter(|| {
        let start = Instant::now();
        let mut done = 0u64;
        while start.elapsed().as_secs_f64() < secs {
            let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let mut b = [0u8; 1];
            if s.write_all(b"x").is_ok() && s.read_exact(&mut b).is_ok() {
                done += 1;
            }
        }
        done as f64 / start.elapsed().as_secs_f64()
    })
}

/// hping3 from `ns` at `addr`, one SYN every `gap_us` µs from random sources, for `secs`;
/// stopped by SIGINT, after which it prints how many it sent.
fn flood(ns: &Netns, addr: &str, gap_us: u32, secs: u32) -> std::process::Child {
    ns.command("timeout")
        .args(["-s", "INT", &secs.to_string(), "hping3", "-S", "-p", "7", "-i", &format!("u{gap_us}")])
        .args(["--rand-source", "-q", addr])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hping3 (apt-get install hping3)")
}

fn sent(child: std::process::Child) -> u64 {
    let out = child.wait_with_output().expect("hping3 ran");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.split_once(" packets transmitted").and_then(|(n, _)| n.trim().parse().ok()))
        .unwrap_or(0)
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resident memory per idle connection, in KiB: `n` connections opened to `addr` and held.
fn idle_cost(ns: &Netns, server: &Proc, addr: &str, n: usize) -> f64 {
    let addr: SocketAddr = format!("{addr}:7").parse().expect("an address");
    let pid = server.id();
    let before = rss_kib(pid);
    ns.enter(move || {
        let held: Vec<TcpStream> =
            (0..n).filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()).collect();
        std::thread::sleep(Duration::from_millis(500));
        let after = rss_kib(pid);
        (after.saturating_sub(before)) as f64 / held.len().max(1) as f64
    })
}

/// `flood ECHO_BINARY [--secs S] [--rate N]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let echo = args.first().ok_or("usage: flood ECHO_BINARY [--secs S]")?;
    let secs: f64 =
        args.iter().position(|a| a == "--secs").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(8.0);
    if Command::new("hping3").arg("--version").output().is_err() {
        println!("SYN flood: skipped, hping3 is missing (apt-get install hping3)");
        return Ok(());
    }
    let client = Netns::new("flc");
    let server = Netns::new("fls");
    client.tap("mgfl0", &["10.85.0.1/24"]);
    client.veth("mgfl1", &["10.86.0.1/24"], &server, "mgfl2", &[&format!("{LINUX}/24")]);
    let mut morgana =
        client.spawn(echo, &["--net", "tap:mgfl0", "--ipv4", &format!("{MORGANA}/24"), "--port", "7"]);
    let mut linux = server.spawn(echo, &["--port", "7"]);
    morgana.wait_for("listening on", Duration::from_secs(10));
    linux.wait_for("listening on", Duration::from_secs(10));

    // hping3 -i u40: about 12,000 SYNs a second here.
    let gap_us = 40;
    println!(
        "SYN flood: hping3 -S --rand-source -i u{gap_us} against echo; one client opening connections (connect, 1 byte \
         echoed, close) for {secs:.0} s; connections per second"
    );
    println!("| server | no flood | during the flood | flood rate (SYNs/s) |");
    println!("|---|---|---|---|");
    for (name, addr) in [
        ("morgana-tcpip (echo --net tap:)", MORGANA),
        ("Linux TCP, SYN cookies (echo on host sockets)", LINUX),
    ] {
        let calm = connections_per_second(&client, addr, secs);
        let hping = flood(&client, addr, gap_us, secs.ceil() as u32 + 1);
        std::thread::sleep(Duration::from_millis(500));
        let stormy = connections_per_second(&client, addr, secs);
        let rate = sent(hping) as f64 / (secs.ceil() + 1.0);
        println!("| {name} | {calm:.0} | {stormy:.0} | {rate:.0} |");
        std::thread::sleep(Duration::from_secs(1));
    }
    println!();
    let n = 1000;
    let m = idle_cost(&client, &morgana, MORGANA, n);
    let l = idle_cost(&client, &linux, LINUX, n);
    println!(
        "idle connections: {n} held open; resident memory of the echo process per connection: morgana-tcpip {m:.1} KiB \
         (buffers included), Linux {l:.1} KiB (the kernel's socket buffers are not in the process)"
    );
    Ok(())
}
