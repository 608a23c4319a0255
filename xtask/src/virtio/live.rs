//! QEMU tests that talk to a running guest: `echo` and `www` through the forwarded port,
//! `http-fetch` against `openssl s_server` on the host, and `echo`, `ping` and `dns` through a TAP
//! device in a network namespace the test creates (`dns` against `dnsmasq` there), each started
//! with the command a user types (`cargo xtask run APP --target virtio ...`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::RemoveOnDrop;

/// A guest started through `cargo xtask run` (this binary), or a peer process, in its own
/// process group, so that dropping it stops QEMU (or the peer) too; what it prints is collected.
pub struct Guest {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Guest {
    /// Run this binary with `args`, prefixed by `wrap` (e.g. `ip netns exec NS`).
    pub fn start(wrap: &[&str], args: &[String]) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = match wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.args(args);
        Self::spawn(cmd)
    }

    /// Run `cmd` (QEMU itself, or something that starts it), capturing what it prints.
    pub fn spawn(mut cmd: Command) -> Result<Self, String> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start the guest: {e}"))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for out in [
            child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>),
            child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    lines
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(line.trim_end_matches('\r').to_string());
                }
            }));
        }
        Ok(Self { child, lines, readers })
    }

    /// Everything printed so far (guest console and xtask's own lines).
    pub fn text(&self) -> String {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|l| format!("  | {l}\n")).collect()
    }

    /// The first line containing `needle`, waiting up to `timeout` for it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) =
                self.lines.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|l| l.contains(needle))
            {
                return Ok(l.clone());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                if let Some(l) =
                    self.lines.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|l| l.contains(needle))
                {
                    return Ok(l.clone());
                }
                return Err(format!(
                    "the guest exited ({status}) without printing '{needle}'\n{}",
                    self.text()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!("no '{needle}' after {timeout:?}\n{}", self.text()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Guest {
    /// Wait up to `timeout` for the guest (and `cargo xtask run`) to exit; its status.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                // Everything it printed: the readers end when the pipes do (a few seconds at
                // most, in case something it started still holds them).
                let until = Instant::now() + Duration::from_secs(5);
                while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!("still running after {timeout:?}\n{}", self.text()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the guest to exit with status 0.
    pub fn succeeds(&mut self, timeout: Duration) -> Result<(), String> {
        let status = self.wait(timeout)?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("the guest exited with {status}\n{}", self.text()))
        }
    }
}

/// A host process killed on drop (a peer the guest talks to).
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        // The whole group: xtask and the QEMU it started (the shell's own `kill`, which takes a
        // negative process-group id; procps may not be installed). Then xtask itself, whatever
        // happened, so that waiting for it cannot hang.
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -9 -{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A host TCP port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// `n` bytes that are not a repeating pattern (xorshift from a seed).
fn payload(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Send `data` to `port` on loopback, half-close, read everything back.
fn echo_through(port: u16, data: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let body = data.to_vec();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        w.write_all(&body)?;
        w.shutdown(Shutdown::Write)
    });
    let mut back = Vec::new();
    let read = (&s).read_to_end(&mut back);
    let wrote = writer.join().map_err(|_| "the writer panicked".to_string())?;
    wrote.map_err(|e| format!("sending: {e}"))?;
    read.map_err(|e| format!("reading back after {} bytes: {e}", back.len()))?;
    Ok(back)
}

fn xtask_run(app: &str, opts: &[String], app_args: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["run", app, "--target", "virtio"].map(String::from).into();
    a.extend(opts.iter().cloned());
    if !app_args.is_empty() {
        a.push("--".into());
        a.extend(app_args.iter().map(|s| s.to_string()));
    }
    a
}

/// Accelerator options for `cargo xtask run`: what the caller chose.
fn accel(kvm: bool) -> Vec<String> {
    vec!["--accel".into(), if kvm { "kvm" } else { "tcg" }.into()]
}

/// `echo` returns a 1 MiB payload byte-exact through the forwarded port.
fn echo_forwarded(kvm: bool) -> Result<(), String> {
    let port = free_port()?;
    let mut opts = accel(kvm);
    opts.extend(["--forward".into(), format!("{port}:7")]);
    let mut g = Guest::start(&[], &xtask_run("echo", &opts, &[]))?;
    let boot = Duration::from_secs(60);
    g.wait_for(&format!("127.0.0.1:{port} forwards to the guest's TCP port 7"), boot)?;
    g.wait_for("echo: listening on ", boot)?;
    g.wait_for("DHCP lease: 10.0.2.15/24 via 10.0.2.2", boot)?;
    let data = payload(1 << 20, 7);
    let back =
        echo_through(port, &data, Duration::from_secs(120)).map_err(|e| format!("{e}\n{}", g.text()))?;
    if back != data {
        let at = back.iter().zip(&data).position(|(a, b)| a != b).unwrap_or(back.len().min(data.len()));
        return Err(format!(
            "{} bytes back for {}, first difference at byte {at}\n{}",
            back.len(),
            data.len(),
            g.text()
        ));
    }
    g.wait_for("closed: 1048576 bytes echoed", Duration::from_secs(10))?;
    Ok(())
}

/// `www` answers `curl --cacert <dev CA>` over TLS 1.3 with the site's index page.
fn www_curl(root: &Path, kvm: bool) -> Result<(), String> {
    let port = free_port()?;
    let mut opts = accel(kvm);
    opts.extend(["--forward".into(), format!("{port}:443")]);
    let mut g = Guest::start(&[], &xtask_run("www", &opts, &[]))?;
    let boot = Duration::from_secs(90);
    g.wait_for(&format!("serving https://127.0.0.1:{port}/"), boot)?;
    g.wait_for("INFO  www: serving https://", boot)?;
    g.wait_for("DHCP lease: 10.0.2.15/24", boot)?;
    let body = std::env::temp_dir().join(format!("morgana-www-index-{}.html", std::process::id()));
    let _cleanup = RemoveOnDrop(body.clone());
    let ca = root.join("stacks/tls/dev-certs/ca.pem");
    let out = Command::new("curl")
        .args(["-sS", "-v", "--tlsv1.3", "--max-time", "120", "--cacert"])
        .arg(&ca)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}", &format!("https://127.0.0.1:{port}/")])
        .output()
        .map_err(|e| format!("curl: {e} (install it: apt-get install curl)"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || code != "200" {
        return Err(format!("curl exited {}, HTTP {code}: {stderr}\n{}", out.status, g.text()));
    }
    if !stderr.contains("SSL connection using TLSv1.3") {
        return Err(format!("not TLS 1.3: {stderr}"));
    }
    let want = std::fs::read(root.join("apps/www/htdocs/index.html")).map_err(|e| e.to_string())?;
    let got = std::fs::read(&body).map_err(|e| e.to_string())?;
    if got != want {
        return Err(format!(
            "the body ({} bytes) is not htdocs/index.html ({} bytes)",
            got.len(),
            want.len()
        ));
    }
    Ok(())
}

/// `www --mem 8M` under TCG (a handshake is arithmetic: where KVM emulates every instruction it
/// takes seconds) takes 200 TLS handshakes at once from `curl --parallel`: far more than its
/// heap holds at once (the TLS budget is logged at start), so most wait in the listen backlog
/// (or are retried by curl after a reset once the listener's pool is full). All or nearly all
/// complete, the guest does not crash, and it serves a page afterwards.
fn www_tls_flood_on_a_small_heap(root: &Path) -> Result<(), String> {
    const CLIENTS: usize = 200;
    let port = free_port()?;
    let opts = ["--accel", "tcg", "--mem", "8M", "--forward", &format!("{port}:443")].map(String::from);
    let mut g = Guest::start(&[], &xtask_run("www", &opts, &["--stats-interval", "2"]))?;
    let boot = Duration::from_secs(90);
    g.wait_for("INFO  www: serving https://", boot)?;
    g.wait_for("DHCP lease: 10.0.2.15/24", boot)?;
    let budget = g.wait_for("TLS connections at once", Duration::ZERO)?;
    let ca = root.join("stacks/tls/dev-certs/ca.pem");
    let url = format!("https://localhost:{port}/");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let mut curl = Command::new("curl");
    curl.args(["--parallel", "--parallel-immediate", "--parallel-max", &CLIENTS.to_string()]);
    for i in 0..CLIENTS {
        // One connection each, a fresh handshake; `Connection: close`, else curl keeps each
        // connection for reuse and `www` holds it (and its share of the budget) until its idle
        // timeout. A connection the guest's stack resets (its listen pool full) is retried, as
        // a browser would.
        if i > 0 {
            curl.arg("--next");
        }
        curl.args(["-sS", "-H", "Connection: close", "--max-time", "240", "--retry", "3"])
            .args(["--retry-all-errors", "--retry-delay", "1", "--resolve", &resolve, "--cacert"])
            .arg(&ca)
            .args(["-o", "/dev/null", "-w", "%{http_code}\n", &url]);
    }
    let started = Instant::now();
    let out = curl.output().map_err(|e| format!("curl: {e} (install it: apt-get install curl)"))?;
    let took = started.elapsed();
    let codes = String::from_utf8_lossy(&out.stdout);
    let ok = codes.lines().filter(|l| *l == "200").count();
    println!(
        "        {ok} of {CLIENTS} handshakes and GETs answered in {:.1} s; {}",
        took.as_secs_f64(),
        budget.split("www: ").last().unwrap_or(&budget)
    );
    if ok < CLIENTS * 95 / 100 {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first: String = stderr.lines().take(5).collect::<Vec<_>>().join("\n");
        return Err(format!("only {ok} of {CLIENTS} answered 200: {first}\n{}", g.text()));
    }
    for crash in ["panicked", "out of memory", "CPU exception"] {
        if let Ok(l) = g.wait_for(crash, Duration::ZERO) {
            return Err(format!("the guest crashed: {l}\n{}", g.text()));
        }
    }
    let after = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--resolve", &resolve, "--cacert"])
        .arg(&ca)
        .args(["-o", "/dev/null", "-w", "%{http_code}", &url])
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if after.stdout != b"200" {
        return Err(format!(
            "after the flood: HTTP {} ({})\n{}",
            String::from_utf8_lossy(&after.stdout),
            String::from_utf8_lossy(&after.stderr),
            g.text()
        ));
    }
    // The counters line says the same: every handshake done, the budget reached, nothing failed.
    let counter = |line: &str, name: &str| -> Option<u64> {
        line.split(' ').find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let lines = g.lines.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let done = lines.iter().rev().find(|l| l.contains("stats: ")).cloned();
        if let Some(l) = done.filter(|l| counter(l, "tls.handshakes").is_some_and(|n| n as usize > ok)) {
            break l;
        }
        if Instant::now() >= deadline {
            return Err(format!("no stats line counting {} handshakes\n{}", ok + 1, g.text()));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("        {}", stats.split("run: ").last().unwrap_or(&stats));
    if counter(&stats, "tls.budget_waits").unwrap_or(0) == 0 {
        return Err(format!("the flood never reached the TLS budget: {stats}"));
    }
    Ok(())
}

/// SHA-256 of `file` in hex, by `sha256sum` (coreutils), as a user would check a download.
fn sha256_hex(file: &Path) -> Result<String, String> {
    let out = Command::new("sha256sum").arg(file).output().map_err(|e| format!("sha256sum: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().next().map(str::to_string).ok_or_else(|| format!("sha256sum printed {text:?}"))
}

/// `openssl s_server -WWW` with the development certificate, serving the files in `dir` on a
/// free loopback port; retried on another port if one was taken between choosing and binding.
fn s_server(root: &Path, dir: &Path) -> Result<(Peer, u16), String> {
    let certs = root.join("stacks/tls/dev-certs");
    for _ in 0..5 {
        let port = free_port()?;
        let mut cmd = Command::new("openssl");
        cmd.args(["s_server", "-quiet", "-WWW", "-accept", &format!("127.0.0.1:{port}"), "-cert"])
            .arg(certs.join("server.pem"))
            .arg("-key")
            .arg(certs.join("server.key"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut server =
            Peer(cmd.spawn().map_err(|e| format!("openssl: {e} (install it: apt-get install openssl)"))?);
        // It listens once it has read its key; it exits if the port is taken.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if server.0.try_wait().map_err(|e| e.to_string())?.is_some() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok((server, port));
            }
            if Instant::now() >= deadline {
                return Err(format!("openssl s_server is not listening on 127.0.0.1:{port} after 10 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Err("openssl s_server exited at start five times (ports taken?)".into())
}

/// `http-fetch` in the guest gets a file over TLS from `openssl s_server` on the host (reached
/// through QEMU's 10.0.2.2, pinned to the certificate's name `localhost` by `--resolve`),
/// trusting the development CA (`--dev-ca`): the status and the body's SHA-256 match. Then an
/// `https` URL without a CA to trust is refused before any connection, in one line.
fn http_fetch_openssl(root: &Path, kvm: bool) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("morgana-fetch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    struct RemoveDir(PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = RemoveDir(dir.clone());
    let file = dir.join("payload.bin");
    std::fs::write(&file, payload(100_000, 5)).map_err(|e| e.to_string())?;
    let want = sha256_hex(&file)?;
    let (_server, port) = s_server(root, &dir)?;
    let url = format!("https://localhost:{port}/payload.bin");
    let args = ["--url", url.as_str(), "--dev-ca", "--resolve", "localhost:10.0.2.2"];
    // A TLS client handshake is arithmetic: where KVM is PVM (every guest instruction emulated)
    // it takes 14 s or more on a busy host, and TCG does it in a fraction of one.
    let kvm = kvm && !super::kvm_is_software();
    let mut g = Guest::start(&[], &xtask_run("http-fetch", &accel(kvm), &args))?;
    g.succeeds(Duration::from_secs(120))?;
    g.wait_for("HTTP/1.0 200 ok", Duration::ZERO)?;
    g.wait_for(&format!("sha256 {want} (100000 bytes)"), Duration::ZERO)?;
    let mut g = Guest::start(&[], &xtask_run("http-fetch", &accel(kvm), &["--url", &url]))?;
    let status = g.wait(Duration::from_secs(60))?;
    g.wait_for("http-fetch: an https URL needs --ca FILE or --dev-ca", Duration::ZERO)?;
    if status.code() != Some(2) {
        return Err(format!("without a CA: exited {status}, not 2 (as on unix)\n{}", g.text()));
    }
    Ok(())
}

/// Whether a server app booted by `qemu` (with `port` forwarded from the host) serves: `echo`
/// echoes 64 KiB, `www` answers curl with its index page. For `cargo xtask bench boot`'s search
/// for the smallest `--mem`.
pub fn serves(root: &Path, app: &str, qemu: Command, port: u16, timeout: Duration) -> bool {
    let Ok(mut g) = Guest::spawn(qemu) else { return false };
    let ready = match app {
        "echo" => "echo: listening on ",
        _ => "INFO  www: serving https://",
    };
    if g.wait_for(ready, timeout).is_err() || g.wait_for("DHCP lease: ", timeout).is_err() {
        return false;
    }
    match app {
        "echo" => {
            let data = payload(64 << 10, 3);
            echo_through(port, &data, timeout).is_ok_and(|back| back == data)
        }
        _ => Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                &timeout.as_secs().to_string(),
            ])
            .arg("--cacert")
            .arg(root.join("stacks/tls/dev-certs/ca.pem"))
            .arg(format!("https://127.0.0.1:{port}/"))
            .output()
            .is_ok_and(|o| o.stdout == b"200"),
    }
}

/// Whether this process runs as root.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .map(|u| u == "0")
        })
        .unwrap_or(false)
}

fn sh(cmd: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A network namespace, deleted (with the TAP device in it) on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Result<Self, String> {
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        sh(&["ip", "netns", "add", &name])?;
        Ok(Self(name))
    }

    /// Run `cmd` inside the namespace; its stderr as the error unless it succeeds.
    fn run(&self, cmd: &[&str]) -> Result<(), String> {
        let mut all = vec!["ip", "netns", "exec", self.0.as_str()];
        all.extend_from_slice(cmd);
        sh(&all)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Linux's side of the TAP link, and the guest's.
const TAP_LINUX: &str = "10.78.0.1";
const TAP_GUEST: &str = "10.78.0.2";

/// `echo` on a TAP device inside a namespace this test creates; Linux in the namespace pings it
/// and echoes a payload through it with `nc`. Returns `Ok(false)` when skipped.
fn echo_tap(kvm: bool) -> Result<bool, String> {
    let Some((ns, tap)) = tap_namespace("e")? else { return Ok(false) };
    let pid = std::process::id();
    let mut opts = accel(kvm);
    opts.extend(["--net".into(), format!("tap:{tap}")]);
    let mut g = Guest::start(
        &["ip", "netns", "exec", &ns.0],
        &xtask_run("echo", &opts, &["--ipv4", &format!("{TAP_GUEST}/24")]),
    )?;
    g.wait_for("echo: listening on ", Duration::from_secs(60))?;
    ns.run(&["ping", "-c", "1", "-W", "20", TAP_GUEST]).map_err(|e| format!("{e}\n{}", g.text()))?;
    let data = payload(256 << 10, 11);
    let file = std::env::temp_dir().join(format!("morgana-tap-payload-{pid}"));
    let _cleanup = RemoveOnDrop(file.clone());
    std::fs::write(&file, &data).map_err(|e| e.to_string())?;
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, "nc", "-N", "-w", "60", TAP_GUEST, "7"])
        .stdin(std::fs::File::open(&file).map_err(|e| e.to_string())?)
        .output()
        .map_err(|e| format!("nc: {e} (install it: apt-get install netcat-openbsd)"))?;
    if out.stdout != data {
        return Err(format!(
            "{} bytes back through the TAP for {} (nc: {})\n{}",
            out.stdout.len(),
            data.len(),
            String::from_utf8_lossy(&out.stderr).trim(),
            g.text()
        ));
    }
    g.wait_for(&format!("connection 1 from {TAP_LINUX}:"), Duration::from_secs(10))?;
    drop(g);
    drop(ns);
    Ok(true)
}

/// A namespace with a TAP device whose Linux side is [`TAP_LINUX`]/24 (IPv6 usable at once);
/// `None` when root tests are skipped.
fn tap_namespace(tag: &str) -> Result<Option<(Netns, String)>, String> {
    if std::env::var("MORGANA_SKIP_ROOT_TESTS").as_deref() == Ok("1") {
        return Ok(None);
    }
    if !is_root() {
        return Err(
            "this test needs root (it creates a network namespace and a TAP device): run it as root, \
                    or set MORGANA_SKIP_ROOT_TESTS=1 to skip it"
                .into(),
        );
    }
    let pid = std::process::id();
    let ns = Netns::new(format!("mgvirtio{tag}{pid}"))?;
    let tap = format!("mgvt{tag}{pid}");
    ns.run(&["ip", "tuntap", "add", "dev", &tap, "mode", "tap"])?;
    // The link-local address must be usable at once, not tentative for a second (where the
    // kernel has IPv6 at all: the IPv4 tests do not need it).
    let _ = ns.run(&["sysctl", "-q", "-w", &format!("net.ipv6.conf.{tap}.accept_dad=0")]);
    ns.run(&["ip", "addr", "add", &format!("{TAP_LINUX}/24"), "dev", &tap])?;
    ns.run(&["ip", "link", "set", &tap, "up"])?;
    Ok(Some((ns, tap)))
}

/// `ping` on a TAP device: Linux's `ping` and `ping -6` (to the guest's link-local address and
/// to its `--ipv6` one) get replies, and the guest logs each answer and exits after three.
fn ping_tap(kvm: bool) -> Result<bool, String> {
    let Some((ns, tap)) = tap_namespace("p")? else { return Ok(false) };
    ns.run(&["ip", "-6", "addr", "add", "fd00:78::1/64", "dev", &tap, "nodad"])?;
    let mut opts = accel(kvm);
    opts.extend(["--net".into(), format!("tap:{tap}")]);
    let args = ["--ipv4", &format!("{TAP_GUEST}/24"), "--ipv6", "fd00:78::2/64", "--count", "3"];
    let mut g = Guest::start(&["ip", "netns", "exec", &ns.0], &xtask_run("ping", &opts, &args))?;
    let boot = Duration::from_secs(60);
    g.wait_for(&format!("answering ping on {TAP_GUEST}/24"), boot)?;
    let line = g.wait_for("answering ping6 on fe80::", boot)?;
    let link_local = line.rsplit(' ').next().unwrap_or_default().to_string();
    ns.run(&["ping", "-c", "1", "-W", "20", TAP_GUEST]).map_err(|e| format!("{e}\n{}", g.text()))?;
    ns.run(&["ping", "-6", "-c", "1", "-W", "20", &format!("{link_local}%{tap}")])
        .map_err(|e| format!("{e}\n{}", g.text()))?;
    g.wait_for("answering ping6 on fd00:78::2", Duration::ZERO)?;
    ns.run(&["ping", "-6", "-c", "1", "-W", "20", "fd00:78::2"]).map_err(|e| format!("{e}\n{}", g.text()))?;
    g.succeeds(Duration::from_secs(30))?;
    g.wait_for(&format!("answered ping from {TAP_LINUX}: seq 1, 56 bytes"), Duration::ZERO)?;
    g.wait_for("answered ping from fe80::", Duration::ZERO)?;
    g.wait_for("answered ping from fd00:78::1: seq 1, 56 bytes", Duration::ZERO)?;
    g.wait_for("answered 3 echo requests: done", Duration::ZERO)?;
    Ok(true)
}

/// `dns` on a TAP device with no address argument: a DHCP lease from `dnsmasq` on the Linux
/// side, then a name dnsmasq serves resolved through the server the lease names; a name it does
/// not know fails in one line.
fn dns_tap(kvm: bool) -> Result<bool, String> {
    let Some((ns, tap)) = tap_namespace("d")? else { return Ok(false) };
    let leases = std::env::temp_dir().join(format!("morgana-virtio-leases-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(leases.clone());
    let mut dnsmasq = Command::new("ip");
    dnsmasq
        .args(["netns", "exec", &ns.0, "dnsmasq", "--keep-in-foreground", "--log-facility=-"])
        .arg("--conf-file=/dev/null")
        .args(["--no-resolv", "--no-hosts", "--local=/test/", "--bind-interfaces", "--no-ping"])
        .arg(format!("--interface={tap}"))
        .arg("--host-record=unikernel.test,10.78.0.123,fd00:78::123")
        .arg("--dhcp-range=10.78.0.50,10.78.0.99,255.255.255.0,1h")
        .arg(format!("--dhcp-leasefile={}", leases.display()))
        .args(["--pid-file=", "--user=root", "--group=root"]);
    let mut server = Guest::spawn(dnsmasq)
        .map_err(|e| format!("dnsmasq: {e} (install it: apt-get install dnsmasq-base)"))?;
    server.wait_for("DHCP, IP range 10.78.0.50", Duration::from_secs(10))?;
    let mut opts = accel(kvm);
    opts.extend(["--net".into(), format!("tap:{tap}")]);
    let wrap = ["ip", "netns", "exec", ns.0.as_str()];
    let mut g = Guest::start(&wrap, &xtask_run("dns", &opts, &["--name", "unikernel.test"]))?;
    g.succeeds(Duration::from_secs(90))?;
    g.wait_for("DHCP lease: 10.78.0.", Duration::ZERO)?;
    g.wait_for(&format!("via {TAP_LINUX}, DNS [{TAP_LINUX}]"), Duration::ZERO)?;
    g.wait_for("unikernel.test has address 10.78.0.123", Duration::ZERO)?;
    g.wait_for("unikernel.test has IPv6 address fd00:78::123", Duration::ZERO)?;
    let mut g = Guest::start(&wrap, &xtask_run("dns", &opts, &["--name", "nowhere.test"]))?;
    let status = g.wait(Duration::from_secs(90))?;
    g.wait_for("error: cannot resolve nowhere.test: name not found", Duration::ZERO)?;
    if status.code() != Some(1) {
        return Err(format!("an unknown name: exited {status}, not 1\n{}", g.text()));
    }
    Ok(true)
}

/// One live test's outcome: `Ok(false)` when skipped.
pub type LiveResult = Result<bool, String>;

/// A live test, to run once.
pub type LiveTest = Box<dyn FnOnce() -> LiveResult>;

/// The live tests, by name.
pub fn tests(root: &Path, kvm: bool) -> Vec<(&'static str, LiveTest)> {
    let root: PathBuf = root.to_path_buf();
    let root2 = root.clone();
    let root3 = root.clone();
    vec![
        (
            "echo: 1 MiB byte-exact through the forwarded port",
            Box::new(move || echo_forwarded(kvm).map(|()| true)),
        ),
        (
            "www: curl --cacert <dev CA> over TLS 1.3 gets the index page through the forwarded port",
            Box::new(move || www_curl(&root, kvm).map(|()| true)),
        ),
        (
            "www --mem 8M (TCG): 200 TLS handshakes at once all served within the heap, then one more",
            Box::new(move || www_tls_flood_on_a_small_heap(&root3).map(|()| true)),
        ),
        ("echo on a TAP device in a namespace: ping and 256 KiB through nc", Box::new(move || echo_tap(kvm))),
        (
            "http-fetch: a file over TLS from openssl s_server on the host, SHA-256 checked",
            Box::new(move || http_fetch_openssl(&root2, kvm).map(|()| true)),
        ),
        (
            "ping on a TAP device: Linux ping and ping -6 get replies, each logged",
            Box::new(move || ping_tap(kvm)),
        ),
        (
            "dns on a TAP device: a DHCP lease from dnsmasq, then a name it serves",
            Box::new(move || dns_tap(kvm)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_do_not_repeat() {
        let p = payload(4096, 7);
        assert_ne!(p[..2048], p[2048..]);
        assert_eq!(payload(16, 7), payload(16, 7));
    }
}
