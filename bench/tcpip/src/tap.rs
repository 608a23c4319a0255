//! Linux → unikernel `echo` over TAP, beside Linux → Linux over a veth pair, in one run.
//!
//! Two network namespaces: the client's, with a TAP device whose other side is `echo --net tap:`
//! (`morgana-tcpip`), and a veth pair to a second namespace where the same `echo` binary runs
//! on host sockets (Linux's TCP). The same client (this binary, `client` mode, run in the first
//! namespace) sends a stream to each and reads the echo back while it writes, checking every
//! byte; the figure is the payload rate. Runs alternate, so drift in the machine's speed hits
//! both alike.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use morgana_netns::{Netns, Proc, median};

const TAP_SERVER: &str = "10.78.0.2";
const VETH_SERVER: &str = "10.79.0.2";
const CHUNK: usize = 64 * 1024;

fn pattern() -> Vec<u8> {
    (0..CHUNK).map(|i| (i * 31 + 7) as u8).collect()
}

/// `client ADDR MIB [CAP_SECS]`: send MIB MiB to ADDR, read them back, check them; print the
/// seconds, the bytes that came back, and `capped` if CAP_SECS passed first (then the
/// connection is shut down where it is) or `done`.
pub fn client(args: &[String]) -> Result<(), String> {
    let (addr, mib, cap) = match args {
        [addr, mib] => (addr, mib, None),
        [addr, mib, cap] => {
            let secs: f64 = cap.parse().map_err(|e| format!("{cap}: {e}"))?;
            (addr, mib, Some(Duration::from_secs_f64(secs)))
        }
        _ => return Err("usage: client ADDR:PORT MIB [CAP_SECS]".into()),
    };
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let bytes = mib.parse::<usize>().map_err(|e| format!("{mib}: {e}"))? << 20;
    let data = pattern();
    let started = Instant::now();
    // Bounded, under loss too (Linux alone would retry a lost SYN for two minutes).
    let connect_within = cap.unwrap_or(Duration::from_secs(30)).max(Duration::from_secs(1));
    let stream =
        TcpStream::connect_timeout(&addr, connect_within).map_err(|e| format!("connect {addr}: {e}"))?;
    // Short reads, so that the cap is noticed while nothing arrives.
    stream.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let sending = std::thread::spawn(move || -> std::io::Result<()> {
        let data = pattern();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK);
            writer.write_all(&data[..n])?;
            left -= n;
        }
        writer.shutdown(Shutdown::Write)
    });
    let mut reader = stream;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0usize;
    let mut progress = Instant::now();
    let mut capped = false;
    loop {
        if cap.is_some_and(|cap| started.elapsed() >= cap) {
            capped = true;
            break;
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if progress.elapsed() > Duration::from_secs(30) {
                    return Err(format!("nothing came back for 30 s after {total} bytes"));
                }
                continue;
            }
            Err(e) => return Err(format!("read after {total} bytes: {e}")),
        };
        progress = Instant::now();
        // The echo of a stream of repeated chunks: byte k of the stream is data[k % CHUNK].
        let mut off = 0;
        while off < n {
            let at = (total + off) % CHUNK;
            let len = (CHUNK - at).min(n - off);
            if buf[off..off + len] != data[at..at + len] {
                return Err(format!("the echo differs near byte {}", total + off));
            }
            off += len;
        }
        total += n;
    }
    let secs = started.elapsed().as_secs_f64();
    if capped {
        // Unblock the writer; what it says after that does not matter.
        let _ = reader.shutdown(Shutdown::Both);
        let _ = sending.join();
        println!("{secs} {total} capped");
        return Ok(());
    }
    sending.join().map_err(|_| "the writer panicked")?.map_err(|e| format!("write: {e}"))?;
    if total != bytes {
        return Err(format!("{total} of {bytes} bytes came back"));
    }
    println!("{secs} {total} done");
    Ok(())
}

/// One client's transfer: how long, how much came back, whether the cap ended it.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Seconds from connect to the last byte (or to the cap).
    pub secs: f64,
    /// Bytes echoed back.
    pub bytes: u64,
    /// Whether the time cap ended the run.
    pub capped: bool,
}

impl Run {
    /// The payload rate, MiB/s.
    pub fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.secs
    }
}

/// Start a client in `ns` that sends `mib` MiB through the echo at `addr` (port 7), stopping
/// after `cap` seconds if given.
pub fn start_client(ns: &Netns, addr: &str, mib: usize, cap: Option<f64>) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = ns.command(exe);
    cmd.args(["client", &format!("{addr}:7"), &mib.to_string()]);
    if let Some(cap) = cap {
        cmd.arg(cap.to_string());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| e.to_string())
}

/// What a client started by [`start_client`] reported.
pub fn finish_client(child: Child, addr: &str) -> Result<Run, String> {
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("client to {addr}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let bad = || format!("client output: {text:?}");
    let secs: f64 = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
    let bytes: u64 = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
    let capped = words.next() == Some("capped");
    Ok(Run { secs, bytes, capped })
}

/// One transfer of `mib` MiB through the echo at `addr`, from the client's namespace; MiB/s.
fn measure(ns: &Netns, addr: &str, mib: usize) -> Result<f64, String> {
    Ok(finish_client(start_client(ns, addr, mib, None)?, addr)?.mib_per_s())
}

/// `tap ECHO [MIB] [RUNS]`: the comparison, with the `echo` binary at ECHO (a release build).
pub fn run(args: &[String]) -> Result<(), String> {
    let Some(echo) = args.first() else { return Err("usage: tap ECHO_BINARY [MIB] [RUNS]".into()) };
    let mib: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(128);
    let runs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
    if !morgana_netns::is_root() {
        println!("TAP vs veth: skipped, it needs root (it creates network namespaces and a TAP device)");
        return Ok(());
    }
    if !Path::new(echo).is_file() {
        return Err(format!("{echo}: no such binary (build it with cargo build --release -p echo)"));
    }
    let client = Netns::new("bc");
    let server = Netns::new("bs");
    client.tap("mgtap0", &["10.78.0.1/24"]);
    client.veth("mgva", &["10.79.0.1/24"], &server, "mgvb", &[&format!("{VETH_SERVER}/24")]);
    let mut unikernel: Proc =
        client.spawn(echo, &["--net", "tap:mgtap0", "--ipv4", &format!("{TAP_SERVER}/24"), "--port", "7"]);
    let mut linux: Proc = server.spawn(echo, &["--port", "7"]);
    unikernel.wait_for("listening on", Duration::from_secs(10));
    linux.wait_for("listening on", Duration::from_secs(10));
    println!("echo, {mib} MiB per run, {runs} runs each, the client reading while it writes, wall time");
    // A first transfer each, unmeasured: ARP, slow start, page faults.
    measure(&client, TAP_SERVER, 8)?;
    measure(&client, VETH_SERVER, 8)?;
    let (mut tap, mut veth) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        tap.push(measure(&client, TAP_SERVER, mib)?);
        veth.push(measure(&client, VETH_SERVER, mib)?);
    }
    let (tap_med, veth_med) = (median(&tap), median(&veth));
    let best = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
    let (tap_best, veth_best) = (best(&tap), best(&veth));
    println!("Linux -> echo on morgana-tcpip over TAP:   {tap_best:8.1} MiB/s best, {tap_med:8.1} median");
    println!("Linux -> echo on Linux TCP over veth:      {veth_best:8.1} MiB/s best, {veth_med:8.1} median");
    println!(
        "ratio TAP / veth: {:.3} best, {:.3} median (for scale: no target)",
        tap_best / veth_best,
        tap_med / veth_med
    );
    Ok(())
}
