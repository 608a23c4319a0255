//! The system tools the tests drive as real peers, and how to get them.
//!
//! `cargo xtask test` checks for each before it starts. As root on Debian it installs what is
//! missing with apt-get (that is what CI does); otherwise it stops with one line naming the
//! packages and the command that installs them. Without root, it does not ask for the tools that
//! only tests needing root drive, nor QEMU: the tests that need them are reported as skipped.

use std::process::Command;

use morgana_netns::{have, is_root};

use crate::{Failure, Outcome};

/// Who needs a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    /// Tests that every run includes.
    Always,
    /// Only tests that skip themselves without it (those needing root, the QEMU suite).
    BySkippable,
}

/// (program looked for, Debian package, who needs it, why the tests need it).
pub const TEST_TOOLS: &[(&str, &str, Needed, &str)] = &[
    ("cc", "gcc", Needed::Always, "ring's build script compiles C"),
    ("openssl", "openssl", Needed::Always, "s_client / s_server against morgana-tls and www"),
    ("curl", "curl", Needed::Always, "HTTPS client against www"),
    ("ip", "iproute2", Needed::BySkippable, "network namespaces, TAP devices, bridges, veth"),
    ("ping", "iputils-ping", Needed::BySkippable, "Linux pings the unikernel"),
    ("nc", "netcat-openbsd", Needed::BySkippable, "a plain TCP client against echo"),
    ("dnsmasq", "dnsmasq-base", Needed::BySkippable, "DHCP and DNS server on the Linux side of a TAP"),
    ("nft", "nftables", Needed::BySkippable, "packet loss where the kernel has no netem"),
    ("hping3", "hping3", Needed::BySkippable, "a spoofed SYN flood against echo"),
    ("pkill", "procps", Needed::BySkippable, "cleaning up processes left in a test namespace"),
    ("qemu-system-x86_64", "qemu-system-x86", Needed::BySkippable, "boots the bare-metal images"),
];

/// Make sure every tool in `tools` is present, installing the missing ones as root. Without
/// root, the tools of tests that skip themselves without them are not asked for.
pub fn ensure(tools: &[(&str, &str, Needed, &str)]) -> Outcome {
    let root = is_root();
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(prog, _, needed, _)| (root || *needed == Needed::Always) && !have(prog))
        .map(|(_, pkg, _, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !(root && have("apt-get")) {
        return Err(Failure::new(format!(
            "the tests need these packages: {list}; install them with `sudo apt-get install -y {list}`"
        )));
    }
    println!("==> apt-get install -y {list}");
    let quiet_env = [("DEBIAN_FRONTEND", "noninteractive")];
    let ok = |cmd: &mut Command| cmd.envs(quiet_env).status().is_ok_and(|s| s.success());
    if ok(Command::new("apt-get").args(["update", "-qq"]))
        && ok(Command::new("apt-get").args(["install", "-y", "-qq"]).args(&missing))
    {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "apt-get could not install {list}: run `apt-get install -y {list}` and retry"
        )))
    }
}
