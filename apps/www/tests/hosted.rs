//! `www` as a process on host sockets (loopback only), against real peers: curl (TLS 1.3 and
//! 1.2, trusting the development CA), openssl s_client, raw sockets playing broken clients, and
//! the `http-fetch` binary.
//!
//! Every test starts its own `www` with `--port 0` (the kernel picks a free port, which the log
//! announces), so tests run in parallel without racing for ports.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use morgana::Key;
use sha2::{Digest, Sha256};

/// A file of the compiled-in site.
fn file(path: &str) -> &'static [u8] {
    www::site::HTDOCS.file(&Key::parse(path).unwrap()).unwrap().data
}

/// A directory of its own for a test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("www-hosted-{}-{n}-{what}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The development CA in a file, for `--cacert`, `-CAfile` and `--ca`.
fn dev_ca() -> (TempDir, String) {
    let dir = TempDir::new("ca");
    let path = dir.write("ca.pem", morgana_tls::dev::CA_PEM);
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

/// A running `www`, killed when dropped.
struct Www {
    child: Child,
    https: u16,
    http: Option<u16>,
    log: Arc<Mutex<Vec<String>>>,
}

/// The port in a log line `... PREFIX127.0.0.1:PORT/...`.
fn port_after(line: &str, prefix: &str) -> Option<u16> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    rest.strip_prefix("127.0.0.1:")?.split('/').next()?.parse().ok()
}

impl Www {
    /// Start `www` on loopback with `args`; wait until it announces its ports.
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_www"))
            .args(["--port", "0", "--ipv4", "127.0.0.1/8"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start www");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                lines.lock().unwrap().push(line);
            }
        });
        let wants_http = args.contains(&"--http-port");
        let (mut https, mut http) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while https.is_none() || (wants_http && http.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    https = https.or(port_after(&line, "serving https://"));
                    http = http
                        .or(port_after(&line, "redirecting http://"))
                        .or(port_after(&line, "serving http://"));
                }
                Err(_) => {
                    let _ = child.kill();
                    let out = child.wait_with_output().unwrap();
                    panic!(
                        "www did not announce its ports; log: {:?}; stderr: {}",
                        log.lock().unwrap(),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
        Self { child, https: https.unwrap(), http, log }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.https)
    }

    fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http.expect("started with --http-port"))
    }

    /// It is still running and serves the next request.
    fn assert_serving(&mut self, ca: &str, after: &str) {
        assert!(self.child.try_wait().unwrap().is_none(), "www exited after {after}");
        let out = curl(&["--cacert", ca, &self.url("/about.html")]);
        assert!(out.status.success(), "after {after}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, file("/about.html"), "after {after}");
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Www {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -sS` with a time limit and `args`.
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed (apt-get install -y curl)")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The value of header `name` in a header dump.
fn header(dump: &str, name: &str) -> Option<String> {
    dump.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

#[test]
fn curl_gets_pages_over_tls_1_3_and_1_2_trusting_the_dev_ca() {
    let (_dir, ca) = dev_ca();
    let www = Www::start(&[]);
    assert!(
        www.log().iter().any(|l| l.contains("using the built-in development certificate for localhost")),
        "{:?}",
        www.log()
    );
    for (versions, expect) in [
        (&["--tlsv1.3"][..], "SSL connection using TLSv1.3"),
        (&["--tlsv1.2", "--tls-max", "1.2"][..], "SSL connection using TLSv1.2"),
    ] {
        let mut args = vec!["-v", "--http1.1", "--cacert", &ca];
        args.extend_from_slice(versions);
        for (path, want) in
            [("/", "/index.html"), ("/docs/", "/docs/index.html"), ("/favicon.png", "/favicon.png")]
        {
            let url = www.url(path);
            let mut a = args.clone();
            a.push(&url);
            let out = curl(&a);
            let log = text(&out.stderr);
            assert!(out.status.success(), "{expect} {path}: {log}");
            assert!(log.contains(expect), "{log}");
            assert!(log.contains("ALPN: server accepted http/1.1"), "{log}");
            assert!(log.contains("SSL certificate verify ok"), "{log}");
            assert_eq!(out.stdout, file(want), "{expect} {path}");
        }
    }
    // Without the development CA, curl does not trust the certificate (exit 60).
    let out = curl(&[&www.url("/")]);
    assert_eq!(out.status.code(), Some(60), "{}", text(&out.stderr));
}

#[test]
fn curl_http1_0_over_tls_gets_pages_and_a_close_unless_it_asks_for_keep_alive() {
    let (_dir, ca) = dev_ca();
    let www = Www::start(&[]);
    let (about, css) = (www.url("/about.html"), www.url("/style.css"));
    // Plain HTTP/1.0: ALPN http/1.0, one connection per request, each closed by the server.
    let out = curl(&["-v", "--http1.0", "--cacert", &ca, "-D", "-", &about, &css]);
    let (log, dump) = (text(&out.stderr), text(&out.stdout));
    assert!(out.status.success(), "{log}");
    assert!(log.contains("ALPN: offers http/1.0") && log.contains("ALPN: server accepted http/1.0"), "{log}");
    assert_eq!(log.matches("Connected to 127.0.0.1").count(), 2, "no keep-alive unless asked: {log}");
    assert_eq!(dump.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{dump}");
    assert_eq!(dump.matches("\r\nConnection: close\r\n").count(), 2, "{dump}");
    assert!(out.stdout.ends_with(file("/style.css")), "{dump}");
    let mut want = file("/about.html").to_vec();
    want.extend_from_slice(file("/style.css"));
    let out = curl(&["--http1.0", "--cacert", &ca, &about, &css]);
    assert_eq!(out.stdout, want);
    // HTTP/1.0 with `Connection: keep-alive`: the server keeps the connection and says so.
    let out =
        curl(&["-v", "--http1.0", "-H", "Connection: keep-alive", "--cacert", &ca, "-D", "-", &about, &css]);
    let (log, dump) = (text(&out.stderr), text(&out.stdout));
    assert!(out.status.success(), "{log}");
    assert_eq!(log.matches("Connected to 127.0.0.1").count(), 1, "{log}");
    assert!(log.contains("Re-using existing connection"), "{log}");
    assert_eq!(dump.matches("\r\nConnection: keep-alive\r\n").count(), 2, "{dump}");
}

#[test]
fn curl_sees_404_range_304_and_head() {
    let (_dir, ca) = dev_ca();
    let www = Www::start(&[]);
    let css = file("/style.css");

    let out = curl(&["--cacert", &ca, "-o", "/dev/null", "-w", "%{http_code}", &www.url("/nope.html")]);
    assert_eq!(text(&out.stdout), "404");

    let out = curl(&["--cacert", &ca, "-D", "-", "-r", "0-9", &www.url("/style.css")]);
    let dump = text(&out.stdout);
    assert!(dump.starts_with("HTTP/1.1 206 Partial Content\r\n"), "{dump}");
    assert_eq!(header(&dump, "content-range"), Some(format!("bytes 0-9/{}", css.len())));
    assert!(out.stdout.ends_with(&css[..10]), "{dump}");

    let out = curl(&["--cacert", &ca, "-D", "-", "-o", "/dev/null", &www.url("/style.css")]);
    let etag = header(&text(&out.stdout), "etag").expect("an ETag");
    let inm = format!("If-None-Match: {etag}");
    let out = curl(&["--cacert", &ca, "-H", &inm, "-D", "-", &www.url("/style.css")]);
    let dump = text(&out.stdout);
    assert!(dump.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{dump}");
    assert!(dump.ends_with("\r\n\r\n"), "a 304 has no body: {dump}");
    let changed = curl(&["--cacert", &ca, "-H", "If-None-Match: \"other\"", &www.url("/style.css")]);
    assert_eq!(changed.stdout, css);

    let out = curl(&["--cacert", &ca, "-I", &www.url("/style.css")]);
    let dump = text(&out.stdout);
    assert!(dump.starts_with("HTTP/1.1 200 OK\r\n"), "{dump}");
    assert_eq!(header(&dump, "content-length"), Some(css.len().to_string()));
    assert_eq!(header(&dump, "content-type").as_deref(), Some("text/css; charset=utf-8"));
    assert!(dump.ends_with("\r\n\r\n"), "HEAD has no body: {dump}");
}

#[test]
fn curl_reuses_one_connection_for_several_urls() {
    let (_dir, ca) = dev_ca();
    let www = Www::start(&[]);
    let paths = ["/", "/about.html", "/style.css", "/logo.svg", "/nope"];
    let urls: Vec<String> = paths.iter().map(|p| www.url(p)).collect();
    let mut args = vec!["-v", "--cacert", &ca, "-w", "%{http_code}\n"];
    args.extend(urls.iter().map(String::as_str));
    let out = curl(&args);
    let log = text(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(log.matches("Connected to 127.0.0.1").count(), 1, "{log}");
    assert_eq!(log.matches("Re-using existing connection").count(), paths.len() - 1, "{log}");
    let mut want = Vec::new();
    for page in ["/index.html", "/about.html", "/style.css", "/logo.svg"] {
        want.extend_from_slice(file(page));
        want.extend_from_slice(b"200\n");
    }
    assert!(out.stdout.starts_with(&want), "{}", text(&out.stdout));
    assert!(out.stdout.ends_with(b"404\n"));
}

/// `openssl s_client` with `extra` arguments, sending `input` and reading until the server closes.
fn s_client(port: u16, ca: &str, extra: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-CAfile", ca])
        .args(["-verify_return_error", "-servername", "localhost", "-brief", "-ign_eof", "-nocommands"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (apt-get install -y openssl)");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // The server may close before it has read everything: a failed write is part of the test.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = wait_with_timeout(child, Duration::from_secs(20));
    let _ = writer.join();
    out
}

fn wait_with_timeout(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // Our own child, by its id.
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("process {pid} did not finish within {limit:?}");
        }
    }
}

#[test]
fn openssl_s_client_handshakes_and_gets_a_page() {
    let (_dir, ca) = dev_ca();
    let www = Www::start(&[]);
    let request = b"GET /about.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    for (extra, version) in [(&[][..], "TLSv1.3"), (&["-tls1_2"][..], "TLSv1.2")] {
        let out = s_client(www.https, &ca, extra, request);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains(&format!("Protocol version: {version}")), "{stderr}");
        assert!(stderr.contains("Verification: OK"), "{stderr}");
        assert!(stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{stdout}");
        assert!(out.stdout.ends_with(file("/about.html")), "{stdout}");
    }
}

#[test]
fn plain_http_redirects_and_curl_follows_it() {
    let (_dir, ca) = dev_ca();
    let www = Www::start(&["--http-port", "0"]);
    let out = curl(&["-D", "-", "-o", "/dev/null", &www.http_url("/about.html?x=1")]);
    let dump = text(&out.stdout);
    assert!(dump.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"), "{dump}");
    assert_eq!(header(&dump, "location"), Some(www.url("/about.html?x=1")));
    let out = curl(&[
        "-L",
        "--cacert",
        &ca,
        "-w",
        "\n%{http_code} %{num_redirects} %{url_effective}",
        &www.http_url("/about.html"),
    ]);
    let mut want = file("/about.html").to_vec();
    want.extend_from_slice(format!("\n200 1 {}", www.url("/about.html")).as_bytes());
    assert_eq!(text(&out.stdout), text(&want));
}

#[test]
fn plain_http_serves_the_site_with_http_serve() {
    let www = Www::start(&["--http-port", "0", "--http-serve"]);
    let out = curl(&["-w", "\n%{http_code} %{num_redirects}", &www.http_url("/style.css")]);
    let mut want = file("/style.css").to_vec();
    want.extend_from_slice(b"\n200 0");
    assert_eq!(text(&out.stdout), text(&want));
}

/// Send `data` on a fresh connection to `port` (the server may close before it has read it
/// all), half-close, and return what comes back before the server closes.
fn raw_exchange(port: u16, data: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let writer = {
        let mut w = s.try_clone().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            if w.write_all(&data).is_ok() {
                let _ = w.shutdown(Shutdown::Write);
            }
        })
    };
    let mut got = Vec::new();
    let result = s.read_to_end(&mut got);
    let _ = writer.join();
    if let Err(e) = result {
        // A reset is a closed connection too; a timeout is not.
        assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "the server neither answered nor closed");
    }
    got
}

/// A 1 MiB request head.
fn huge_head() -> Vec<u8> {
    let mut huge = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ".to_vec();
    huge.resize(1 << 20, b'a');
    huge.extend_from_slice(b"\r\n\r\n");
    huge
}

/// An error status or nothing (a closed connection), never a page.
fn error_or_closed(reply: &[u8], status: &str) {
    let reply = text(reply);
    assert!(reply.is_empty() || reply.starts_with(&format!("HTTP/1.1 {status} ")), "{reply}");
}

#[test]
fn malformed_requests_over_plain_http_get_an_error_or_a_close() {
    let (_dir, ca) = dev_ca();
    let mut www = Www::start(&["--http-port", "0"]);
    let port = www.http.unwrap();
    let reply = raw_exchange(port, b"\x00\x01garbage\r\n\r\n");
    assert!(text(&reply).starts_with("HTTP/1.1 400 Bad Request\r\n"), "{}", text(&reply));
    www.assert_serving(&ca, "garbage");
    error_or_closed(&raw_exchange(port, &huge_head()), "431");
    www.assert_serving(&ca, "a 1 MiB header");
    error_or_closed(
        &raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"),
        "413",
    );
    www.assert_serving(&ca, "a huge body");
    // Plain HTTP on the TLS port: the handshake fails, the connection closes.
    let reply = raw_exchange(www.https, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(!text(&reply).contains("HTTP/1.1"), "{}", text(&reply));
    www.assert_serving(&ca, "plain HTTP on the TLS port");
}

type Session = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS session to `port` over a socket, trusting the development CA.
fn tls_session(port: u16) -> Session {
    try_tls_session(port).unwrap()
}

/// [`tls_session`], with what failed.
fn try_tls_session(port: u16) -> Result<Session, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(morgana_tls::certs_from_pem(morgana_tls::dev::CA_PEM, "ca").unwrap().remove(0)).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = "localhost".try_into().unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(|e| format!("TLS handshake: {e}"))?;
    }
    Ok(tls)
}

/// GET `path` on a keep-alive session: the status line and the body.
fn keep_alive_get(tls: &mut Session, path: &str) -> Result<(String, Vec<u8>), String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tls.write_all(request.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match tls.read(&mut buf) {
            Ok(0) => return Err(format!("closed after {:?}", text(&got))),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    };
    let head = text(&got[..head_end]);
    let len: usize = header(&head, "content-length").and_then(|v| v.parse().ok()).ok_or(head.clone())?;
    while got.len() < head_end + len {
        match tls.read(&mut buf) {
            Ok(0) => return Err("closed in the body".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, got[head_end..head_end + len].to_vec()))
}

#[test]
fn at_max_connections_new_clients_wait_in_the_backlog_and_are_served_once_others_close() {
    let mut www = Www::start(&["--max-connections", "4"]);
    let about = file("/about.html");
    let ok = |r: Result<(String, Vec<u8>), String>| {
        let (status, body) = r.unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, about);
    };
    let mut open: Vec<Session> = (0..4).map(|_| tls_session(www.https)).collect();
    for tls in &mut open {
        ok(keep_alive_get(tls, "/about.html"));
    }
    // Two more: connected (the kernel's backlog holds them) but not served while four are open.
    let (tx, rx) = mpsc::channel();
    for n in 5..=6 {
        let (tx, port) = (tx.clone(), www.https);
        std::thread::spawn(move || {
            let got = try_tls_session(port).and_then(|mut tls| keep_alive_get(&mut tls, "/about.html"));
            let _ = tx.send((n, got));
        });
    }
    // However slow the machine, nothing may come back while the four stay open: neither a page
    // nor a reset.
    if let Ok((n, got)) = rx.recv_timeout(Duration::from_secs(2)) {
        panic!("client {n} got an answer while 4 connections were open: {got:?}");
    }
    // The open ones are still served.
    for tls in &mut open {
        ok(keep_alive_get(tls, "/about.html"));
    }
    assert!(www.child.try_wait().unwrap().is_none(), "www exited");
    // Two close (close_notify, then FIN): the two waiting clients get their pages.
    for mut tls in open.drain(..2) {
        tls.conn.send_close_notify();
        let _ = tls.conn.complete_io(&mut tls.sock);
        let _ = tls.sock.shutdown(Shutdown::Both);
    }
    for _ in 5..=6 {
        let (n, got) = rx.recv_timeout(Duration::from_secs(30)).expect("the waiting clients are served");
        assert!(got.is_ok(), "client {n}: {got:?}");
        ok(got);
    }
    let log = www.log();
    let limit: Vec<&String> = log.iter().filter(|l| l.contains("--max-connections")).collect();
    assert_eq!(limit.len(), 1, "the limit is reported once, not per connection: {log:?}");
    assert!(
        limit[0].contains("4 connections open, the --max-connections limit: accepting paused"),
        "{log:?}"
    );
    assert!(!log.iter().any(|l| l.contains("refused")), "{log:?}");
    let (_dir, ca) = dev_ca();
    drop(open);
    www.assert_serving(&ca, "the limit");
}

#[test]
fn malformed_requests_and_records_over_tls_get_an_error_or_a_close() {
    let (_dir, ca) = dev_ca();
    let mut www = Www::start(&[]);
    let out = s_client(www.https, &ca, &[], b"\x00\x01garbage\r\n\r\n");
    assert!(text(&out.stdout).starts_with("HTTP/1.1 400 Bad Request\r\n"), "{}", text(&out.stdout));
    www.assert_serving(&ca, "garbage over TLS");

    let out = s_client(www.https, &ca, &[], &huge_head());
    error_or_closed(&out.stdout, "431");
    www.assert_serving(&ca, "a 1 MiB header over TLS");

    // A truncated TLS record in the handshake (a ClientHello header promising 512 bytes), then FIN.
    let reply = raw_exchange(www.https, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]);
    assert!(!text(&reply).contains("HTTP/1.1"));
    www.assert_serving(&ca, "a truncated handshake record");

    // A truncated application-data record in an established session, then FIN.
    let mut tls = tls_session(www.https);
    tls.sock.write_all(&[0x17, 0x03, 0x03, 0x00, 0x40, 1, 2, 3]).unwrap();
    tls.sock.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = tls.sock.read_to_end(&mut rest);
    assert!(!text(&rest).contains("HTTP/1.1"));
    www.assert_serving(&ca, "a truncated application-data record");

    // A forged record (not decryptable) in an established session.
    let mut tls = tls_session(www.https);
    tls.sock.write_all(&[0x17, 0x03, 0x03, 0x00, 0x20]).unwrap();
    tls.sock.write_all(&[0x55; 0x20]).unwrap();
    // The server answers with a fatal alert (encrypted in TLS 1.3) and closes; never data.
    let mut rest = Vec::new();
    let read = tls.read_to_end(&mut rest);
    let err = read.expect_err("the session fails").to_string();
    assert!(err.contains("BadRecordMac"), "{err}");
    assert!(rest.is_empty());
    www.assert_serving(&ca, "a forged record");

    // A well-behaved session on the same kind of socket still works.
    let mut tls = tls_session(www.https);
    tls.write_all(b"GET /logo.svg HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply);
    assert!(reply.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(reply.ends_with(file("/logo.svg")));
}

/// `www` started by `sh` after `ulimit -n LIMIT` (soft and hard), with `args`.
fn www_with_fd_limit(limit: u32, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_www"))
        .args(["--port", "0", "--ipv4", "127.0.0.1/8"])
        .args(args);
    cmd
}

#[test]
fn out_of_file_descriptors_new_clients_wait_and_the_limit_is_reported_in_one_line() {
    // The hard limit below --max-connections: one warning line at start.
    let mut child = www_with_fd_limit(40, &["--max-connections", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let port = loop {
        let line = rx.recv_timeout(Duration::from_secs(20)).expect("www announces its port");
        log.push(line.clone());
        if let Some(port) = port_after(&line, "serving https://") {
            break port;
        }
    };
    let warning: Vec<&String> = log.iter().filter(|l| l.contains("RLIMIT_NOFILE")).collect();
    assert_eq!(warning.len(), 1, "{log:?}");
    assert!(warning[0].contains(
        "--max-connections 200 needs about 264 open files, but the hard limit (RLIMIT_NOFILE) is 40"
    ));
    // More sessions than descriptors: those beyond wait in the backlog, none is reset, and all
    // are served as the first ones close.
    let (done_tx, done_rx) = mpsc::channel();
    for n in 0..60 {
        let done_tx = done_tx.clone();
        std::thread::spawn(move || {
            let got = try_tls_session(port).and_then(|mut tls| {
                let page = keep_alive_get(&mut tls, "/about.html");
                // Hold the connection a moment, so that the descriptors run out.
                std::thread::sleep(Duration::from_millis(500));
                page
            });
            let _ = done_tx.send((n, got));
        });
    }
    for _ in 0..60 {
        let (n, got) = done_rx.recv_timeout(Duration::from_secs(60)).expect("every client is served");
        let (status, body) = got.unwrap_or_else(|e| panic!("client {n}: {e}"));
        assert_eq!((status.as_str(), body.as_slice()), ("HTTP/1.1 200 OK", file("/about.html")));
    }
    let _ = child.kill();
    let _ = child.wait();
    log.extend(rx.try_iter());
    let out_of_fds = log.iter().filter(|l| l.contains("accept: out of resources")).count();
    assert!((1..=2).contains(&out_of_fds), "reported once (and at most once per 10 s): {log:?}");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_idle_timeout_and_frees_its_slot() {
    let www = Www::start(&["--max-connections", "1", "--idle-timeout", "1"]);
    let mut first = tls_session(www.https);
    assert_eq!(keep_alive_get(&mut first, "/about.html").unwrap().1, file("/about.html"));
    let port = www.https;
    let second = std::thread::spawn(move || {
        try_tls_session(port).and_then(|mut tls| keep_alive_get(&mut tls, "/style.css"))
    });
    // The first sends nothing more: after a second the server ends it with close_notify.
    let mut rest = Vec::new();
    let started = Instant::now();
    first.read_to_end(&mut rest).expect("a clean close (close_notify), not a reset or a timeout");
    assert!(rest.is_empty());
    assert!(started.elapsed() < Duration::from_secs(25), "closed by the idle timeout, not the read timeout");
    // Its slot goes to the client that waited.
    assert_eq!(second.join().unwrap().unwrap().1, file("/style.css"));
}

/// `target/<profile>/http-fetch`, next to the `www` binary: `cargo test --workspace` builds it.
fn http_fetch_binary() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_www")).with_file_name("http-fetch");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p http-fetch), or run cargo test --workspace",
        bin.display()
    );
    bin
}

#[test]
fn http_fetch_binary_fetches_from_the_www_binary() {
    let (_dir, ca) = dev_ca();
    let www = Www::start(&[]);
    let url = format!("https://localhost:{}/logo.svg", www.https);
    let out = Command::new(http_fetch_binary()).args(["--url", &url, "--ca", &ca]).output().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let logo = file("/logo.svg");
    let sha: String = Sha256::digest(logo).iter().map(|b| format!("{b:02x}")).collect();
    assert!(stdout.contains("HTTP/1.1 200 OK\n"), "{stdout}");
    assert!(stdout.contains("Content-Type: image/svg+xml\n"), "{stdout}");
    assert!(stdout.contains(&format!("Content-Length: {}\n", logo.len())), "{stdout}");
    assert!(stdout.contains(&format!("sha256 {sha} ({} bytes)\n", logo.len())), "{stdout}");

    let missing = format!("https://localhost:{}/missing", www.https);
    let out = Command::new(http_fetch_binary()).args(["--url", &missing, "--ca", &ca]).output().unwrap();
    assert!(text(&out.stdout).contains("HTTP/1.1 404 Not Found\n"), "{}", text(&out.stdout));

    // --dev-ca trusts the same CA without a file; --resolve pins the certificate's name to an
    // address (here the one it has anyway, so the check is that the pin is used and logged).
    let out = Command::new(http_fetch_binary())
        .args(["--url", &url, "--dev-ca", "--resolve", "localhost:127.0.0.1"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("trusting the built-in development CA (--dev-ca)"), "{stdout}");
    assert!(stdout.contains("--resolve: localhost is 127.0.0.1\n"), "{stdout}");
    assert!(stdout.contains(&format!("sha256 {sha} ({} bytes)\n", logo.len())), "{stdout}");

    // https without a CA: one line that says what to add.
    let out = Command::new(http_fetch_binary()).args(["--url", &url]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "http-fetch: an https URL needs --ca FILE or --dev-ca (there is no built-in trust store)\n"
    );
}

#[test]
fn certificates_and_site_from_directories() {
    let (_dir, ca) = dev_ca();
    let certs = TempDir::new("certs");
    certs.write("server.pem", morgana_tls::dev::CHAIN_PEM);
    certs.write("server.key", morgana_tls::dev::KEY_PEM);
    let site = TempDir::new("site");
    site.write("hello.txt", b"hello from a directory\n");
    let www = Www::start(&["--certs", certs.path(), "--kv", site.path()]);
    let out = curl(&["--cacert", &ca, "-D", "-", &www.url("/hello.txt")]);
    let dump = text(&out.stdout);
    assert!(
        dump.starts_with("HTTP/1.1 200 OK\r\n") && dump.ends_with("\r\n\r\nhello from a directory\n"),
        "{dump}"
    );
    assert_eq!(header(&dump, "content-type").as_deref(), Some("text/plain; charset=utf-8"));
    let out = curl(&["--cacert", &ca, "-o", "/dev/null", "-w", "%{http_code}", &www.url("/index.html")]);
    assert_eq!(text(&out.stdout), "404", "only the directory is served");
    assert!(!www.log().iter().any(|l| l.contains("development certificate")), "{:?}", www.log());

    // Bad directories: one line each, and no start.
    let www_bin = env!("CARGO_BIN_EXE_www");
    let out = Command::new(www_bin).args(["--port", "0", "--certs", "/nonexistent/certs"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("www: --certs /nonexistent/certs: ") && err.lines().count() == 1, "{err}");
    let empty = TempDir::new("empty");
    let out = Command::new(www_bin).args(["--port", "0", "--certs", empty.path()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("/server.pem: not found (--certs DIR needs DIR/server.pem"), "{err}");
    let out = Command::new(www_bin).args(["--http-serve"]).output().unwrap();
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (
            Some(2),
            "www: --http-serve serves the site on the plain HTTP port: add --http-port PORT (e.g. 8080)\n"
                .into()
        )
    );
    let out = Command::new(www_bin).args(["--port", "0", "--kv", "/nonexistent/site"]).output().unwrap();
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(1), "www: --kv /nonexistent/site: no such directory\n".into())
    );
}

#[test]
fn the_site_from_a_tar_image_made_by_tar() {
    let (_dir, ca) = dev_ca();
    let site = TempDir::new("tar-site");
    std::fs::create_dir_all(site.0.join("deep/er")).unwrap();
    site.write("index.html", b"<h1>served from a tar image</h1>\n");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    site.write("deep/er/blob.bin", &big);
    let long = format!("deep/{}.txt", "n".repeat(150));
    site.write(&long, b"a name past ustar's 100 bytes");
    let image = TempDir::new("tar-image");
    let tar_file = image.0.join("site.tar");
    let out = Command::new("tar").arg("-cf").arg(&tar_file).args(["-C", site.path(), "."]).output();
    let out = out.expect("GNU tar is installed (apt-get install tar)");
    assert!(out.status.success(), "tar: {}", text(&out.stderr));
    let www = Www::start(&["--block", tar_file.to_str().unwrap()]);
    assert!(
        www.log().iter().any(|l| l.contains("site.tar: serving a tar image of 3 files")),
        "{:?}",
        www.log()
    );
    let out = curl(&["--cacert", &ca, &www.url("/")]);
    assert_eq!(text(&out.stdout), "<h1>served from a tar image</h1>\n", "{}", text(&out.stderr));
    let out = curl(&["--cacert", &ca, &www.url("/deep/er/blob.bin")]);
    assert!(out.stdout == big, "the 200 kB member byte for byte ({} bytes)", out.stdout.len());
    let out = curl(&["--cacert", &ca, "-r", "1000-1999", &www.url("/deep/er/blob.bin")]);
    assert!(out.stdout == big[1000..2000], "a Range from the middle of the member");
    let out = curl(&["--cacert", &ca, &www.url(&format!("/{long}"))]);
    assert_eq!(text(&out.stdout), "a name past ustar's 100 bytes");
    let out = curl(&["--cacert", &ca, "-o", "/dev/null", "-w", "%{http_code}", &www.url("/about.html")]);
    assert_eq!(text(&out.stdout), "404", "only the image is served");

    // A file that is no tar image, and none at all: one line each, and no start.
    let www_bin = env!("CARGO_BIN_EXE_www");
    let junk = image.write("junk.tar", &[0x5a; 4096]);
    let out = Command::new(www_bin).args(["--port", "0", "--block"]).arg(&junk).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.ends_with(
            "junk.tar: not a tar image, or a damaged one: the header at byte 0 fails its checksum\n"
        ) && err.lines().count() == 1,
        "{err}"
    );
    let out =
        Command::new(www_bin).args(["--port", "0", "--block", "/nonexistent/site.tar"]).output().unwrap();
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(1), "www: --block /nonexistent/site.tar: no such file\n".into())
    );
    let out = Command::new(www_bin).args(["--block", "x.tar", "--kv", "."]).output().unwrap();
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(2), "www: --kv and --block both name the store: give one of them\n".into())
    );
}

/// The counter `name` (`group.counter`) in a counters line.
fn counter(line: &str, name: &str) -> Option<u64> {
    line.split(' ').find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

/// The first log line from `from` on that contains `needle` and passes `ok`, waiting up to
/// `limit` for it.
fn wait_for_line(w: &Www, from: usize, needle: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(l) = w.log().into_iter().skip(from).find(|l| l.contains(needle) && ok(l)) {
            return l;
        }
        assert!(Instant::now() < deadline, "no '{needle}' line as expected within {limit:?}: {:?}", w.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(w: &Www, name: &str) {
    let pid = w.child.id().to_string();
    let status = Command::new("kill").args([&format!("-{name}"), &pid]).status().expect("kill(1)");
    assert!(status.success(), "kill -{name} {pid}");
}

#[test]
fn counters_move_in_the_stats_interval_line_and_are_printed_on_sigusr1_and_at_exit() {
    let (_dir, ca) = dev_ca();
    let w = Www::start(&["--stats-interval", "1"]);
    let first = wait_for_line(&w, 0, "stats: ", Duration::from_secs(5), |_| true);
    for name in ["tls.handshakes", "tls.failed", "http.2xx", "http.4xx"] {
        assert_eq!(counter(&first, name), Some(0), "{name} before any client: {first}");
    }
    for path in ["/", "/about.html", "/nope"] {
        let out = curl(&["--cacert", &ca, "-o", "/dev/null", &w.url(path)]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // A client that is not TLS: a failed handshake.
    let mut raw = TcpStream::connect(("127.0.0.1", w.https)).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let _ = raw.read(&mut [0u8; 64]);
    let from = w.log().len();
    let moved = wait_for_line(&w, from, "stats: ", Duration::from_secs(5), |l| {
        counter(l, "tls.handshakes") == Some(3)
    });
    assert_eq!(counter(&moved, "http.2xx"), Some(2), "{moved}");
    assert_eq!(counter(&moved, "http.4xx"), Some(1), "{moved}");
    assert_eq!(counter(&moved, "tls.failed"), Some(1), "{moved}");
    assert_eq!(counter(&moved, "tls.open"), Some(0), "curl closed its connections: {moved}");
    let interval = w.log().iter().filter(|l| l.contains("stats: ")).count();
    assert!(interval >= 2, "one line per second: {:?}", w.log());

    // Without an interval: nothing until asked, a line on SIGUSR1, the summary on SIGTERM.
    let mut w = Www::start(&[]);
    let out = curl(&["--cacert", &ca, "-o", "/dev/null", &w.url("/")]);
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(!w.log().iter().any(|l| l.contains("stats: ")), "no line unasked: {:?}", w.log());
    signal(&w, "USR1");
    let asked = wait_for_line(&w, 0, "stats: ", Duration::from_secs(5), |_| true);
    assert_eq!(counter(&asked, "tls.handshakes"), Some(1), "{asked}");
    signal(&w, "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = w.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "www did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(143), "128 + SIGTERM");
    let exit = wait_for_line(&w, 0, "stats at exit: ", Duration::from_secs(5), |_| true);
    assert_eq!(counter(&exit, "http.2xx"), Some(1), "{exit}");
}
