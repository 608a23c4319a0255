//! `morgana-tcpip` against Linux TCP through the same emulated link (`morgana_netns::Link`):
//! goodput under loss × round-trip time, each way, and fairness at a shared bottleneck.
//!
//! Topology, three namespaces the bench creates and removes:
//!
//! ```text
//!  client ns                          emulator (this process)           unikernel ns
//!  Linux client ── TAP mgca ══ A ─┬─ [A->B: loss, delay, rate] ─┬─ B ══ packet socket on mgcm ── echo --net tap:mgcm (10.80.0.2)
//!  10.80.0.1                      └─ [B->A: loss, delay, rate] ─┘   ║  server ns
//!                                                                   ╚═ TAP mgcb ── Linux: echo on host sockets (10.80.0.3)
//! ```
//!
//! One emulated wire: the emulator switches frames from A to the B port that owns their
//! destination MAC, so both servers sit behind the same impairments, rate limit and queue. The
//! client (this binary in `client` mode, run in the client namespace) writes a stream and
//! reads the echo back while it writes; the figure is the payload rate. "morgana receives":
//! the loss is on client → server (Linux's TCP sends the data the loss hits, morgana receives
//! it; its echo returns over a loss-free path); "morgana sends": the loss is on server →
//! client (morgana's echo is what the loss hits). The delay is half the round trip each way.
//! The Linux server runs once per congestion controller in `--linux-cc` (default CUBIC, which
//! morgana-tcpip runs too and Linux defaults to, and BBR, which some hosts, this one among them,
//! choose, and which does not read random loss as congestion); the Linux client always sends
//! with CUBIC. Each run group (morgana, then Linux per controller) gets the same seed. A run that is not done by the cap stops
//! there, and the rate is what came back until then.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use morgana_netns::{Impairment, Link, LinkConfig, Netns, Port, Proc, median};

use crate::tap::{Run, finish_client, start_client};

const MORGANA: &str = "10.80.0.2";
const LINUX: &str = "10.80.0.3";
const SUBNET: &str = "10.80.0.0/24";
const LOSSES: [f64; 4] = [0.0, 0.01, 0.05, 0.10];
const RTTS_MS: [f64; 3] = [0.2, 20.0, 100.0];
/// The fairness bottleneck: 100 Mbit/s, 20 ms round trip, a queue of one bandwidth-delay product.
const BOTTLENECK_BITS: u64 = 100_000_000;
const BOTTLENECK_RTT_MS: f64 = 20.0;

struct Options {
    echo: String,
    mib: usize,
    runs: usize,
    cap: f64,
    fair_secs: f64,
    seed: u64,
    losses: Vec<f64>,
    rtts_ms: Vec<f64>,
    ways: Vec<Way>,
    fairness: bool,
    server_log: Option<String>,
    linux_cc: Vec<String>,
    pcap: Option<String>,
}

/// A comma-separated list of non-negative numbers.
fn numbers(name: &str, v: Option<&String>) -> Result<Vec<f64>, String> {
    let v = v.ok_or_else(|| format!("{name}: a comma-separated list of numbers is required"))?;
    v.split(',')
        .map(|n| n.trim().parse::<f64>().ok().filter(|n| *n >= 0.0))
        .collect::<Option<Vec<_>>>()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| format!("{name}: expected comma-separated non-negative numbers, got {v}"))
}

fn parse(args: &[String]) -> Result<Options, String> {
    let usage = "usage: link ECHO_BINARY [--quick] [--mib N] [--runs N] [--cap-secs S] [--fair-secs S] [--seed N] \
                 [--loss P,P..] [--rtt-ms R,R..] [--way receives|sends] [--no-fairness] [--server-log LEVEL] \
                 [--linux-cc CC,CC..] [--pcap FILE]";
    let Some(echo) = args.first() else { return Err(usage.into()) };
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Options {
        echo: echo.clone(),
        mib: if quick { 8 } else { 64 },
        runs: if quick { 3 } else { 5 },
        cap: if quick { 5.0 } else { 20.0 },
        fair_secs: if quick { 5.0 } else { 20.0 },
        seed: 1,
        losses: LOSSES.to_vec(),
        rtts_ms: RTTS_MS.to_vec(),
        ways: vec![Way::MorganaReceives, Way::MorganaSends],
        fairness: true,
        server_log: None,
        linux_cc: vec!["cubic".into(), "bbr".into()],
        pcap: None,
    };
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<f64, String> {
            let v = it.next().ok_or_else(|| format!("{name}: a number is required"))?;
            v.parse::<f64>()
                .ok()
                .filter(|n| *n > 0.0)
                .ok_or_else(|| format!("{name}: expected a positive number, got {v}"))
        };
        match a.as_str() {
            "--quick" => {}
            "--mib" => o.mib = num(a)? as usize,
            "--runs" => o.runs = num(a)? as usize,
            "--cap-secs" => o.cap = num(a)?,
            "--fair-secs" => o.fair_secs = num(a)?,
            "--seed" => o.seed = num(a)? as u64,
            // Fractions (0.01 = 1 %) and round trips in milliseconds: a part of the matrix.
            "--loss" => o.losses = numbers(a, it.next())?,
            "--rtt-ms" => o.rtts_ms = numbers(a, it.next())?,
            "--way" => {
                o.ways = match it.next().map(String::as_str) {
                    Some("receives") => vec![Way::MorganaReceives],
                    Some("sends") => vec![Way::MorganaSends],
                    v => return Err(format!("--way: receives or sends, got {v:?}")),
                }
            }
            "--no-fairness" => o.fairness = false,
            "--pcap" => o.pcap = Some(it.next().ok_or("--pcap: a file name is required")?.clone()),
            // The Linux server's congestion controllers, each a column; the first is also the
            // fairness peer.
            "--linux-cc" => {
                o.linux_cc = it
                    .next()
                    .ok_or("--linux-cc: a comma-separated list is required (e.g. cubic,bbr)")?
                    .split(',')
                    .map(String::from)
                    .collect()
            }
            // The unikernel's log level; its log goes to link-morgana.log in the current directory.
            "--server-log" => {
                o.server_log = Some(it.next().ok_or("--server-log: a level is required")?.clone())
            }
            other => return Err(format!("unknown argument {other}; {usage}")),
        }
    }
    if o.mib == 0 || o.runs == 0 {
        return Err(format!("--mib and --runs must be at least 1; {usage}"));
    }
    Ok(o)
}

/// The namespaces, the emulator between them and the two echo servers; removed on drop.
struct Testbed {
    // Fields drop in order: the capture, the emulator, the servers, then the namespaces.
    /// `--pcap`: tcpdump on the client's TAP (both servers' traffic), until the bench ends.
    _capture: Option<Proc>,
    link: Link,
    _servers: (Proc, Proc),
    client: Netns,
    linux: Netns,
    uni: Netns,
    /// `--server-log`: the unikernel's output is written here when the bench ends.
    log_to: Option<&'static str>,
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Some(path) = self.log_to {
            let lines = self._servers.0.log().join("\n");
            match std::fs::write(path, lines) {
                Ok(()) => println!("the unikernel's log: {path}"),
                Err(e) => eprintln!("{path}: {e}"),
            }
        }
    }
}

impl Testbed {
    /// Frames the Linux sides of the three TAPs dropped on their way to the device's reader
    /// (its queue full): losses the emulator did not decide and cannot count.
    fn tap_drops(&self) -> u64 {
        self.tap_drops_by_device().iter().map(|(_, n)| n).sum()
    }

    /// New connections to the Linux server use congestion controller `cc`: a route attribute
    /// (a namespace's own default may only be one the host allows unprivileged sockets).
    fn linux_cc(&self, cc: &str) {
        self.linux.run(&["ip", "route", "replace", SUBNET, "dev", "mgcb", "src", LINUX, "congctl", cc]);
    }

    fn tap_drops_by_device(&self) -> [(&'static str, u64); 3] {
        [(&self.client, "mgca"), (&self.linux, "mgcb"), (&self.uni, "mgcm")].map(|(ns, dev)| {
            let path = format!("/sys/class/net/{dev}/statistics/tx_dropped");
            (dev, ns.run(&["cat", &path]).trim().parse::<u64>().unwrap_or(0))
        })
    }
}

fn testbed(echo: &str, seed: u64, log: Option<&str>, pcap: Option<&str>) -> Testbed {
    let client = Netns::new("lc");
    let linux = Netns::new("ll");
    let uni = Netns::new("lm");
    for ns in [&client, &linux, &uni] {
        ns.ipv4_only();
    }
    // The client sends with CUBIC (what Linux, Windows and macOS default to) whatever this
    // host's default is, so the rows where morgana receives compare receivers under one sender.
    client.tap("mgca", &["10.80.0.1/24"]);
    client.run(&["ip", "route", "replace", SUBNET, "dev", "mgca", "src", "10.80.0.1", "congctl", "cubic"]);
    linux.tap("mgcb", &[&format!("{LINUX}/24")]);
    // No address: the kernel side of the unikernel's TAP only carries the emulator's socket.
    uni.tap("mgcm", &[]);
    // Room in each TAP's queue towards its reader (the emulator, or the unikernel) for the
    // moments when that reader is off the CPU: drops there are not the emulator's to decide.
    for (ns, dev) in [(&client, "mgca"), (&linux, "mgcb"), (&uni, "mgcm")] {
        ns.run(&["ip", "link", "set", "dev", dev, "txqueuelen", "8192"]);
    }
    let link = Link::start(
        Port::tap(&client, "mgca"),
        vec![Port::packet(&uni, "mgcm"), Port::tap(&linux, "mgcb")],
        LinkConfig::new(seed),
    );
    // With the TAP's offloads, as a user runs it: the emulator's packet socket finishes the
    // checksums morgana leaves to the kernel and cuts its super-frames into wire segments
    // before the loss dice, as the Linux server's TAP does in the kernel.
    let ipv4 = format!("{MORGANA}/24");
    let mut args = vec!["--net", "tap:mgcm", "--ipv4", &ipv4, "--port", "7"];
    if let Some(level) = log {
        args.extend(["--log", level]);
    }
    let mut morgana = uni.spawn(echo, &args);
    let mut host = linux.spawn(echo, &["--port", "7"]);
    morgana.wait_for("listening on", Duration::from_secs(10));
    host.wait_for("listening on", Duration::from_secs(10));
    let log_to = log.map(|_| "link-morgana.log");
    // Headers only; written packet by packet (-U) so that nothing is lost when it is killed.
    let _capture = pcap.map(|file| {
        let mut p = client.spawn("tcpdump", &["-i", "mgca", "-s", "128", "-U", "-Z", "root", "-w", file]);
        p.wait_for("listening on", Duration::from_secs(10));
        p
    });
    Testbed { link, _servers: (morgana, host), client, linux, uni, log_to, _capture }
}

fn one(bed: &Testbed, addr: &str, mib: usize, cap: f64) -> Result<Run, String> {
    finish_client(start_client(&bed.client, addr, mib, Some(cap))?, addr)
}

/// Median rate of `runs` (NaN if none), with how many of them the cap ended.
fn summary(runs: &[Run]) -> (f64, usize) {
    let rates: Vec<f64> = runs.iter().map(Run::mib_per_s).collect();
    let rate = if rates.is_empty() { f64::NAN } else { median(&rates) };
    (rate, runs.iter().filter(|r| r.capped).count())
}

/// The table's cell for the runs of one side, `failed` more of which did not complete.
fn cell(runs: &[Run], failed: usize, cap: f64) -> String {
    let (rate, capped) = summary(runs);
    let mut notes = Vec::new();
    if capped > 0 {
        notes.push(format!("{capped}/{} capped after {cap:.0} s", runs.len() + failed));
    }
    if failed > 0 {
        notes.push(format!("{failed} failed"));
    }
    if notes.is_empty() { format!("{rate:.2}") } else { format!("{rate:.2} ({})", notes.join(", ")) }
}

#[derive(Clone, Copy, PartialEq)]
enum Way {
    MorganaReceives,
    MorganaSends,
}

fn point(way: Way, rtt_ms: f64, loss: f64, seed: u64) -> LinkConfig {
    let clean = Impairment::default().delay(Duration::from_secs_f64(rtt_ms / 2e3));
    let lossy = clean.clone().loss(loss);
    let config = LinkConfig::new(seed);
    match way {
        Way::MorganaReceives => config.a_to_b(lossy).b_to_a(clean),
        Way::MorganaSends => config.a_to_b(clean).b_to_a(lossy),
    }
}

fn jain(x: &[f64]) -> f64 {
    let sum: f64 = x.iter().sum();
    let squares: f64 = x.iter().map(|v| v * v).sum();
    if squares == 0.0 { 0.0 } else { sum * sum / (x.len() as f64 * squares) }
}

/// Flows to `addrs` at once through the bottleneck for `secs`; each flow's MiB/s.
fn concurrent(bed: &Testbed, addrs: &[&str], secs: f64, seed: u64) -> Result<Vec<f64>, String> {
    let imp = Impairment::default()
        .delay(Duration::from_secs_f64(BOTTLENECK_RTT_MS / 2e3))
        .rate(BOTTLENECK_BITS, 0)
        .queue((BOTTLENECK_BITS as f64 / 8.0 * BOTTLENECK_RTT_MS / 1e3) as usize);
    bed.link.set(LinkConfig::new(seed).both(imp));
    // More than the bottleneck can carry in `secs`: every flow runs until the cap.
    let mib = (secs * 16.0) as usize + 16;
    let children =
        addrs.iter().map(|a| start_client(&bed.client, a, mib, Some(secs))).collect::<Result<Vec<_>, _>>()?;
    children.into_iter().zip(addrs).map(|(c, a)| finish_client(c, a).map(|r| r.mib_per_s())).collect()
}

fn flows(x: &[f64]) -> String {
    let mut s = String::new();
    for v in x {
        let _ = write!(s, "{v:.2} ");
    }
    s.trim_end().to_string()
}

/// `link ECHO [--quick] [--mib N] [--runs N] [--cap-secs S] [--fair-secs S] [--seed N]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    if !morgana_netns::is_root() {
        println!("emulated link: skipped, it needs root (it creates network namespaces and TAP devices)");
        return Ok(());
    }
    if !Path::new(&o.echo).is_file() {
        return Err(format!("{}: no such binary (build it with cargo build --release -p echo)", o.echo));
    }
    let available =
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control").unwrap_or_default();
    let mut o = o;
    o.linux_cc.retain(|cc| {
        let there = available.split_whitespace().any(|a| a == cc)
            || std::process::Command::new("modprobe").arg(format!("tcp_{cc}")).status().is_ok_and(|s| s.success());
        if !there {
            println!("Linux congestion control {cc}: not in this kernel (modprobe tcp_{cc} failed), its column is left out");
        }
        there
    });
    if o.linux_cc.is_empty() {
        return Err("--linux-cc: none of the congestion controllers asked for is in this kernel".into());
    }
    let started = Instant::now();
    let bed = testbed(&o.echo, o.seed, o.server_log.as_deref(), o.pcap.as_deref());
    // ARP, page faults, the first connection: not measured.
    bed.link.set(LinkConfig::new(o.seed));
    one(&bed, MORGANA, 1, 30.0)?;
    one(&bed, LINUX, 1, 30.0)?;
    println!(
        "echo through one emulated link (userspace, morgana-netns::Link), morgana-tcpip (echo --net tap:) vs Linux TCP \
         (the same echo on host sockets)\neach point: {} runs of {} MiB per side, alternating, each capped at {} s \
         (then: the rate until the cap); median MiB/s of payload; delay = RTT/2 each way; seeds {}..; wall time",
        o.runs, o.mib, o.cap, o.seed
    );
    println!(
        "(measured loss: what the emulator's dice dropped in the lossy direction; other drops: frames lost \
         otherwise, both ways: the emulator's queue or an egress device full, or the Linux side of a TAP \
         dropping because its reader, the emulator or the unikernel, fell behind)"
    );
    let ccs = o.linux_cc.clone();
    let mut header =
        String::from("| direction | RTT ms | loss | measured loss | other drops | morgana-tcpip MiB/s |");
    let mut rule = String::from("|---|---|---|---|---|---|");
    for cc in &ccs {
        let _ = write!(header, " Linux {cc} MiB/s | ratio to {cc} |");
        rule.push_str("---|---|");
    }
    println!("{header}\n{rule}");
    let mut seed = o.seed;
    for &way in &o.ways {
        for &rtt in &o.rtts_ms {
            for &loss in &o.losses {
                // Side 0 is morgana; side 1 + i is Linux with congestion controller `ccs[i]`.
                let mut runs: Vec<Vec<Run>> = vec![Vec::new(); 1 + ccs.len()];
                let mut failed = vec![0; 1 + ccs.len()];
                let (mut lost, mut segments, mut queued_out) = (0, 0, 0);
                let drops_before = bed.tap_drops();
                for _ in 0..o.runs {
                    seed += 1;
                    for side in 0..runs.len() {
                        let addr = if side == 0 { MORGANA } else { LINUX };
                        if side > 0 {
                            bed.linux_cc(&ccs[side - 1]);
                        }
                        bed.link.set(point(way, rtt, loss, seed));
                        let run = one(&bed, addr, o.mib, o.cap);
                        let s = bed.link.stats();
                        let s = if way == Way::MorganaReceives { s.a_to_b } else { s.b_to_a };
                        let both = bed.link.stats();
                        queued_out += [both.a_to_b, both.b_to_a]
                            .iter()
                            .map(|d| d.queue_dropped + d.egress_dropped)
                            .sum::<u64>();
                        lost += s.lost;
                        segments += s.segments;
                        match run {
                            Ok(run) => runs[side].push(run),
                            // Counted in the table; the bench goes on with the next run.
                            Err(e) => {
                                eprintln!("  run failed: {e}");
                                failed[side] += 1;
                            }
                        }
                    }
                }
                let other = bed.tap_drops().saturating_sub(drops_before) + queued_out;
                let (m, _) = summary(&runs[0]);
                let direction = match way {
                    Way::MorganaReceives => "morgana receives (loss client->server)",
                    Way::MorganaSends => "morgana sends (loss server->client)",
                };
                let mut row = format!(
                    "| {direction} | {rtt} | {:.0}% | {:.2}% | {other} | {} |",
                    loss * 100.0,
                    lost as f64 * 100.0 / segments.max(1) as f64,
                    cell(&runs[0], failed[0], o.cap),
                );
                for side in 1..runs.len() {
                    let (l, _) = summary(&runs[side]);
                    let _ = write!(row, " {} | {:.3} |", cell(&runs[side], failed[side], o.cap), m / l);
                }
                println!("{row}");
            }
        }
    }
    // Fairness against the first controller (the one morgana-tcpip runs too, by default).
    bed.linux_cc(&ccs[0]);
    if !o.fairness {
        println!("emulated-link bench: {:.0} s", started.elapsed().as_secs_f64());
        return Ok(());
    }
    println!(
        "\nfairness: {} Mbit/s bottleneck both ways (token bucket, queue of one BDP), RTT {BOTTLENECK_RTT_MS} ms, no \
         loss, flows running together for {} s; MiB/s per flow, Jain's index (1 = equal shares)",
        BOTTLENECK_BITS / 1_000_000,
        o.fair_secs
    );
    for (what, addrs) in [
        ("4 morgana-tcpip flows", &[MORGANA; 4][..]),
        ("4 Linux TCP flows (reference)", &[LINUX; 4][..]),
        ("1 morgana-tcpip + 1 Linux TCP", &[MORGANA, LINUX][..]),
    ] {
        seed += 1;
        match concurrent(&bed, addrs, o.fair_secs, seed) {
            Ok(x) => {
                let total: f64 = x.iter().sum();
                println!("{what}: {} MiB/s (sum {total:.2}), Jain's index {:.3}", flows(&x), jain(&x));
            }
            Err(e) => println!("{what}: failed: {e}"),
        }
    }
    println!("link counters of the last fairness run:\n{}", bed.link.stats());
    let [(a, na), (b, nb), (m, nm)] = bed.tap_drops_by_device();
    println!(
        "TAP drops outside the emulator, whole bench: {na} on {a} (to the emulator from the client), {nb} on {b} (to \
         the emulator from the Linux server), {nm} on {m} (to the unikernel)"
    );
    println!("emulated-link bench: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
