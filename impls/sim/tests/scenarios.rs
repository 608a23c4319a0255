//! The shipped scenarios on their CI seeds, the determinism they promise (the same seed, the
//! same trace: run twice, in another process, at another log level), the self-test fixture
//! found failing and replayed, and a stuck world reported with what each node waits on.

use std::process::Command;

use morgana::Duration;
use morgana_sim::runner::{determinism, run_once};
use morgana_sim::scenarios::{Scenario, find};
use morgana_sim::{Failure, LinkFaults, NodeSpec, World, WorldConfig};
use morgana_target::Device;

fn scenario(name: &str) -> &'static Scenario {
    find(name).unwrap_or_else(|| panic!("no scenario {name}"))
}

/// Run the scenario's CI seeds, the first twice and compared event by event.
fn ci_seeds(name: &str) {
    let s = scenario(name);
    assert!(s.ci_seeds > 0, "{name} has CI seeds");
    for seed in 1..=s.ci_seeds {
        let out = if seed == 1 {
            let (out, differs) = determinism(s, seed, false);
            assert_eq!(differs, None, "{name} seed {seed} is not deterministic");
            out
        } else {
            run_once(s, seed, false)
        };
        if let Err(e) = &out.result {
            panic!("{name} seed {seed}: {e}\nreplay: cargo xtask sim {name} --seed {seed}");
        }
    }
    // One swarm seed: a different fault mix, still passing.
    let out = run_once(s, 1, true);
    if let Err(e) = &out.result {
        panic!("{name} seed 1 --swarm: {e}\nreplay: cargo xtask sim {name} --seed 1 --swarm");
    }
}

#[test]
fn www_serves_every_http_fetch_client_the_page_byte_for_byte_over_lossy_links() {
    ci_seeds("www-small");
}

#[test]
fn clients_recover_after_a_two_way_and_a_one_way_partition_heal() {
    ci_seeds("partition");
}

#[test]
fn tcp_transfers_are_byte_exact_across_loss_latency_and_buffer_sizes() {
    ci_seeds("tcp");
}

#[test]
fn a_key_value_service_history_is_linearizable() {
    ci_seeds("kv");
}

#[test]
fn the_store_keeps_every_acknowledged_write_across_crashes() {
    ci_seeds("kv-store");
}

fn trace_line(stdout: &str) -> Option<String> {
    stdout.lines().find(|l| l.starts_with("trace ")).map(|l| l["trace ".len()..].to_string())
}

#[test]
fn the_broken_fixture_is_found_within_100_seeds_and_its_replay_command_reproduces_it() {
    let s = scenario("selftest-broken");
    let failing = (1..=100).map(|seed| run_once(s, seed, false)).find(|o| o.result.is_err());
    let failing = failing.expect("a seed among the first 100 finds the lost write");
    let seed = failing.seed;
    match &failing.result {
        Err(Failure::Check(m)) => assert!(m.contains("is not linearizable"), "{m}"),
        other => panic!("seed {seed}: expected the linearizability check to fail, got {other:?}"),
    }
    // In this process: the same failure, the same hash.
    let again = run_once(s, seed, false);
    assert_eq!((again.hash, again.result.clone()), (failing.hash, failing.result.clone()));
    // The runner, as the replay command runs it: exits non-zero, prints the command, and
    // reaches the same trace.
    let dir = std::env::temp_dir().join(format!("morgana-sim-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_morgana-sim"))
        .args(["selftest-broken", "--seed", &seed.to_string(), "--out"])
        .arg(&dir)
        .output()
        .expect("the runner starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("replay: cargo xtask sim selftest-broken --seed {seed}\n")), "{stdout}");
    assert_eq!(trace_line(&stdout), Some(format!("{:016x}", failing.hash)), "{stdout}");
    assert!(stdout.contains("speedup "), "{stdout}");
    assert!(stdout.contains("two runs, the same"), "the determinism check ran: {stdout}");
    let trace = std::fs::read_to_string(dir.join(format!("selftest-broken-{seed}.trace"))).unwrap();
    assert!(trace.lines().count() as u64 > failing.trace.len(), "one line per event and the hash");
    assert!(trace.ends_with(&format!("trace {:016x}\n", failing.hash)));
    let pcap = std::fs::read(dir.join(format!("selftest-broken-{seed}.pcap"))).unwrap();
    assert_eq!(&pcap[..4], &0xa1b2_3c4du32.to_le_bytes());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A logger that formats every record (as a real one would) and throws it away.
struct Sink;

impl log::Log for Sink {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        std::hint::black_box(format!("{} {}", r.target(), r.args()));
    }
    fn flush(&self) {}
}

static SINK: Sink = Sink;

#[test]
fn the_same_seed_gives_the_same_trace_at_any_log_level_and_in_another_process() {
    let _ = log::set_logger(&SINK);
    let s = scenario("kv");
    log::set_max_level(log::LevelFilter::Off);
    let quiet = run_once(s, 3, true);
    log::set_max_level(log::LevelFilter::Trace);
    let loud = run_once(s, 3, true);
    log::set_max_level(log::LevelFilter::Off);
    assert_eq!(quiet.hash, loud.hash, "the log level changed the trace");
    let other = run_once(s, 4, true);
    assert_ne!(quiet.hash, other.hash, "another seed, another run");
    let out = Command::new(env!("CARGO_BIN_EXE_morgana-sim"))
        .args(["kv", "--seed", "3", "--swarm", "--no-check", "--log", "debug"])
        .output()
        .expect("the runner starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(trace_line(&stdout), Some(format!("{:016x}", quiet.hash)), "{stdout}");
}

#[test]
fn a_stuck_world_says_what_each_node_waits_on() {
    let mut config = WorldConfig::new(1);
    config.limit = Duration::from_secs(60);
    let w = World::new(config, LinkFaults::latency(Duration::from_millis(1)));
    // A server that accepts and never answers, and a client that waits for an answer.
    w.node(NodeSpec::new("mute").args(["--ipv4", "10.0.0.1/24"]), &[], &[Device::TcpStack], |t| {
        use morgana::{TcpListener, TcpStack};
        let stack = morgana_target::Target::tcp_stack(t)?;
        Ok(async move {
            let mut l = stack.listen(80, 1).await?;
            let (_conn, _) = l.accept().await?;
            std::future::pending::<Result<(), morgana::StackError>>().await
        })
    });
    let client =
        w.node(NodeSpec::new("asker").args(["--ipv4", "10.0.0.2/24"]), &[], &[Device::TcpStack], |t| {
            use embedded_io_async::{Read, Write};
            use morgana::TcpStack;
            let stack = morgana_target::Target::tcp_stack(t)?;
            Ok(async move {
                let mut c = stack.connect("10.0.0.1:80".parse().unwrap()).await?;
                c.write_all(b"hello?").await?;
                let mut buf = [0u8; 8];
                c.read(&mut buf).await.map(drop)
            })
        });
    let out = w.run(move |ctl| async move {
        let code = ctl.wait_exit(client).await;
        Err(format!("the client exited ({code}) though nobody answered"))
    });
    let report = match out.result {
        Err(Failure::Stuck(r) | Failure::TimeLimit(r)) => r,
        other => panic!("expected a stuck world, got {other:?}"),
    };
    assert!(report.contains("n1 asker:"), "{report}");
    assert!(report.contains("waiting on: Read on c"), "{report}");
    assert!(report.contains("n0 mute:"), "{report}");
}

#[test]
fn each_node_reads_the_world_clock_through_its_own_skew() {
    use morgana::{Clock, Platform};
    use morgana_sim::time::Skew;
    let w = World::new(WorldConfig::new(1), LinkFaults::default());
    let skews = [
        Skew::default(),
        Skew { offset: Duration::from_secs(5), drift_ppm: 0 },
        Skew { offset: Duration::ZERO, drift_ppm: 1000 },
        Skew { offset: Duration::ZERO, drift_ppm: -1000 },
    ];
    let woke = std::rc::Rc::new(std::cell::RefCell::new(vec![None; skews.len()]));
    let world_clock = w.clock();
    let nodes: Vec<_> = skews
        .iter()
        .enumerate()
        .map(|(i, skew)| {
            let (woke, world_clock) = (woke.clone(), world_clock.clone());
            w.node(NodeSpec::new(format!("n{i}")).skew(*skew), &[], &[], move |t| {
                let clock = morgana_target::Target::platform(t).clock();
                let (woke, world_clock) = (woke.clone(), world_clock.clone());
                Ok(async move {
                    clock.sleep(Duration::from_secs(60)).await;
                    woke.borrow_mut()[i] = Some(world_clock.now().as_millis());
                    Ok::<(), String>(())
                })
            })
        })
        .collect();
    let out = w.run(move |ctl| async move {
        for n in nodes {
            ctl.wait_exit(n).await;
        }
        Ok(())
    });
    assert!(out.result.is_ok());
    // Sixty seconds of each node's clock, in world milliseconds: a clock 0.1 % fast sleeps
    // 59.94 s of world time, one 0.1 % slow 60.06 s; an offset changes nothing in a sleep.
    assert_eq!(*woke.borrow(), [Some(60_000), Some(60_000), Some(59_940), Some(60_060)]);
}
