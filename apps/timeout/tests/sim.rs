//! `timeout` on the virtual clock: the earlier deadline wins, at its time.

use morgana::Duration;
use morgana_mem::sim::Sim;
use timeout::{Config, Winner};

fn race(task_ms: Option<u64>, seed: u64) -> (Winner, Vec<String>, Vec<u64>) {
    let config = Config { task: task_ms.map(Duration::from_millis), timeout: Duration::from_secs(2) };
    let out = Sim::new(seed).run(|p| timeout::start(p, config));
    let winner = out.result.expect("no stall").expect("infallible");
    let msgs = out.messages().into_iter().map(String::from).collect();
    (winner, msgs, out.log.iter().map(|l| l.at.as_millis()).collect())
}

#[test]
fn a_quick_task_wins() {
    let (winner, msgs, at) = race(Some(1200), 1);
    assert_eq!(winner, Winner::Task);
    assert_eq!(msgs[1], "Returned Heads after 1200ms");
    assert_eq!(at[1], 1200);
}

#[test]
fn a_slow_task_is_cancelled_at_the_timeout() {
    let (winner, msgs, at) = race(Some(2500), 1);
    assert_eq!(winner, Winner::Timeout);
    assert_eq!(msgs[1], "Cancelled: timed out after 2000ms");
    assert_eq!(at[1], 2000);
}

#[test]
fn random_tasks_follow_their_drawn_duration() {
    let mut seen = [false; 2];
    for seed in 0..20 {
        let (winner, msgs, at) = race(None, seed);
        let drawn: u64 =
            msgs[0].strip_prefix("task takes ").unwrap().split("ms").next().unwrap().parse().unwrap();
        assert!(drawn < 3000);
        if drawn < 2000 {
            assert_eq!((winner, at[1]), (Winner::Task, drawn), "seed {seed}");
        } else {
            assert_eq!((winner, at[1]), (Winner::Timeout, 2000), "seed {seed}");
        }
        seen[winner as usize] = true;
        assert_eq!(race(None, seed).1, msgs, "seed {seed} replays");
    }
    assert_eq!(seen, [true, true], "20 seeds produce both outcomes");
}
