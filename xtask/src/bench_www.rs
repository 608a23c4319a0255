//! `cargo xtask bench www`: figures for the HTTPS site, as ratios against a peer measured in the
//! same run.
//!
//! 1. morgana-tls against raw rustls (same provider, same in-memory pipe): full handshakes per
//!    second and bulk MB/s (the `tls_bench` example of morgana-tls).
//! 2. `wrk` against `www` (release build, hosted, host sockets) and against `nginx` with one
//!    worker, serving the same 612-byte page with the same certificate (TLS 1.3) on loopback,
//!    keep-alive: requests per second over HTTP and over HTTPS, and their ratio. `www` serves the
//!    page compiled in (its default: the page is built into it through `MORGANA_WWW_HTDOCS`);
//!    nginx serves it from a directory with its open-file cache on, so neither opens a file per
//!    request, and without `sendfile` (for a page this small, one `pread` and one `writev` cost
//!    nginx less than `writev`, `sendfile` and the corking around them: about 9 against 11 us of
//!    CPU per request here). The HTTP row uses `www --http-port P --http-serve`.
//!
//! 3. Many clients: `wrk -t2` with 1,000 and with 10,000 keep-alive HTTPS connections against
//!    both servers (nginx with `worker_connections 20000`), requests per second and `wrk`'s socket
//!    errors, reported rather than fatal. `wrk` counts as a "timeout", at each 2 s check, every
//!    connection that has not yet sent its first request, so connections still in their TLS
//!    handshake count too: with 10,000 handshakes at once that is mostly a figure of how fast
//!    `wrk` itself completes them on its one CPU.
//!
//! The servers share one CPU and `wrk` gets the other (with `taskset`, when there are two); runs
//! alternate between the servers and the best of the rounds counts, since a busy neighbour only
//! ever lowers a figure. Beside requests per second, the bench reports the CPU time each server
//! spent per request (user + system, from `/proc`): a figure that other load on the machine
//! hardly moves, where requests per second move a lot on a shared host. The bench installs nothing: without `wrk` or `nginx` it fails with the
//! `apt-get` line to run. It starts nginx itself, with its own configuration, prefix and pid file
//! in a temporary directory, on free loopback ports, and stops it afterwards.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use morgana_netns::{free_port, median};

use crate::{Failure, Outcome, cargo, exec};

/// Connections `wrk` keeps open.
const CONNECTIONS: usize = 64;

/// Connections of the many-clients rows, run with two `wrk` threads.
const MANY: [usize; 2] = [1000, 10_000];

/// Open files for `wrk` and nginx in the many-clients rows (capped at the hard limit).
const OPEN_FILES: usize = 20_000;

/// `cmd` run by `sh` after raising its open-file limit to [`OPEN_FILES`], or as far as the hard
/// limit allows.
fn with_open_files(cmd: &Command) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!("ulimit -n {OPEN_FILES} 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"; exec \"$0\" \"$@\""))
        .arg(cmd.get_program())
        .args(cmd.get_args());
    sh
}

/// Run the benchmarks (`quick`: one short round each, to check that they run).
pub fn run(root: &Path, quick: bool) -> Outcome {
    let tools = Tools::find()?;
    println!("==> morgana-tls vs rustls (ring, in-memory pipe, release build)");
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--quiet", "-p", "morgana-tls", "--example", "tls_bench"]);
    if quick {
        cmd.args(["--", "--quick"]);
    }
    exec(&mut cmd)?;
    println!();
    wrk_vs_nginx(root, &tools, quick)?;
    println!();
    println!("==> www on bare metal (rustls-rustcrypto, compiled-in site), stripped image size");
    let (kib, target) = crate::images::image_kib(root, "www")?;
    let target = target.map_or(String::new(), |t| {
        format!(" (target <= {t} KiB: {})", if kib <= t as f64 { "met" } else { "MISSED" })
    });
    println!("www image: {kib:.1} KiB{target}");
    Ok(())
}

/// The external programs the bench drives.
struct Tools {
    wrk: PathBuf,
    nginx: PathBuf,
    /// `taskset`, to give the servers and `wrk` a CPU each, when there are two.
    taskset: Option<PathBuf>,
}

/// `name` in `$PATH` or in the sbin directories (nginx lives in `/usr/sbin`).
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Tools {
    fn find() -> Result<Self, Failure> {
        let (wrk, nginx) = (which("wrk"), which("nginx"));
        let missing: Vec<&str> = [("wrk", &wrk), ("nginx", &nginx)]
            .into_iter()
            .filter(|(_, p)| p.is_none())
            .map(|(n, _)| n)
            .collect();
        match (wrk, nginx) {
            (Some(wrk), Some(nginx)) => {
                let two_cpus = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
                Ok(Self { wrk, nginx, taskset: which("taskset").filter(|_| two_cpus) })
            }
            _ => Err(Failure::new(format!(
                "bench www: {} missing; install with: apt-get install -y {}",
                missing.join(" and "),
                missing.join(" ")
            ))),
        }
    }

    /// `program` on CPU `cpu` when CPUs are assigned.
    fn on_cpu(&self, cpu: usize, program: &Path) -> Command {
        match &self.taskset {
            Some(taskset) => {
                let mut cmd = Command::new(taskset);
                cmd.args(["-c", &cpu.to_string()]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }
}

/// The page both servers serve: 612 bytes, like nginx's own welcome page.
fn page() -> Vec<u8> {
    let head = "<!DOCTYPE html>\n<html>\n<head>\n<title>Morgana benchmark page</title>\n</head>\n<body>\n\
                <h1>612 bytes</h1>\n<p>";
    let tail = "</p>\n</body>\n</html>\n";
    let words = "The same page, served by a unikernel and by nginx, over the same loopback. ".repeat(10);
    let mut page = String::from(head);
    page.push_str(&words[..612 - head.len() - tail.len()]);
    page.push_str(tail);
    assert_eq!(page.len(), 612);
    page.into_bytes()
}

/// Write `data` to `path` unless it already holds exactly that (a rewrite would rebuild `www`).
fn write_if_changed(path: &Path, data: &[u8]) -> Result<(), Failure> {
    if std::fs::read(path).is_ok_and(|old| old == data) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Failure::new(format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(path, data).map_err(|e| Failure::new(format!("{}: {e}", path.display())))
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server process we started, stopped (by its pid) when dropped.
struct Server {
    name: &'static str,
    child: Child,
}

impl Server {
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // SIGTERM lets nginx's master stop its worker; then make sure.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's processes: the one we started and its children (nginx's worker).
    fn pids(&self) -> Vec<u32> {
        let pid = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        std::iter::once(pid).chain(children.split_whitespace().filter_map(|c| c.parse().ok())).collect()
    }

    /// CPU time its processes have used so far, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        self.pids()
            .iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
            .filter_map(|stat| {
                // After the command name in parentheses: state is field 3, utime 14, stime 15.
                let rest = &stat[stat.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .sum()
    }

    fn check_running(&mut self) -> Outcome {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            _ => Err(Failure::new(format!("bench www: {} exited during the benchmark", self.name))),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// GET `/` over plain HTTP on `port`: the body, to check both servers serve the same page.
fn get_body(port: u16) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)?;
    let at = reply.windows(4).position(|w| w == b"\r\n\r\n").map_or(reply.len(), |i| i + 4);
    Ok(reply.split_off(at))
}

/// Wait until `port` accepts connections.
fn wait_listening(server: &mut Server, port: u16) -> Outcome {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        server.check_running()?;
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(Failure::new(format!("bench www: {} does not listen on 127.0.0.1:{port}", server.name)))
}

/// Start the release `www` at `bin`; its HTTPS and HTTP ports from its log.
fn start_www(tools: &Tools, bin: &Path, certs: &Path) -> Result<(Server, u16, u16), Failure> {
    let mut child = tools
        .on_cpu(1, bin)
        .args(["--port", "0", "--http-port", "0", "--http-serve", "--ipv4", "127.0.0.1/8", "--certs"])
        .arg(certs)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Failure::new(format!("cannot start {}: {e}", bin.display())))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    // Reads the log for the ports, then keeps draining it.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut server = Server { name: "www", child };
    let port_after = |line: &str, prefix: &str| -> Option<u16> {
        let rest = &line[line.find(prefix)? + prefix.len()..];
        rest.split(['/', ':']).nth(1)?.parse().ok()
    };
    let (mut https, mut http) = (None, None);
    let until = Instant::now() + Duration::from_secs(10);
    while https.is_none() || http.is_none() {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                https = https.or(port_after(&line, "serving https://"));
                http = http.or(port_after(&line, "serving http://"));
            }
            Err(_) => {
                server.check_running()?;
                return Err(Failure::new("bench www: www did not announce its ports within 10 s"));
            }
        }
    }
    let (https, http) = (https.unwrap_or_default(), http.unwrap_or_default());
    Ok((server, https, http))
}

/// Start nginx with one worker, its own configuration, prefix and pid file under `dir`.
fn start_nginx(
    tools: &Tools,
    dir: &Path,
    htdocs: &Path,
    certs: &Path,
) -> Result<(Server, u16, u16), Failure> {
    let (http, https) = (free_port(), free_port());
    let conf = format!(
        "worker_processes 1;\n\
         daemon off;\n\
         pid {dir}/nginx.pid;\n\
         error_log {dir}/error.log;\n\
         events {{ worker_connections {OPEN_FILES}; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   sendfile off;\n\
         \x20   open_file_cache max=1000 inactive=60s;\n\
         \x20   open_file_cache_valid 60s;\n\
         \x20   keepalive_requests 1000000000;\n\
         \x20   keepalive_timeout 60s;\n\
         \x20   default_type text/html;\n\
         \x20   client_body_temp_path {dir}/body;\n\
         \x20   proxy_temp_path {dir}/proxy;\n\
         \x20   fastcgi_temp_path {dir}/fastcgi;\n\
         \x20   uwsgi_temp_path {dir}/uwsgi;\n\
         \x20   scgi_temp_path {dir}/scgi;\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{http};\n\
         \x20       listen 127.0.0.1:{https} ssl backlog=4096;\n\
         \x20       ssl_certificate {certs}/server.pem;\n\
         \x20       ssl_certificate_key {certs}/server.key;\n\
         \x20       ssl_protocols TLSv1.3;\n\
         \x20       root {htdocs};\n\
         \x20   }}\n\
         }}\n",
        dir = dir.display(),
        certs = certs.display(),
        htdocs = htdocs.display(),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| Failure::new(format!("{}: {e}", conf_path.display())))?;
    let mut nginx = tools.on_cpu(1, &tools.nginx);
    nginx.arg("-p").arg(dir).arg("-e").arg(dir.join("error.log")).arg("-c").arg(&conf_path);
    let child = with_open_files(&nginx)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Failure::new(format!("cannot start {}: {e}", tools.nginx.display())))?;
    let mut server = Server { name: "nginx", child };
    wait_listening(&mut server, http).map_err(|e| {
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        Failure::new(format!("{}; nginx's error log: {}", e.message, log.trim()))
    })?;
    wait_listening(&mut server, https)?;
    Ok((server, http, https))
}

/// What one `wrk` run measured.
struct Run {
    per_sec: f64,
    /// The server's CPU time per request, in microseconds.
    cpu_us: f64,
}

/// Clock ticks per second of `/proc/*/stat` times.
fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().ok();
    out.and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0)
}

/// `wrk` against `server` at `url`.
fn measure(tools: &Tools, server: &mut Server, url: &str, secs: u64, tick_us: f64) -> Result<Run, Failure> {
    let before = server.cpu_ticks();
    let (per_sec, requests, _) = wrk(tools, url, secs, 1, CONNECTIONS, true)?;
    let ticks = server.cpu_ticks().saturating_sub(before);
    server.check_running()?;
    Ok(Run { per_sec, cpu_us: ticks as f64 * tick_us / requests.max(1) as f64 })
}

/// One `wrk` run with `threads` and `connections`: requests per second, requests done, and its
/// socket-error line if any (fatal when `strict`).
fn wrk(
    tools: &Tools,
    url: &str,
    secs: u64,
    threads: usize,
    connections: usize,
    strict: bool,
) -> Result<(f64, u64, Option<String>), Failure> {
    let mut cmd = tools.on_cpu(0, &tools.wrk);
    cmd.args([&format!("-t{threads}"), &format!("-c{connections}"), &format!("-d{secs}s"), url]);
    let out = with_open_files(&cmd).output().map_err(|e| Failure::new(format!("cannot run wrk: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(Failure::new(format!(
            "wrk {url} failed: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx or 3xx responses")) {
        return Err(Failure::new(format!("wrk {url}: {}", line.trim())));
    }
    let errors = text.lines().find(|l| l.contains("Socket errors")).map(|l| l.trim().to_string());
    if let (true, Some(line)) = (strict, &errors) {
        return Err(Failure::new(format!("wrk {url}: {line}")));
    }
    let per_sec =
        text.lines().find_map(|l| l.strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok());
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    let (per_sec, requests) = per_sec
        .zip(requests)
        .ok_or_else(|| Failure::new(format!("wrk {url}: no request count in its output: {text}")))?;
    Ok((per_sec, requests, errors))
}

/// The many-clients rows: `wrk -t2` with each of [`MANY`] connections, HTTPS, both servers.
fn many_clients(tools: &Tools, servers: [(&mut Server, String); 2], rounds: usize, secs: u64) -> Outcome {
    println!();
    println!(
        "wrk -t2, HTTPS TLS1.3, {rounds} alternating round(s) of {secs} s; req/s best of the rounds, \
         wrk's socket errors of that round"
    );
    println!("{:<14}{:>17}  {:<44}{:>17}  {:<44}", "", "www req/s", "errors", "nginx req/s", "errors");
    let [(www, www_url), (nginx, nginx_url)] = servers;
    for connections in MANY {
        let mut best: [(f64, u64, Option<String>); 2] = [(0.0, 0, None), (0.0, 0, None)];
        for _ in 0..rounds {
            for (i, (server, url)) in
                [(&mut *www, &www_url), (&mut *nginx, &nginx_url)].into_iter().enumerate()
            {
                let (per_sec, requests, errors) = wrk(tools, url, secs, 2, connections, false)?;
                server.check_running()?;
                if per_sec >= best[i].0 {
                    best[i] = (per_sec, requests, errors);
                }
            }
        }
        let shown = |(_, requests, e): &(f64, u64, Option<String>)| match (requests, e) {
            (0, _) => "no request done: still in handshakes".to_string(),
            (_, None) => "none".to_string(),
            (_, Some(l)) => l.trim_start_matches("Socket errors: ").to_string(),
        };
        println!(
            "{:<14}{:>17.0}  {:<44}{:>17.0}  {:<44}",
            format!("-c{connections}"),
            best[0].0,
            shown(&best[0]),
            best[1].0,
            shown(&best[1])
        );
    }
    Ok(())
}

fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn least(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn wrk_vs_nginx(root: &Path, tools: &Tools, quick: bool) -> Outcome {
    let (rounds, secs) = if quick { (1, 1) } else { (5, 5) };
    println!("==> wrk: www vs nginx (one worker), a 612-byte page, keep-alive, loopback");
    // The page is compiled into www, from a directory whose path and files stay put between
    // runs so that cargo does not rebuild www each time; in a target directory of its own, so
    // that target/release/www keeps serving the real site.
    let page = page();
    let work = root.join("target").join("bench-www");
    let site = work.join("htdocs");
    write_if_changed(&site.join("index.html"), &page)?;
    exec(
        cargo()
            .args(["build", "--release", "--quiet", "-p", "www", "--bin", "www", "--target-dir"])
            .arg(work.join("target"))
            .env("MORGANA_WWW_HTDOCS", &site),
    )?;
    let bin = work.join("target").join("release").join("www");

    // nginx's files: its own temporary prefix, readable by its worker's user.
    let tmp = TempDir(std::env::temp_dir().join(format!("morgana-bench-www-{}", std::process::id())));
    let (htdocs, certs) = (tmp.0.join("htdocs"), tmp.0.join("certs"));
    let dev = root.join("stacks").join("tls").join("dev-certs");
    let setup = || -> std::io::Result<()> {
        std::fs::create_dir_all(&htdocs)?;
        std::fs::create_dir_all(&certs)?;
        std::fs::write(htdocs.join("index.html"), &page)?;
        std::fs::copy(dev.join("server.pem"), certs.join("server.pem"))?;
        std::fs::copy(dev.join("server.key"), certs.join("server.key"))?;
        use std::os::unix::fs::PermissionsExt;
        for d in [&tmp.0, &htdocs, &certs] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    };
    setup().map_err(|e| Failure::new(format!("{}: {e}", tmp.0.display())))?;

    let (mut www, www_https, www_http) = start_www(tools, &bin, &certs)?;
    let (mut nginx, nginx_http, nginx_https) = start_nginx(tools, &tmp.0, &htdocs, &certs)?;
    for (name, port) in [("www", www_http), ("nginx", nginx_http)] {
        match get_body(port) {
            Ok(body) if body == page => {}
            Ok(body) => {
                return Err(Failure::new(format!(
                    "bench www: {name} serves {} bytes, not the page",
                    body.len()
                )));
            }
            Err(e) => return Err(Failure::new(format!("bench www: GET / from {name}: {e}"))),
        }
    }
    let pinned = if tools.taskset.is_some() { "servers on CPU 1, wrk on CPU 0" } else { "no CPU pinning" };
    println!("wrk -t1 -c{CONNECTIONS}; {pinned}; {rounds} alternating round(s) of {secs} s per server");
    println!(
        "req/s: best of the rounds (median); CPU: the server's user+system time per request, least (median)"
    );
    println!(
        "{:<14}{:>17}{:>17}{:>15}  {:>14}{:>14}{:>15}",
        "", "www req/s", "nginx req/s", "ratio", "www us/req", "nginx us/req", "ratio"
    );
    let tick_us = 1e6 / clock_ticks();
    let rows = [
        ("HTTP", format!("http://127.0.0.1:{www_http}/"), format!("http://127.0.0.1:{nginx_http}/")),
        (
            "HTTPS TLS1.3",
            format!("https://127.0.0.1:{www_https}/"),
            format!("https://127.0.0.1:{nginx_https}/"),
        ),
    ];
    for (row, www_url, nginx_url) in rows {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(measure(tools, &mut www, &www_url, secs, tick_us)?);
            theirs.push(measure(tools, &mut nginx, &nginx_url, secs, tick_us)?);
        }
        let rate = |runs: &[Run]| runs.iter().map(|r| r.per_sec).collect::<Vec<_>>();
        let cpu = |runs: &[Run]| runs.iter().map(|r| r.cpu_us).collect::<Vec<_>>();
        let (our_rate, their_rate, our_cpu, their_cpu) =
            (rate(&ours), rate(&theirs), cpu(&ours), cpu(&theirs));
        println!(
            "{row:<14}{:>17}{:>17}{:>15}  {:>14}{:>14}{:>15}",
            format!("{:.0} ({:.0})", best(&our_rate), median(&our_rate)),
            format!("{:.0} ({:.0})", best(&their_rate), median(&their_rate)),
            format!(
                "{:.2}x ({:.2}x)",
                best(&our_rate) / best(&their_rate),
                median(&our_rate) / median(&their_rate)
            ),
            format!("{:.2} ({:.2})", least(&our_cpu), median(&our_cpu)),
            format!("{:.2} ({:.2})", least(&their_cpu), median(&their_cpu)),
            format!(
                "{:.2}x ({:.2}x)",
                least(&their_cpu) / least(&our_cpu),
                median(&their_cpu) / median(&our_cpu)
            ),
        );
    }
    println!(
        "ratios: www over nginx for req/s, nginx over www for CPU per request (higher is better for www)"
    );
    println!("target: >= 1.0x");
    let (many_rounds, many_secs) = if quick { (1, 2) } else { (2, 10) };
    many_clients(
        tools,
        [
            (&mut www, format!("https://127.0.0.1:{www_https}/")),
            (&mut nginx, format!("https://127.0.0.1:{nginx_https}/")),
        ],
        many_rounds,
        many_secs,
    )?;
    www.stop();
    nginx.stop();
    Ok(())
}
