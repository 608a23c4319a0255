//! `echo` as a process on host sockets, with plain TCP clients: what
//! `cargo xtask run echo -- --port 18007` does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// A running echo process, killed on drop; its log lines arrive on `lines`.
struct Echo {
    child: Child,
    lines: Receiver<String>,
    addr: SocketAddr,
}

impl Echo {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_echo"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines.recv_timeout(Duration::from_secs(10)).expect("echo says where it listens");
        let port: u16 = first.rsplit(':').next().unwrap().parse().unwrap_or_else(|_| panic!("{first}"));
        assert!(first.contains("listening on "), "{first}");
        Self { child, lines, addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }

    /// Log lines received so far (waiting up to `wait` for `count` of them).
    fn log(&self, count: usize, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < count {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => out.push(l),
                Err(_) => break,
            }
        }
        out
    }

    /// CPU time the process has used, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name (which may contain spaces): state is field 3.
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send `data`, half-close, read everything back.
fn exchange(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    let body = data.to_vec();
    let writer = std::thread::spawn(move || {
        w.write_all(&body).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    back
}

fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn serves_port_18007_without_root_and_echoes_1_mib_from_netcat() {
    // Unprivileged port, no TAP, no setup: what `cargo xtask run echo -- --port 18007` runs.
    let echo = Echo::start(&["--port", "18007"]);
    assert_eq!(echo.addr.port(), 18007);
    let data = payload(1 << 20, 7);
    let file = std::env::temp_dir().join(format!("morgana-echo-{}.bin", std::process::id()));
    std::fs::write(&file, &data).unwrap();
    // netcat-openbsd: -N closes the sending side at end of input, as a plain client does.
    let out = Command::new("nc")
        .args(["-N", "-w", "10", "127.0.0.1", "18007"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("nc (netcat-openbsd)");
    std::fs::remove_file(&file).unwrap();
    assert!(out.stdout == data, "1 MiB came back byte-exact ({} bytes)", out.stdout.len());
    // And from a Rust client, writing while it reads.
    assert!(exchange(echo.addr, &data) == data);
    let log = echo.log(4, Duration::from_secs(5));
    assert!(log[0].contains("connection 1 from 127.0.0.1:"), "{log:?}");
    assert!(log.iter().any(|l| l.contains("closed: 1048576 bytes echoed")), "{log:?}");
}

#[test]
fn a_hundred_concurrent_clients_all_succeed() {
    let echo = Echo::start(&["--port", "0"]);
    let start = Arc::new(Barrier::new(100));
    let clients: Vec<_> = (0..100u64)
        .map(|i| {
            let (addr, start) = (echo.addr, start.clone());
            std::thread::spawn(move || {
                let data = payload(20_000 + i as usize, i);
                start.wait();
                exchange(addr, &data) == data
            })
        })
        .collect();
    let ok = clients.into_iter().map(|c| c.join().unwrap()).filter(|ok| *ok).count();
    assert_eq!(ok, 100, "every client got its bytes back");
    let log = echo.log(200, Duration::from_secs(10));
    assert_eq!(log.iter().filter(|l| l.contains(" from 127.0.0.1:") && !l.contains("closed")).count(), 100);
    assert_eq!(log.iter().filter(|l| l.contains("bytes echoed")).count(), 100, "each connection is logged");
}

#[test]
fn an_idle_server_uses_less_than_2_percent_cpu() {
    let echo = Echo::start(&["--port", "0"]);
    // Serve one connection first: a finished connection must not leave anything spinning.
    assert_eq!(exchange(echo.addr, b"warm up"), b"warm up");
    std::thread::sleep(Duration::from_millis(200));
    let hz: u64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100);
    let (before, t0) = (echo.cpu_ticks(), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let (used, wall) = (echo.cpu_ticks() - before, t0.elapsed());
    let percent = used as f64 / hz as f64 / wall.as_secs_f64() * 100.0;
    println!("idle echo: {used} ticks of CPU in {wall:?} = {percent:.2} %");
    assert!(percent < 2.0, "idle echo used {percent:.2} % CPU");
}

#[test]
fn start_failures_are_one_line() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_echo")).args(args).output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!stderr.contains("panicked") && stderr.lines().count() == 1, "{stderr}");
        (out.status.code(), stderr.trim_end().to_string())
    };
    assert_eq!(
        run(&["--port", "http"]),
        (Some(2), "echo: --port: expected a number from 0 to 65535, got \"http\"".into())
    );
    let (code, msg) = run(&["--net", "tun0"]);
    assert_eq!(code, Some(2));
    assert!(msg.starts_with("echo: --net: expected socket or tap:IFNAME"), "{msg}");
    let busy = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    assert_eq!(
        run(&["--port", &port]),
        (Some(1), format!("error: cannot listen on TCP port {port}: address already in use"))
    );
}

#[test]
fn ipv4_picks_the_listening_address() {
    let echo = Echo::start(&["--port", "0", "--ipv4", "127.0.0.1/8"]);
    assert_eq!(exchange(echo.addr, b"only on loopback"), b"only on loopback");
    let listening = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let hex_port = format!(":{:04X} ", echo.addr.port());
    assert!(listening.lines().any(|l| l.contains(&format!("0100007F{hex_port}"))), "bound to 127.0.0.1 only");
}

#[test]
fn a_privileged_port_without_the_privilege_says_so() {
    // As root, drop CAP_NET_BIND_SERVICE; as a user, the port is privileged already.
    let mut cmd = if morgana_netns::is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--bounding-set", "-net_bind_service", "--", env!("CARGO_BIN_EXE_echo")]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_echo"))
    };
    let out = cmd.args(["--port", "7"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: cannot listen on TCP port 7: permission denied (ports below 1024 need root or \
         CAP_NET_BIND_SERVICE; pick another with --port)\n"
    );
}
