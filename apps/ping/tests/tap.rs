//! `ping --net tap:` answering Linux's `ping` and `ping -6` over a TAP device, inside a network
//! namespace the test creates and removes; and its one line when there is no TAP.
//!
//! The TAP test needs root (and Linux's `ping`): without it, or with
//! `MORGANA_SKIP_ROOT_TESTS=1`, it is reported as ignored, with one line saying why
//! (`harness = false`, on `morgana_netns::Suite`).

use std::process::{Command, ExitCode};
use std::time::Duration;

use morgana_netns::{Need, Netns, Suite};

fn main() -> ExitCode {
    let mut suite = Suite::new();
    suite.test(
        "linux_ping_and_ping6_get_replies_and_the_unikernel_logs_each_answer",
        &[Need::Root, Need::program("ping", "iputils-ping")],
        linux_ping_and_ping6_get_replies_and_the_unikernel_logs_each_answer,
    );
    suite.test(
        "on_host_sockets_it_says_in_one_line_that_it_needs_a_tap",
        &[],
        on_host_sockets_it_says_in_one_line_that_it_needs_a_tap,
    );
    suite.run()
}

const TAP: &str = "mgtap0";

/// Linux pings `addr` three times (`-6` for IPv6); what ping printed. Fails unless all three
/// replies arrived.
fn linux_pings(ns: &Netns, addr: &str) -> String {
    let family = if addr.contains(':') { "-6" } else { "-4" };
    let out = ns.run(&["ping", family, "-c", "3", "-i", "0.2", "-W", "5", addr]);
    assert!(out.contains("3 packets transmitted, 3 received"), "{out}");
    out
}

fn linux_ping_and_ping6_get_replies_and_the_unikernel_logs_each_answer() {
    let ns = Netns::new("pg");
    ns.tap(TAP, &["10.77.0.1/24", "fd00:77::1/64"]);
    let mut app = ns.spawn(
        env!("CARGO_BIN_EXE_ping"),
        &[
            "--net",
            &format!("tap:{TAP}"),
            "--ipv4",
            "10.77.0.2/24",
            "--ipv6",
            "fd00:77::2/64",
            "--count",
            "9",
        ],
    );
    app.wait_for("answering ping on 10.77.0.2/24", Duration::from_secs(10));
    let link_local = app.wait_for("answering ping6 on fe80::", Duration::from_secs(5));
    let link_local = link_local.rsplit(' ').next().unwrap().to_string();
    app.wait_for("answering ping6 on fd00:77::2", Duration::from_secs(5));

    let v4 = linux_pings(&ns, "10.77.0.2");
    assert!(v4.contains("64 bytes from 10.77.0.2: icmp_seq=1"), "{v4}");
    let v6 = linux_pings(&ns, "fd00:77::2");
    assert!(v6.contains("64 bytes from fd00:77::2: icmp_seq=1"), "{v6}");
    linux_pings(&ns, &format!("{link_local}%{TAP}"));

    // `--count 9`: it stops after nine answers, having logged each.
    let (status, log) = app.finish(Duration::from_secs(10));
    assert!(status.success(), "{status}: {log:#?}");
    let answered: Vec<&String> = log.iter().filter(|l| l.contains("answered ping from")).collect();
    assert_eq!(answered.len(), 9, "{log:#?}");
    let linux_ll = ns.run(&["ip", "-6", "-o", "addr", "show", "dev", TAP, "scope", "link"]);
    let linux_ll = linux_ll.split_whitespace().nth(3).unwrap().split('/').next().unwrap().to_string();
    for (from, lines) in
        [("10.77.0.1", &answered[0..3]), ("fd00:77::1", &answered[3..6]), (&linux_ll, &answered[6..9])]
    {
        for (seq, line) in (1..=3).zip(lines) {
            assert!(line.ends_with(&format!("answered ping from {from}: seq {seq}, 56 bytes")), "{line}");
        }
    }
    assert!(log.last().unwrap().ends_with("answered 9 echo requests: done"), "{log:#?}");
}

fn on_host_sockets_it_says_in_one_line_that_it_needs_a_tap() {
    let out = Command::new(env!("CARGO_BIN_EXE_ping")).args(["--ipv4", "10.77.0.2/24"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "ping: needs a network device: pass --net tap:IFNAME (root or CAP_NET_ADMIN); host sockets (--net \
         socket, the default) have none\n"
    );
}
