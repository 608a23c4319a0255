//! `hello-key` on the virtual clock, and as a process.

use morgana::Instant;
use morgana_args::Args;
use morgana_mem::sim::Sim;

fn config(argv: &[&str]) -> hello_key::Config {
    hello_key::Config::from_args(&Args::parse(&[hello_key::ARGS], argv).unwrap()).unwrap()
}

#[test]
fn says_the_default_greeting_four_times() {
    let out = Sim::new(1).run(|p| hello_key::start(p, config(&[])));
    assert_eq!(out.messages(), ["Hello World!"; 4]);
    let at: Vec<u64> = out.log.iter().map(|l| l.at.as_millis()).collect();
    assert_eq!(at, [0, 1000, 2000, 3000]);
    assert_eq!(out.end, Instant::from_millis(4000));
}

#[test]
fn the_greeting_comes_from_the_argument() {
    let out = Sim::new(1).run(|p| hello_key::start(p, config(&["--hello", "Bonjour le monde"])));
    assert_eq!(out.messages(), ["Bonjour le monde"; 4]);
    let out = Sim::new(1).run(|p| hello_key::start(p, config(&["--hello="])));
    assert_eq!(out.messages(), [""; 4], "an empty greeting is a greeting");
}

#[test]
fn the_process_logs_the_greeting() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hello-key"))
        .args(["--hello", "Hej verden"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines.iter().all(|l| l.ends_with("INFO  hello_key: Hej verden")), "{stdout}");
}

#[test]
fn arguments_that_are_not_utf8_do_not_panic() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"caf\xe9");
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_hello-key")).arg("--hello").arg(bad).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().all(|l| l.ends_with("INFO  hello_key: caf\u{fffd}")), "{stdout}");
    // An unknown argument that is not UTF-8: the usual one line, status 2.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hello-key")).arg(bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("hello-key: "), "{out:?}");
}
