//! morgana-tls against a real peer: `openssl s_client` and `openssl s_server` on loopback, through
//! a minimal blocking Flow over `std::net::TcpStream`.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use embedded_io_async::{Read, Write};
use futures::executor::block_on;
use morgana::{Flow, FlowWrite, StackError};
use morgana_rt::{Executor, Handle, VirtualTime};
use morgana_tls::rustls::ProtocolVersion;
use morgana_tls::{TlsClient, TlsServer, TlsTime, client_config, dev, roots_from_pem, server_config};

/// A blocking TCP stream as a Flow: each call completes before it returns, so any executor
/// (here `futures::executor::block_on`) drives it.
struct StdFlow(TcpStream);

fn io_err(e: std::io::Error) -> StackError {
    StackError::Io(e.raw_os_error().unwrap_or(-1))
}

impl embedded_io::ErrorType for StdFlow {
    type Error = StackError;
}

impl Read for StdFlow {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, StackError> {
        self.0.read(buf).map_err(io_err)
    }
}

impl Write for StdFlow {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, StackError> {
        self.0.write(buf).map_err(io_err)
    }
    async fn flush(&mut self) -> Result<(), StackError> {
        Ok(())
    }
}

impl FlowWrite for StdFlow {
    async fn shutdown_write(&mut self) -> Result<(), StackError> {
        self.0.shutdown(Shutdown::Write).map_err(io_err)
    }
}

impl Flow for StdFlow {
    type ReadHalf = StdFlow;
    type WriteHalf = StdFlow;
    fn split(self) -> (StdFlow, StdFlow) {
        let other = self.0.try_clone().expect("clone a socket");
        (self, StdFlow(other))
    }
}

/// Kills the child on drop, so a failing test leaves no openssl behind.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory with the development CA, certificate and key as files.
fn cert_dir() -> PathBuf {
    // One per call: the tests run in parallel and each removes its own when done.
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("morgana-tls-openssl-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), dev::CA_PEM).unwrap();
    std::fs::write(dir.join("server.pem"), dev::CHAIN_PEM).unwrap();
    std::fs::write(dir.join("server.key"), dev::KEY_PEM).unwrap();
    dir
}

fn openssl() -> Command {
    if Command::new("openssl").arg("version").output().is_err() {
        panic!("openssl is needed for this test: apt-get install -y openssl");
    }
    Command::new("openssl")
}

/// A wall clock for rustls: the executor's virtual time (2026) is within the certificate's
/// validity; these tests never sleep.
fn clock() -> Handle<VirtualTime> {
    Executor::new(VirtualTime::new()).handle()
}

fn provider() -> Arc<morgana_tls::rustls::crypto::CryptoProvider> {
    Arc::new(morgana_tls::rustls::crypto::ring::default_provider())
}

#[test]
fn openssl_s_client_talks_to_our_server_with_tls13_and_tls12() {
    let dir = cert_dir();
    for (flag, version) in [("-tls1_3", ProtocolVersion::TLSv1_3), ("-tls1_2", ProtocolVersion::TLSv1_2)] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = Reap(
            openssl()
                .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost"])
                .args(["-CAfile", dir.join("ca.pem").to_str().unwrap(), "-verify_return_error"])
                .args(["-alpn", "http/1.1", flag, "-quiet"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        client.0.stdin.as_mut().unwrap().write_all(b"ping from openssl\n").unwrap();
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let clock = clock();
        let time = TlsTime::new(clock.clone());
        let config = server_config(provider(), &time, dev::identity().unwrap()).unwrap();
        let server = TlsServer::new(Arc::new(config), time);
        let (got, negotiated, alpn) = block_on(async {
            let mut tls = server.accept(StdFlow(sock)).await.expect("handshake with s_client");
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while !got.ends_with(b"\n") {
                let n = tls.read(&mut buf).await.unwrap();
                assert!(n > 0, "s_client closed early");
                got.extend_from_slice(&buf[..n]);
            }
            tls.write_all(b"pong from morgana\n").await.unwrap();
            let negotiated = tls.protocol_version();
            let alpn = tls.alpn_protocol();
            tls.close().await.unwrap();
            (got, negotiated, alpn)
        });
        assert_eq!(got, b"ping from openssl\n");
        assert_eq!(negotiated, Some(version));
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        let out = wait_output(client, Duration::from_secs(10));
        assert!(out.contains("pong from morgana"), "s_client {flag} printed: {out:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Wait for the child to exit (killing it after `limit`) and return its stdout.
fn wait_output(mut child: Reap, limit: Duration) -> String {
    let start = StdInstant::now();
    while child.0.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.0.kill();
    let mut out = String::new();
    child.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    out
}

/// `openssl s_server` on a free loopback port, and a connection to it. Another process may take
/// the port between our probe and s_server's bind, so a server that exits at once is started
/// again on a new port.
fn s_server(dir: &std::path::Path, flag: &str) -> (Reap, TcpStream) {
    for _attempt in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Reap(
            openssl()
                .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-naccept", "1", "-www"])
                .args(["-cert", dir.join("server.pem").to_str().unwrap()])
                .args(["-key", dir.join("server.key").to_str().unwrap(), "-alpn", "http/1.1", flag])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let start = StdInstant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(sock) = TcpStream::connect(("127.0.0.1", port)) {
                return (server, sock);
            }
            if server.0.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("openssl s_server did not start in five attempts");
}

#[test]
fn our_client_talks_to_openssl_s_server_with_tls13_and_tls12() {
    let dir = cert_dir();
    for (flag, version) in [("-tls1_3", ProtocolVersion::TLSv1_3), ("-tls1_2", ProtocolVersion::TLSv1_2)] {
        let (_server, sock) = s_server(&dir, flag);
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let clock = clock();
        let time = TlsTime::new(clock.clone());
        let roots = roots_from_pem(dev::CA_PEM, "dev CA").unwrap();
        let client = TlsClient::new(Arc::new(client_config(provider(), &time, roots).unwrap()), time);
        let (page, negotiated, end) = block_on(async {
            let mut tls = client.connect("localhost", StdFlow(sock)).await.expect("handshake with s_server");
            tls.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
            let negotiated = tls.protocol_version();
            let mut page = Vec::new();
            let mut buf = [0u8; 4096];
            let end = loop {
                match tls.read(&mut buf).await {
                    Ok(0) => break Ok(()),
                    Ok(n) => page.extend_from_slice(&buf[..n]),
                    Err(e) => break Err(e),
                }
            };
            (String::from_utf8_lossy(&page).into_owned(), negotiated, end)
        });
        assert_eq!(negotiated, Some(version));
        assert!(page.starts_with("HTTP/1.0 200 ok"), "{page}");
        let name = if version == ProtocolVersion::TLSv1_3 { "TLSv1.3" } else { "TLSv1.2" };
        assert!(page.contains(name), "s_server reports the protocol it saw: {page}");
        // s_server ends the page with close_notify: a clean end, not a truncation.
        assert!(end.is_ok(), "{end:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
