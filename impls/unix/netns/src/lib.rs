//! # morgana-netns: throw-away Linux networks for hosted tests and benchmarks
//!
//! Tests that put a unikernel on a TAP device talk to real Linux peers (`ping`, `nc`,
//! `dnsmasq`), and must not touch the host's own network. This crate gives them a network
//! namespace of their own ([`Netns`]), with TAP and veth devices and packet loss inside it, and
//! runs programs there ([`Netns::spawn`], [`Proc`]). Everything is removed on drop, also when
//! the test panics: the processes still running in the namespace, then the namespace with its
//! devices. Names are unique per process and call, so tests run in parallel.
//!
//! It drives `ip` and `tc` (iproute2), and `nft` (nftables) where the kernel has no `netem`.
//! All of it needs root (`CAP_SYS_ADMIN` and `CAP_NET_ADMIN`): see [`root_or_skip`].
//!
//! For more than packet loss on a kernel without `netem` (delay, jitter, reordering, a rate
//! limit, per direction, seeded), [`Link`] is a userspace link emulator that forwards frames
//! between TAP devices and packet sockets in these namespaces: see the [`link`] module.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! if morgana_netns::root_or_skip() {
//!     let ns = morgana_netns::Netns::new("doc");
//!     ns.tap("mgtap0", &["10.77.0.1/24"]);
//!     let mut app = ns.spawn("target/debug/ping", &["--net", "tap:mgtap0", "--ipv4", "10.77.0.2/24"]);
//!     app.wait_for("answering ping on", Duration::from_secs(10));
//!     ns.run(&["ping", "-c", "1", "10.77.0.2"]);
//! }
//! ```
//!
//! Failures panic with what failed and its output: this is test support.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod link;
#[allow(unsafe_code)]
mod sys;

pub use link::{DirectionStats, Impairment, Link, LinkConfig, LinkStats, Port};

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

/// The variable that lets tests needing root skip themselves when set to `1`.
pub const SKIP_VAR: &str = "MORGANA_SKIP_ROOT_TESTS";

/// Whether this process runs as root.
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1)) == Some("0")
}

/// Whether a test that needs root should run: `true` as root; `false` (saying so on stderr) when
/// `MORGANA_SKIP_ROOT_TESTS=1`; otherwise the test fails with a message saying what to do.
pub fn root_or_skip() -> bool {
    if std::env::var(SKIP_VAR).as_deref() == Ok("1") {
        eprintln!("skipped: {SKIP_VAR}=1 (this test needs root)");
        return false;
    }
    assert!(
        is_root(),
        "this test needs root (it creates a network namespace and TAP devices): run it as root, or set \
         {SKIP_VAR}=1 to skip it"
    );
    true
}

/// Run `cmd` to completion; panic with its stderr unless it succeeds.
fn check(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace of our own (loopback up), removed on drop with everything in it.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A new namespace named `mg` + `tag` + the process id + a counter (keep `tag` short).
    pub fn new(tag: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!("mg{tag}{}x{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        check(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run `f` on a thread of its own that has entered the namespace, and return what it
    /// returns. Sockets and devices it opens stay in the namespace when used from other
    /// threads afterwards (`UdpSocket::bind` in `f`, `send_to` anywhere).
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        let handle = std::fs::File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        std::thread::scope(|s| {
            let thread = s.spawn(move || {
                sys::setns_net(&handle).unwrap_or_else(|e| panic!("cannot enter {path}: {e}"));
                f()
            });
            thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Turn IPv6 off on the interfaces created in the namespace from now on (and on the
    /// existing ones), so that Linux sends nothing of its own (router solicitations, MLD) over
    /// links whose frames a test counts.
    pub fn ipv4_only(&self) {
        for scope in ["all", "default"] {
            self.run(&["sysctl", "-q", "-w", &format!("net.ipv6.conf.{scope}.disable_ipv6=1")]);
        }
    }

    /// The MAC address of `ifname` in the namespace.
    pub fn mac(&self, ifname: &str) -> String {
        self.run(&["cat", &format!("/sys/class/net/{ifname}/address")]).trim().to_string()
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Run `argv` inside the namespace; its stdout. Panics with its output if it fails.
    pub fn run(&self, argv: &[&str]) -> String {
        String::from_utf8_lossy(&check(self.command(argv[0]).args(&argv[1..])).stdout).into_owned()
    }

    /// Create the TAP interface `ifname` (persistent: a unikernel attaches to it with
    /// `--net tap:IFNAME`), give its Linux side `addrs` (`10.0.0.1/24`, `fd00::1/64`; IPv6
    /// addresses skip duplicate address detection) and bring it up.
    pub fn tap(&self, ifname: &str, addrs: &[&str]) {
        self.run(&["ip", "tuntap", "add", "dev", ifname, "mode", "tap"]);
        self.address(ifname, addrs);
    }

    /// A veth pair: `here` in this namespace with `here_addrs`, `there` in `other` with
    /// `there_addrs`, both up.
    pub fn veth(&self, here: &str, here_addrs: &[&str], other: &Netns, there: &str, there_addrs: &[&str]) {
        self.run(&["ip", "link", "add", here, "type", "veth", "peer", "name", there, "netns", &other.name]);
        self.address(here, here_addrs);
        other.address(there, there_addrs);
    }

    fn address(&self, ifname: &str, addrs: &[&str]) {
        // The link-local address too must be usable at once, not tentative for a second.
        self.run(&["sysctl", "-q", "-w", &format!("net.ipv6.conf.{ifname}.accept_dad=0")]);
        for a in addrs {
            if a.contains(':') {
                self.run(&["ip", "-6", "addr", "add", a, "dev", ifname, "nodad"]);
            } else {
                self.run(&["ip", "addr", "add", a, "dev", ifname]);
            }
        }
        self.run(&["ip", "link", "set", ifname, "up"]);
    }

    /// Drop `percent` % of the packets Linux sends out of `ifname` (towards the unikernel on a
    /// TAP): `tc qdisc add dev IFNAME root netem loss PERCENT%`, or, on a kernel without netem,
    /// an nftables rule on the same egress path that drops one packet in `100 / percent` at
    /// random.
    pub fn lose(&self, ifname: &str, percent: u32) -> Loss<'_> {
        assert!((1..=100).contains(&percent) && 100 % percent == 0, "loss of 1 in N packets: {percent}%");
        let netem = self
            .command("tc")
            .args(["qdisc", "add", "dev", ifname, "root", "netem", "loss", &format!("{percent}%")])
            .output()
            .is_ok_and(|o| o.status.success());
        let how = if netem {
            LossHow::Netem
        } else {
            let table = "mgloss";
            let hook = format!("{{ type filter hook egress device {ifname} priority 0; }}");
            let nft = |args: &[&str]| {
                let out = self.command("nft").args(args).output();
                match out {
                    Ok(o) if o.status.success() => {}
                    Ok(o) => panic!(
                        "no netem in this kernel, and nftables refused the loss rule ({}): {}",
                        o.status,
                        String::from_utf8_lossy(&o.stderr)
                    ),
                    Err(e) => panic!(
                        "no netem in this kernel (CONFIG_NET_SCH_NETEM) and no nft to drop packets instead \
                         ({e}): install nftables"
                    ),
                }
            };
            nft(&["add", "table", "netdev", table]);
            nft(&["add", "chain", "netdev", table, "out", &hook]);
            let modulo = (100 / percent).to_string();
            nft(&[
                "add", "rule", "netdev", table, "out", "numgen", "random", "mod", &modulo, "==", "0",
                "counter", "drop",
            ]);
            LossHow::Nft
        };
        Loss { ns: self, ifname: ifname.to_string(), how }
    }

    /// Start `program` with `args` inside the namespace.
    pub fn spawn(&self, program: impl AsRef<OsStr>, args: &[&str]) -> Proc {
        let mut cmd = self.command(program);
        cmd.args(args);
        Proc::spawn(cmd)
    }

    /// The ids of the processes running in the namespace.
    fn pids(&self) -> Vec<String> {
        let out = Command::new("ip").args(["netns", "pids", &self.name]).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Whatever still runs in it was started by this test: end it, or the namespace
        // outlives its name.
        for pid in self.pids() {
            let _ = Command::new("kill").args(["-KILL", &pid]).output();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LossHow {
    Netem,
    Nft,
}

/// Packet loss set up by [`Netns::lose`]; it ends with the namespace.
#[derive(Debug)]
pub struct Loss<'a> {
    ns: &'a Netns,
    ifname: String,
    how: LossHow,
}

impl Loss<'_> {
    /// How the packets are dropped, for the test's output.
    pub fn mechanism(&self) -> &'static str {
        match self.how {
            LossHow::Netem => "tc netem",
            LossHow::Nft => "nftables numgen (this kernel has no netem)",
        }
    }

    /// Packets dropped so far.
    pub fn dropped(&self) -> u64 {
        let number_after = |text: &str, key: &str| -> Option<u64> {
            let at = text.find(key)? + key.len();
            text[at..].trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        };
        match self.how {
            LossHow::Netem => {
                let out = self.ns.run(&["tc", "-s", "qdisc", "show", "dev", &self.ifname]);
                number_after(&out, "dropped").unwrap_or(0)
            }
            LossHow::Nft => {
                let out = self.ns.run(&["nft", "list", "table", "netdev", "mgloss"]);
                number_after(&out, "counter packets").unwrap_or(0)
            }
        }
    }
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// A new, empty directory whose name includes `tag` and the process id.
    pub fn new(tag: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("morgana-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        Self(p)
    }

    /// The path of `name` inside it.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A program running in a namespace: its output lines (stdout and stderr, in arrival order)
/// are collected as they come. Killed on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    what: String,
}

fn forward(from: impl Read + Send + 'static, to: Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if to.send(line).is_err() {
                break;
            }
        }
    });
}

impl Proc {
    /// Start `cmd`, collecting its output.
    pub fn spawn(mut cmd: Command) -> Self {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let (tx, lines) = channel();
        forward(child.stdout.take().expect("piped"), tx.clone());
        forward(child.stderr.take().expect("piped"), tx);
        Self { child, lines, seen: Vec::new(), what }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The lines received so far.
    pub fn log(&mut self) -> &[String] {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        &self.seen
    }

    /// Wait until a line contains `pattern` and return it; panic with the output so far if none
    /// does within `timeout` or the program ends first.
    pub fn wait_for(&mut self, pattern: &str, timeout: Duration) -> String {
        self.wait_for_count(pattern, 1, timeout).swap_remove(0)
    }

    /// Wait until `count` lines contain `pattern` and return them; panic with the output so far
    /// if they do not within `timeout` or the program ends first.
    pub fn wait_for_count(&mut self, pattern: &str, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<String> = self.log().iter().filter(|l| l.contains(pattern)).cloned().collect();
            if found.len() >= count {
                return found;
            }
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => self.seen.push(l),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: not {count} lines with {pattern:?} within {timeout:?}; output:\n{}",
                    self.what,
                    self.seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    panic!(
                        "{}: ended ({status}) before {count} lines with {pattern:?}; output:\n{}",
                        self.what,
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// Wait up to `timeout` for the program to end; its status and all its output. Panics
    /// (killing it) if it does not end in time.
    pub fn finish(mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for a child") {
                // The readers end with the pipes: collect everything.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(l);
                }
                return (status, std::mem::take(&mut self.seen));
            }
            if Instant::now() >= deadline {
                self.log();
                panic!("{}: still running after {timeout:?}; output:\n{}", self.what, self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
