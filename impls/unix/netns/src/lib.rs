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
//! All of it needs root (`CAP_SYS_ADMIN` and `CAP_NET_ADMIN`): a test that uses it names
//! [`Need::Root`] in a [`Suite`], which reports it as skipped where it cannot run.
//!
//! For more than packet loss on a kernel without `netem` (delay, jitter, reordering, a rate
//! limit, per direction, seeded), [`Link`] is a userspace link emulator that forwards frames
//! between TAP devices and packet sockets in these namespaces: see the [`link`] module.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! let ns = morgana_netns::Netns::new("doc");
//! ns.tap("mgtap0", &["10.77.0.1/24"]);
//! let mut app = ns.spawn("target/debug/ping", &["--net", "tap:mgtap0", "--ipv4", "10.77.0.2/24"]);
//! app.wait_for("answering ping on", Duration::from_secs(10));
//! ns.run(&["ping", "-c", "1", "10.77.0.2"]);
//! ```
//!
//! It also holds what every hosted test and benchmark of the workspace shares: [`is_root`],
//! [`have`] (a program on the `PATH`), [`free_port`], [`median`], [`payload`] and
//! [`echo_through`] (a loopback echo client), guest and peer processes
//! ([`Proc`], also in a process group of their own with [`Proc::spawn_group`]), and the harness
//! of test binaries whose tests need root, KVM or a program ([`suite`]): those are reported as
//! ignored (skipped) with one line saying why, never as passed.
//!
//! Failures panic with what failed and its output: this is test support.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod link;
mod proc;
pub mod suite;
#[allow(unsafe_code)]
mod sys;
pub mod toolchain;

pub use link::{DirectionStats, Impairment, Link, LinkConfig, LinkStats, Port};
pub use proc::Proc;
pub use suite::{Need, Suite};
pub use toolchain::{target_missing, toolchain};

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The variable that skips the tests needing root when set to `1`, even as root ([`Need::Root`]).
pub const SKIP_VAR: &str = "MORGANA_SKIP_ROOT_TESTS";

/// Whether this process runs as root.
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1)) == Some("0")
}

/// Whether `program` is on the `PATH` (or in the sbin directories root has).
pub fn have(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(Into::into))
        .any(|dir| Path::new(&dir).join(program).is_file())
}

/// A loopback TCP port that was free a moment ago (the kernel's pick, released for the caller's
/// server to take). Panics if no port can be bound at all.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// The median of `values` (the mean of the middle two for an even count; 0 for none).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `n` bytes that are not a repeating pattern (xorshift from a seed).
pub fn payload(n: usize, seed: u64) -> Vec<u8> {
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

/// Send `data` to `port` on loopback while reading, half-close, read everything back.
pub fn echo_through(port: u16, data: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
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

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn finds_programs_on_the_path_only() {
        assert!(have("sh"));
        assert!(!have("morgana-no-such-program"));
    }
}
