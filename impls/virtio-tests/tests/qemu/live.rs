//! Guests that talk to real peers: `echo` and `www` through the forwarded port, `http-fetch`
//! against `openssl s_server` on the host, and `echo`, `ping` and `dns` through a TAP device in
//! a network namespace the test creates (`dns` against `dnsmasq` there), each started with the
//! command a user types (`cargo xtask run APP --target virtio ...`).

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use morgana_netns::{Need, Netns, Proc, Suite, TempDir, echo_through, free_port, payload};
use morgana_virtio_tests::Env;

use crate::needs;

/// Linux's side of the TAP link, and the guest's.
const TAP_LINUX: &str = "10.78.0.1";
const TAP_GUEST: &str = "10.78.0.2";

const IP: Need = Need::program("ip", "iproute2");
const PING: Need = Need::program("ping", "iputils-ping");

/// `cargo xtask run APP --target virtio` with the suite's accelerator and `opts`, in a process
/// group of its own (so that dropping it stops QEMU too).
fn guest(env: &Env, app: &str, opts: &[String], app_args: &[&str]) -> Proc {
    let opts: Vec<String> = env.accel().into_iter().chain(opts.iter().cloned()).collect();
    Proc::spawn_group(env.xtask_run(app, &opts, app_args))
}

/// The same, inside `ns` (for a TAP device there).
fn guest_in(ns: &Netns, env: &Env, app: &str, opts: &[String], app_args: &[&str]) -> Proc {
    let opts: Vec<String> = env.accel().into_iter().chain(opts.iter().cloned()).collect();
    let mut cmd = ns.command(&env.xtask);
    cmd.args(env.xtask_run_args(app, &opts, app_args));
    Proc::spawn_group(cmd)
}

/// A line among `lines` containing `needle`, or the error with everything printed.
fn printed(lines: &[String], needle: &str) -> Result<(), String> {
    if lines.iter().any(|l| l.contains(needle)) {
        Ok(())
    } else {
        Err(format!("no '{needle}' in:\n{}", lines.join("\n")))
    }
}

/// `echo` returns a 1 MiB payload byte-exact through the forwarded port.
fn echo_forwarded(env: &Env) -> Result<(), String> {
    let port = free_port();
    let mut g = guest(env, "echo", &["--forward".into(), format!("{port}:7")], &[]);
    let boot = Duration::from_secs(60);
    g.wait_for(&format!("127.0.0.1:{port} forwards to the guest's TCP port 7"), boot);
    g.wait_for("echo: listening on ", boot);
    g.wait_for("DHCP lease: 10.0.2.15/24 via 10.0.2.2", boot);
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
    g.wait_for("closed: 1048576 bytes echoed", Duration::from_secs(10));
    Ok(())
}

/// `www` answers `curl --cacert <dev CA>` over TLS 1.3 with the site's index page.
fn www_curl(env: &Env) -> Result<(), String> {
    let port = free_port();
    let mut g = guest(env, "www", &["--forward".into(), format!("{port}:443")], &[]);
    let boot = Duration::from_secs(90);
    g.wait_for(&format!("serving https://127.0.0.1:{port}/"), boot);
    g.wait_for("INFO  www: serving https://", boot);
    g.wait_for("DHCP lease: 10.0.2.15/24", boot);
    let dir = TempDir::new("www-index");
    let body = dir.join("index.html");
    let out = Command::new("curl")
        .args(["-sS", "-v", "--tlsv1.3", "--max-time", "120", "--cacert"])
        .arg(env.root.join("stacks/tls/dev-certs/ca.pem"))
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}", &format!("https://127.0.0.1:{port}/")])
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || code != "200" {
        return Err(format!("curl exited {}, HTTP {code}: {stderr}\n{}", out.status, g.text()));
    }
    if !stderr.contains("SSL connection using TLSv1.3") {
        return Err(format!("not TLS 1.3: {stderr}"));
    }
    let want = std::fs::read(env.root.join("apps/www/htdocs/index.html")).map_err(|e| e.to_string())?;
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

/// `www -- --block site.tar` serves a tar image made by `tar`, attached as its virtio-blk disk:
/// curl gets a member byte for byte through the forwarded port.
fn www_tar_disk(env: &Env) -> Result<(), String> {
    let dir = TempDir::new("www-tar");
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("docs/deep")).map_err(|e| e.to_string())?;
    let page: Vec<u8> = (0..30_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(site.join("docs/deep/page.txt"), &page).map_err(|e| e.to_string())?;
    std::fs::write(site.join("index.html"), b"<h1>from the disk</h1>").map_err(|e| e.to_string())?;
    let image = dir.join("site.tar");
    let out = Command::new("tar").arg("-cf").arg(&image).arg("-C").arg(&site).arg(".").output();
    let out = out.map_err(|e| format!("tar: {e}"))?;
    if !out.status.success() {
        return Err(format!("tar: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let port = free_port();
    let image_arg = image.to_str().ok_or("a temporary path that is not UTF-8")?;
    let mut g = guest(env, "www", &["--forward".into(), format!("{port}:443")], &["--block", image_arg]);
    let boot = Duration::from_secs(90);
    g.wait_for("site.tar: serving a tar image of 2 files", boot);
    g.wait_for("INFO  www: serving https://", boot);
    let body = dir.join("page.txt");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "120", "--cacert"])
        .arg(env.root.join("stacks/tls/dev-certs/ca.pem"))
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}", &format!("https://127.0.0.1:{port}/docs/deep/page.txt")])
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    let code = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || code != "200" {
        return Err(format!(
            "curl exited {}, HTTP {code}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            g.text()
        ));
    }
    let got = std::fs::read(&body).map_err(|e| e.to_string())?;
    if got != page {
        return Err(format!("{} bytes back, not the member's {} bytes", got.len(), page.len()));
    }
    Ok(())
}

/// `www --mem 8M` under TCG (a handshake is arithmetic: where KVM emulates every instruction it
/// takes seconds) takes 200 TLS handshakes at once from `curl --parallel`: far more than its
/// heap holds at once (the TLS budget is logged at start), so most wait in the listen backlog
/// (or are retried by curl after a reset once the listener's pool is full). All or nearly all
/// complete, the guest does not crash, and it serves a page afterwards.
fn www_tls_flood_on_a_small_heap(env: &Env) -> Result<(), String> {
    const CLIENTS: usize = 200;
    let port = free_port();
    let opts = ["--accel", "tcg", "--mem", "8M", "--forward", &format!("{port}:443")].map(String::from);
    let mut g = Proc::spawn_group(env.xtask_run("www", &opts, &["--stats-interval", "2"]));
    let boot = Duration::from_secs(90);
    g.try_wait_for("INFO  www: serving https://", boot)?;
    g.try_wait_for("DHCP lease: 10.0.2.15/24", boot)?;
    let budget = g.try_wait_for("TLS connections at once", Duration::ZERO)?;
    let ca = env.root.join("stacks/tls/dev-certs/ca.pem");
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
        if let Ok(l) = g.try_wait_for(crash, Duration::ZERO) {
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
        let done = g.log().iter().rev().find(|l| l.contains("stats: ")).cloned();
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
fn s_server(root: &Path, dir: &Path) -> Result<(Proc, u16), String> {
    let certs = root.join("stacks/tls/dev-certs");
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = Command::new("openssl");
        cmd.args(["s_server", "-quiet", "-WWW", "-accept", &format!("127.0.0.1:{port}"), "-cert"])
            .arg(certs.join("server.pem"))
            .arg("-key")
            .arg(certs.join("server.key"))
            .current_dir(dir)
            .stdin(Stdio::null());
        let mut server = Proc::spawn(cmd);
        // It listens once it has read its key; it exits if the port is taken.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if server.exited() {
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
fn http_fetch_openssl(env: &Env) -> Result<(), String> {
    let dir = TempDir::new("fetch");
    let file = dir.join("payload.bin");
    std::fs::write(&file, payload(100_000, 5)).map_err(|e| e.to_string())?;
    let want = sha256_hex(&file)?;
    let (_server, port) = s_server(&env.root, dir.path())?;
    let url = format!("https://localhost:{port}/payload.bin");
    // A TLS client handshake is arithmetic: under this host's software KVM (kvm_pvm, every
    // guest instruction emulated) it takes 13 s or more on a busy machine and the whole fetch
    // up to a minute, against 0.2 s under TCG, so it runs under TCG there. The generous
    // timeout is for a loaded machine.
    let args =
        ["--url", url.as_str(), "--dev-ca", "--resolve", "localhost:10.0.2.2", "--timeout-ms", "240000"];
    let fetch = if env.kvm && morgana_qemu::kvm_is_software() {
        Proc::spawn_group(env.xtask_run("http-fetch", &["--accel".to_string(), "tcg".to_string()], &args))
    } else {
        guest(env, "http-fetch", &[], &args)
    };
    let (status, lines) = fetch.finish(Duration::from_secs(300));
    if !status.success() {
        return Err(format!("the guest exited with {status}\n{}", lines.join("\n")));
    }
    printed(&lines, "HTTP/1.0 200 ok")?;
    printed(&lines, &format!("sha256 {want} (100000 bytes)"))?;
    let (status, lines) = guest(env, "http-fetch", &[], &["--url", &url]).finish(Duration::from_secs(60));
    printed(&lines, "http-fetch: an https URL needs --ca FILE or --dev-ca")?;
    if status.code() != Some(2) {
        return Err(format!("without a CA: exited {status}, not 2 (as on unix)\n{}", lines.join("\n")));
    }
    Ok(())
}

/// A namespace with a TAP device whose Linux side is [`TAP_LINUX`]/24 (IPv6 usable at once).
fn tap_namespace(tag: &str) -> (Netns, String) {
    let ns = Netns::new(&format!("vt{tag}"));
    let tap = format!("mgvt{tag}{}", std::process::id());
    ns.tap(&tap, &[&format!("{TAP_LINUX}/24")]);
    (ns, tap)
}

/// `echo` on a TAP device inside a namespace this test creates; Linux in the namespace pings it
/// and echoes a payload through it with `nc`.
fn echo_tap(env: &Env) -> Result<(), String> {
    let (ns, tap) = tap_namespace("e");
    let opts = ["--net".to_string(), format!("tap:{tap}")];
    let mut g = guest_in(&ns, env, "echo", &opts, &["--ipv4", &format!("{TAP_GUEST}/24")]);
    g.wait_for("echo: listening on ", Duration::from_secs(60));
    ns.run(&["ping", "-c", "1", "-W", "20", TAP_GUEST]);
    let data = payload(256 << 10, 11);
    let dir = TempDir::new("tap-payload");
    let file = dir.join("payload");
    std::fs::write(&file, &data).map_err(|e| e.to_string())?;
    let out = ns
        .command("nc")
        .args(["-N", "-w", "60", TAP_GUEST, "7"])
        .stdin(std::fs::File::open(&file).map_err(|e| e.to_string())?)
        .output()
        .map_err(|e| format!("nc: {e}"))?;
    if out.stdout != data {
        return Err(format!(
            "{} bytes back through the TAP for {} (nc: {})\n{}",
            out.stdout.len(),
            data.len(),
            String::from_utf8_lossy(&out.stderr).trim(),
            g.text()
        ));
    }
    g.wait_for(&format!("connection 1 from {TAP_LINUX}:"), Duration::from_secs(10));
    Ok(())
}

/// `ping` on a TAP device: Linux's `ping` and `ping -6` (to the guest's link-local address and
/// to its `--ipv6` one) get replies, and the guest logs each answer and exits after three.
fn ping_tap(env: &Env) -> Result<(), String> {
    let (ns, tap) = tap_namespace("p");
    ns.run(&["ip", "-6", "addr", "add", "fd00:78::1/64", "dev", &tap, "nodad"]);
    let opts = ["--net".to_string(), format!("tap:{tap}")];
    let args = ["--ipv4", &format!("{TAP_GUEST}/24"), "--ipv6", "fd00:78::2/64", "--count", "3"];
    let mut g = guest_in(&ns, env, "ping", &opts, &args);
    let boot = Duration::from_secs(60);
    g.wait_for(&format!("answering ping on {TAP_GUEST}/24"), boot);
    let line = g.wait_for("answering ping6 on fe80::", boot);
    let link_local = line.rsplit(' ').next().unwrap_or_default().to_string();
    ns.run(&["ping", "-c", "1", "-W", "20", TAP_GUEST]);
    ns.run(&["ping", "-6", "-c", "1", "-W", "20", &format!("{link_local}%{tap}")]);
    g.wait_for("answering ping6 on fd00:78::2", Duration::ZERO);
    ns.run(&["ping", "-6", "-c", "1", "-W", "20", "fd00:78::2"]);
    let (status, lines) = g.finish(Duration::from_secs(30));
    if !status.success() {
        return Err(format!("the guest exited with {status}\n{}", lines.join("\n")));
    }
    printed(&lines, &format!("answered ping from {TAP_LINUX}: seq 1, 56 bytes"))?;
    printed(&lines, "answered ping from fe80::")?;
    printed(&lines, "answered ping from fd00:78::1: seq 1, 56 bytes")?;
    printed(&lines, "answered 3 echo requests: done")
}

/// `dns` on a TAP device with no address argument: a DHCP lease from `dnsmasq` on the Linux
/// side, then a name dnsmasq serves resolved through the server the lease names; a name it does
/// not know fails in one line.
fn dns_tap(env: &Env) -> Result<(), String> {
    let (ns, tap) = tap_namespace("d");
    let dir = TempDir::new("virtio-leases");
    let leases = dir.join("leases");
    let mut server = ns.spawn(
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--log-facility=-",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--local=/test/",
            "--bind-interfaces",
            "--no-ping",
            &format!("--interface={tap}"),
            "--host-record=unikernel.test,10.78.0.123,fd00:78::123",
            "--dhcp-range=10.78.0.50,10.78.0.99,255.255.255.0,1h",
            &format!("--dhcp-leasefile={}", leases.display()),
            "--pid-file=",
            "--user=root",
            "--group=root",
        ],
    );
    server.wait_for("DHCP, IP range 10.78.0.50", Duration::from_secs(10));
    let opts = ["--net".to_string(), format!("tap:{tap}")];
    let (status, lines) =
        guest_in(&ns, env, "dns", &opts, &["--name", "unikernel.test"]).finish(Duration::from_secs(90));
    if !status.success() {
        return Err(format!("the guest exited with {status}\n{}", lines.join("\n")));
    }
    printed(&lines, "DHCP lease: 10.78.0.")?;
    printed(&lines, &format!("via {TAP_LINUX}, DNS [{TAP_LINUX}]"))?;
    printed(&lines, "unikernel.test has address 10.78.0.123")?;
    printed(&lines, "unikernel.test has IPv6 address fd00:78::123")?;
    let (status, lines) =
        guest_in(&ns, env, "dns", &opts, &["--name", "nowhere.test"]).finish(Duration::from_secs(90));
    printed(&lines, "error: cannot resolve nowhere.test: name not found")?;
    if status.code() != Some(1) {
        return Err(format!("an unknown name: exited {status}, not 1\n{}", lines.join("\n")));
    }
    Ok(())
}

/// The live tests.
pub fn add(suite: &mut Suite, env: &Env, base: &[Need]) {
    type Live = fn(&Env) -> Result<(), String>;
    let tests: [(&str, Live, &[Need]); 11] = [
        ("echo: 1 MiB byte-exact through the forwarded port", echo_forwarded, &[]),
        (
            "www: curl --cacert <dev CA> over TLS 1.3 gets the index page through the forwarded port",
            www_curl,
            &[Need::program("curl", "curl")],
        ),
        (
            "www --block site.tar: curl gets a member of a tar image on the virtio-blk disk",
            www_tar_disk,
            &[Need::program("curl", "curl"), Need::program("tar", "tar")],
        ),
        (
            "www --mem 8M (TCG): 200 TLS handshakes at once all served within the heap, then one more",
            www_tls_flood_on_a_small_heap,
            &[Need::program("curl", "curl")],
        ),
        (
            "notes (TCG): QEMU killed mid-PUTs, restarted on the image: every acknowledged PUT byte for byte",
            crate::notes::qemu_killed,
            &[Need::program("curl", "curl")],
        ),
        (
            "notes --mem 8M (TCG) on a store of 400,000 keys, more key bytes than the guest has RAM: GETs from all over the tree, PUTs, a DELETE, a listing",
            crate::notes::big_store_small_guest,
            &[Need::program("curl", "curl")],
        ),
        (
            "notes (TCG) on the suite's NBD server: 6 power cuts (pending writes lost, kept in any order, torn), every acknowledged PUT survives",
            crate::notes::nbd_power_cuts,
            &[Need::program("curl", "curl")],
        ),
        (
            "echo on a TAP device in a namespace: ping and 256 KiB through nc",
            echo_tap,
            &[Need::Root, IP, PING, Need::program("nc", "netcat-openbsd")],
        ),
        (
            "http-fetch: a file over TLS from openssl s_server on the host, SHA-256 checked",
            http_fetch_openssl,
            &[Need::program("openssl", "openssl"), Need::program("sha256sum", "coreutils")],
        ),
        (
            "ping on a TAP device: Linux ping and ping -6 get replies, each logged",
            ping_tap,
            &[Need::Root, IP, PING],
        ),
        (
            "dns on a TAP device: a DHCP lease from dnsmasq, then a name it serves",
            dns_tap,
            &[Need::Root, IP, Need::program("dnsmasq", "dnsmasq-base")],
        ),
    ];
    for (name, test, more) in tests {
        let env = env.clone();
        suite.check(name, &needs(base, more), move || test(&env));
    }
}
