//! `notes` as a process on host sockets (loopback only) with its store in a disk-image file,
//! against curl: killed with SIGKILL in the middle of a stream of PUTs and restarted on the
//! same image, it still has every value it acknowledged, byte for byte.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A directory of its own for a test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("notes-hosted-{}-{what}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `notes`, killed when dropped.
struct Notes {
    child: Child,
    port: u16,
}

impl Notes {
    /// Start `notes` on `image` (created with 64 MiB if missing); wait until it serves.
    fn start(image: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_notes"))
            .args(["--port", "0", "--ipv4", "127.0.0.1/8", "--block-size", "64M", "--block"])
            .arg(image)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start notes");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut log = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let port = line
                        .split_once("serving notes on https://")
                        .and_then(|(_, rest)| rest.split(['/', ':']).nth(1)?.parse().ok());
                    log.push(line);
                    if let Some(port) = port {
                        return Self { child, port };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let out = child.wait_with_output().unwrap();
                    panic!(
                        "notes did not start; log: {log:?}; stderr: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Notes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value the `i`-th PUT stores: its own bytes, sizes from empty to ~120 KiB.
fn value(i: usize) -> Vec<u8> {
    let len = (i * 7919) % 120_000;
    (0..len).map(|j| (j.wrapping_mul(31) ^ i) as u8).collect()
}

/// The key of the `i`-th PUT: 40 keys in 4 directories, so later PUTs replace earlier ones.
fn path(i: usize) -> String {
    format!("/dir{}/note-{}.bin", i % 4, i % 40)
}

#[test]
fn every_acknowledged_put_survives_sigkill() {
    let dir = TempDir::new("sigkill");
    let image = dir.0.join("notes.img");
    let n = 300;
    for i in 0..n {
        std::fs::write(dir.0.join(format!("v{i}")), value(i)).unwrap();
    }
    let notes = Notes::start(&image);
    // One curl for all the PUTs (one connection, kept alive), printing each answer as it comes.
    let mut curl = Command::new("curl");
    curl.arg("-sk");
    for i in 0..n {
        if i > 0 {
            curl.arg("--next").arg("-sk");
        }
        curl.args(["-X", "PUT", "-o", "/dev/null", "-w", "%{stderr}%{http_code}\\n", "--data-binary"])
            .arg(format!("@{}", dir.0.join(format!("v{i}")).display()))
            .arg(notes.url(&path(i)));
    }
    // The answers go to stderr, which curl does not buffer.
    let mut curl = curl.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("curl");
    let answers = BufReader::new(curl.stderr.take().unwrap());
    // Kill `notes` once a third of the PUTs are acknowledged: the next ones are under way.
    let mut acked = 0usize;
    let mut notes = Some(notes);
    for line in answers.lines().map_while(Result::ok) {
        match line.trim() {
            "201" | "204" => acked += 1,
            other => {
                assert!(notes.is_none(), "PUT {acked} answered {other} before the kill");
                break;
            }
        }
        if acked == n / 3 {
            let mut victim = notes.take().unwrap();
            victim.child.kill().unwrap();
            victim.child.wait().unwrap();
        }
    }
    let _ = curl.kill();
    let _ = curl.wait();
    assert!(acked >= n / 3 && acked < n, "{acked} of {n} PUTs acknowledged");
    // The last value acknowledged for each key; the one PUT after them may or may not be there.
    let mut want: std::collections::BTreeMap<String, usize> = Default::default();
    for i in 0..acked {
        want.insert(path(i), i);
    }
    let notes = Notes::start(&image);
    for (key, &i) in &want {
        let out = Command::new("curl").args(["-sk", "--fail"]).arg(notes.url(key)).output().unwrap();
        assert!(out.status.success(), "GET {key} after the restart failed");
        let in_flight = path(acked) == *key && out.stdout == value(acked);
        assert!(
            out.stdout == value(i) || in_flight,
            "{key}: not the value of PUT {i} ({} bytes)",
            out.stdout.len()
        );
    }
    // And the listing has every key.
    let out = Command::new("curl").args(["-sk", "--fail"]).arg(notes.url("/dir0/")).output().unwrap();
    let listing = String::from_utf8(out.stdout).unwrap();
    for key in want.keys().filter(|k| k.starts_with("/dir0/")) {
        let name = key.rsplit('/').next().unwrap();
        assert!(listing.contains(&format!("\"name\":\"{name}\"")), "{name} missing from {listing}");
    }
}
