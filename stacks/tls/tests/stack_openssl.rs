//! `apps/echo` over `TlsStack` on the hosted socket stack, against a real peer: `openssl
//! s_client` on loopback, with a silent TCP client holding a handshake place meanwhile.
//! (A `morgana_netns::Suite`: without openssl the test is reported as ignored, with one line.)

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::pin::pin;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use futures::future::{Either, select};
use morgana::{Clock, Duration, Platform};
use morgana_netns::{Need, Suite, TempDir, free_port};
use morgana_tls::{TlsStack, dev};
use morgana_unix::{Runtime, SocketStack};

/// What the s_client side saw.
struct Seen {
    echoed: String,
    status: Option<i32>,
    summary: String,
    served_after: StdDuration,
    silent_cut_after: StdDuration,
}

/// The clients, run on a thread: blocking sockets and a child process.
fn clients(port: u16, ca: &std::path::Path) -> Seen {
    let start = StdInstant::now();
    let mut silent = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    silent.set_read_timeout(Some(StdDuration::from_secs(20))).unwrap();
    let mut s_client = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost"])
        .args(["-CAfile", ca.to_str().unwrap(), "-verify_return_error", "-brief"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = s_client.stdin.take().unwrap();
    stdin.write_all(b"ping over TLS\n").unwrap();
    stdin.flush().unwrap();
    let mut echoed = String::new();
    BufReader::new(s_client.stdout.take().unwrap()).read_line(&mut echoed).unwrap();
    let served_after = start.elapsed();
    // End of input: s_client sends close_notify and exits.
    drop(stdin);
    let status = s_client.wait().unwrap().code();
    let mut summary = String::new();
    s_client.stderr.take().unwrap().read_to_string(&mut summary).unwrap();
    let mut buf = [0u8; 16];
    let n = silent.read(&mut buf).unwrap_or(usize::MAX);
    assert_eq!(n, 0, "the silent client's connection is closed, not timed out on our side");
    Seen { echoed, status, summary, served_after, silent_cut_after: start.elapsed() }
}

fn openssl_s_client_is_echoed_while_a_silent_client_is_cut_at_the_deadline() {
    let dir = TempDir::new("tls-stack");
    std::fs::write(dir.join("ca.pem"), dev::CA_PEM).unwrap();
    let ca = dir.join("ca.pem");
    let mut rt = Runtime::new().unwrap();
    let p = rt.platform();
    let provider = Arc::new(morgana_tls::rustls::crypto::ring::default_provider());
    let tls = TlsStack::new(SocketStack::with_ipv4(Ipv4Addr::LOCALHOST), p.clock())
        .with_identity(provider, dev::identity().unwrap())
        .unwrap()
        .with_handshake_timeout(Duration::from_secs(2));
    let port = free_port();
    let clock = p.clock();
    let server = echo::start(p, tls, echo::Config { port, backlog: 16 });
    let (done, seen) = mpsc::channel();
    let waiting = async {
        // `select` polls the server first, so it listens before the thread connects.
        std::thread::spawn(move || done.send(clients(port, &ca)));
        loop {
            match seen.try_recv() {
                Ok(seen) => break seen,
                Err(mpsc::TryRecvError::Empty) => clock.sleep(Duration::from_millis(20)).await,
                Err(mpsc::TryRecvError::Disconnected) => panic!("the client thread failed (see above)"),
            }
        }
    };
    let seen = rt
        .block_on(async {
            match select(pin!(server), pin!(waiting)).await {
                Either::Left((stopped, _)) => panic!("echo stopped: {stopped:?}"),
                Either::Right((seen, _)) => seen,
            }
        })
        .unwrap();
    assert_eq!(seen.echoed, "ping over TLS\n", "s_client said: {}", seen.summary);
    assert_eq!(seen.status, Some(0), "s_client said: {}", seen.summary);
    assert!(seen.summary.contains("Verification: OK"), "{}", seen.summary);
    assert!(seen.served_after < StdDuration::from_secs(2), "served after {:?}", seen.served_after);
    let cut = seen.silent_cut_after;
    assert!(
        cut >= StdDuration::from_secs(2) && cut < StdDuration::from_secs(4),
        "silent client cut after {cut:?}"
    );
}

fn main() -> ExitCode {
    let mut suite = Suite::new();
    suite.test(
        "openssl_s_client_is_echoed_while_a_silent_client_is_cut_at_the_deadline",
        &[Need::program("openssl", "openssl")],
        openssl_s_client_is_echoed_while_a_silent_client_is_cut_at_the_deadline,
    );
    suite.run()
}
