//! The speaking clock on the virtual clock, and as a process on the system clocks.

use morgana::Instant;
use morgana_args::Args;
use morgana_mem::sim::Sim;

#[test]
fn speaks_wall_and_monotonic_time_once_a_second() {
    let out = Sim::new(1).run(|p| clock::start(p, clock::Config { count: 3 }));
    assert_eq!(
        out.messages(),
        [
            "2026-01-01T00:00:00.000Z (monotonic: 0.000s since start)",
            "2026-01-01T00:00:01.000Z (monotonic: 1.000s since start)",
            "2026-01-01T00:00:02.000Z (monotonic: 2.000s since start)",
        ]
    );
    assert_eq!(out.end, Instant::from_millis(2000), "stops after the last tick");
}

#[test]
fn zero_means_forever() {
    let out = Sim::new(1)
        .time_limit(morgana::Duration::from_secs(3600))
        .run(|p| clock::start(p, clock::Config { count: 0 }));
    assert!(out.result.is_err(), "still speaking when the simulation's hour is up");
    assert_eq!(out.log.len(), 3601);
}

#[test]
fn count_comes_from_the_arguments() {
    let args = Args::parse(&[clock::ARGS], ["--count", "2"]).unwrap();
    assert_eq!(clock::Config::from_args(&args).unwrap(), clock::Config { count: 2 });
    let bad = Args::parse(&[clock::ARGS], ["--count", "-1"]).unwrap();
    assert!(clock::Config::from_args(&bad).is_err());
}

#[test]
fn the_process_reads_the_system_clocks() {
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let t0 = std::time::Instant::now();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_clock")).args(["--count", "2"]).output().unwrap();
    assert!(out.status.success());
    assert!(t0.elapsed() >= std::time::Duration::from_secs(1), "two ticks are a second apart");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    // "[    1.000123] INFO  clock: 2026-...Z (monotonic: 1.000s since start)"
    let year = clock::Rfc3339(started).to_string()[..4].to_string();
    for (i, line) in lines.iter().enumerate() {
        let msg = line.split("clock: ").nth(1).unwrap();
        assert!(msg.starts_with(&year) && msg.contains("Z (monotonic: "), "{line}");
        let mono: f64 =
            msg.split("monotonic: ").nth(1).unwrap().trim_end_matches("s since start)").parse().unwrap();
        assert!((mono - i as f64).abs() < 0.2, "tick {i} at {mono}s");
    }
}
