//! The system tools the tests drive as real peers, and how to get them.
//!
//! `cargo xtask test` checks for each before it starts. As root on Debian it installs what is
//! missing with apt-get (that is what CI does); otherwise it stops with one line naming the
//! packages and the command that installs them.

use std::path::Path;
use std::process::Command;

use crate::{Failure, Outcome};

/// (program looked for, Debian package, why the tests need it).
pub const TEST_TOOLS: &[(&str, &str, &str)] = &[
    ("cc", "gcc", "ring's build script compiles C"),
    ("openssl", "openssl", "s_client / s_server against morgana-tls and www"),
    ("curl", "curl", "HTTPS client against www"),
    ("ip", "iproute2", "network namespaces, TAP devices, bridges, veth"),
    ("ping", "iputils-ping", "Linux pings the unikernel"),
    ("nc", "netcat-openbsd", "a plain TCP client against echo"),
    ("dnsmasq", "dnsmasq-base", "DHCP and DNS server on the Linux side of a TAP"),
    ("nft", "nftables", "packet loss where the kernel has no netem"),
    ("hping3", "hping3", "a spoofed SYN flood against echo"),
    ("pkill", "procps", "cleaning up processes left in a test namespace"),
    ("qemu-system-x86_64", "qemu-system-x86", "boots the bare-metal images"),
];

/// Whether `program` is on the PATH (or in the sbin directories root has).
pub fn have(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(Into::into))
        .any(|dir| Path::new(&dir).join(program).is_file())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Make sure every tool in `tools` is present, installing the missing ones as root.
pub fn ensure(tools: &[(&str, &str, &str)]) -> Outcome {
    let missing: Vec<&str> =
        tools.iter().filter(|(prog, _, _)| !have(prog)).map(|(_, pkg, _)| *pkg).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !(is_root() && have("apt-get")) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_the_path_only() {
        assert!(have("sh"));
        assert!(!have("morgana-no-such-program"));
    }
}
