//! `hello` on in-memory devices and the virtual clock.

use morgana::Instant;
use morgana_mem::sim::Sim;

#[test]
fn says_hello_four_times_a_second_apart() {
    let out = Sim::new(1).run(|p| hello::start(p, hello::Config::default()));
    assert!(out.result.is_ok());
    assert_eq!(out.messages(), ["hello"; 4]);
    let at: Vec<u64> = out.log.iter().map(|l| l.at.as_millis()).collect();
    assert_eq!(at, [0, 1000, 2000, 3000]);
    assert_eq!(out.end, Instant::from_millis(4000), "exits after the last sleep");
    assert!(out.wall < std::time::Duration::from_millis(100), "4 simulated seconds took {:?}", out.wall);
}

#[test]
fn arguments_change_count_and_interval() {
    let args = morgana_args::Args::parse(&[hello::ARGS], ["--count", "2", "--interval-ms", "0"]).unwrap();
    let config = hello::Config::from_args(&args).unwrap();
    let out = Sim::new(1).run(|p| hello::start(p, config));
    assert_eq!(out.messages(), ["hello"; 2]);
    assert_eq!(out.end, Instant::ZERO);
    let bad = morgana_args::Args::parse(&[hello::ARGS], ["--count", "many"]).unwrap();
    assert_eq!(
        hello::Config::from_args(&bad).unwrap_err().to_string(),
        "--count: expected a number from 0 to 4294967295, got \"many\""
    );
}
