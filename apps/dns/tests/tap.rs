//! `dns --net tap:` against `dnsmasq` on the Linux side of a TAP device, inside a network
//! namespace the test creates and removes: a DHCP lease, then a name dnsmasq serves; and the
//! host resolver with `--net socket`.
//!
//! The TAP test needs root (and `dnsmasq`): without it, or with `MORGANA_SKIP_ROOT_TESTS=1`,
//! it is reported as ignored, with one line saying why (`harness = false`, on
//! `morgana_netns::Suite`).

use std::process::{Command, ExitCode};
use std::time::Duration;

use morgana_netns::{Need, Netns, Proc, Suite, TempDir};

fn main() -> ExitCode {
    let mut suite = Suite::new();
    suite.test(
        "with_a_dhcp_lease_from_dnsmasq_it_resolves_a_name_dnsmasq_serves",
        &[Need::Root, Need::program("dnsmasq", "dnsmasq-base")],
        with_a_dhcp_lease_from_dnsmasq_it_resolves_a_name_dnsmasq_serves,
    );
    suite.test("on_host_sockets_it_asks_the_host_resolver", &[], on_host_sockets_it_asks_the_host_resolver);
    suite.run()
}

const TAP: &str = "mgtap0";

/// dnsmasq on the Linux side (10.77.0.1): leases from 10.77.0.50-99, answers for `*.test`
/// itself (`unikernel.test` has an IPv4 and an IPv6 address) and nothing else.
fn dnsmasq(ns: &Netns, dir: &TempDir) -> Proc {
    let path = |f: &str| dir.join(f).display().to_string();
    let mut server = ns.spawn(
        "/usr/sbin/dnsmasq",
        &[
            "--keep-in-foreground",
            "--log-facility=-",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--local=/test/",
            "--host-record=unikernel.test,10.77.0.123,fd00:77::123",
            &format!("--interface={TAP}"),
            "--bind-interfaces",
            "--dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,1h",
            // The check that an address is free before offering it takes 3 s; the link is ours.
            "--no-ping",
            &format!("--dhcp-leasefile={}", path("leases")),
            &format!("--pid-file={}", path("pid")),
            "--user=root",
            "--group=root",
        ],
    );
    server.wait_for("DHCP, IP range 10.77.0.50", Duration::from_secs(10));
    server
}

fn dns(ns: &Netns, args: &[&str]) -> (Option<i32>, Vec<String>) {
    let mut argv = vec!["--net", "tap:mgtap0"];
    argv.extend_from_slice(args);
    let (status, log) = ns.spawn(env!("CARGO_BIN_EXE_dns"), &argv).finish(Duration::from_secs(20));
    (status.code(), log)
}

fn with_a_dhcp_lease_from_dnsmasq_it_resolves_a_name_dnsmasq_serves() {
    let ns = Netns::new("dn");
    ns.tap(TAP, &["10.77.0.1/24"]);
    let dir = TempDir::new("dnsmasq");
    let mut server = dnsmasq(&ns, &dir);

    // --dhcp: the address and the DNS server both come from the lease.
    let (code, log) = dns(&ns, &["--dhcp", "--name", "unikernel.test"]);
    assert_eq!(code, Some(0), "{log:#?}");
    let mac = log.iter().find_map(|l| l.split("MAC ").nth(1)).expect("the unikernel logs its MAC");
    let mac = &mac[..17];
    let lease = log.iter().find_map(|l| l.split("DHCP lease: ").nth(1)).expect("a lease");
    let leased = lease.split('/').next().unwrap();
    assert!(lease.ends_with("/24 via 10.77.0.1, DNS [10.77.0.1]"), "{lease}");
    assert!(leased.starts_with("10.77.0.") && (50..=99).contains(&leased[8..].parse::<u8>().unwrap()));
    assert!(log.iter().any(|l| l.ends_with("unikernel.test has address 10.77.0.123")), "{log:#?}");
    assert!(log.iter().any(|l| l.ends_with("unikernel.test has IPv6 address fd00:77::123")), "{log:#?}");
    // dnsmasq agrees: it acknowledged that address to that MAC, and recorded the lease.
    server.wait_for(&format!("DHCPACK({TAP}) {leased} {mac}"), Duration::from_secs(5));
    let leases = std::fs::read_to_string(dir.join("leases")).unwrap();
    assert!(leases.contains(&format!(" {mac} {leased} ")), "{leases}");

    // --dns-server with a static address: the same name, then one dnsmasq does not know.
    let static_v4 = ["--ipv4", "10.77.0.3/24", "--dns-server", "10.77.0.1", "--name"];
    let (code, log) = dns(&ns, &[&static_v4[..], &["unikernel.test"]].concat());
    assert_eq!(code, Some(0), "{log:#?}");
    assert!(log.iter().any(|l| l.ends_with("unikernel.test has address 10.77.0.123")), "{log:#?}");
    let (code, log) = dns(&ns, &[&static_v4[..], &["nowhere.test"]].concat());
    assert_eq!(code, Some(1), "{log:#?}");
    // The error goes to stderr, the log to stdout: the two interleave in any order here.
    let errors: Vec<&String> = log.iter().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors, ["error: cannot resolve nowhere.test: name not found"], "{log:#?}");
}

fn on_host_sockets_it_asks_the_host_resolver() {
    // `localhost` is in every host's /etc/hosts: no DNS traffic leaves the machine.
    let out = Command::new(env!("CARGO_BIN_EXE_dns")).args(["--name", "localhost"]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("localhost has address 127.0.0.1")
            || stdout.contains("localhost has IPv6 address ::1"),
        "{stdout}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_dns")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "dns: --name: required\n");
}
