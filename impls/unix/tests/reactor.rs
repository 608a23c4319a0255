//! The event loop: timers on time, parking without burning CPU, and stalls reported.

mod common;

use std::time::Instant as StdInstant;

use common::run;
use morgana::{Clock, Duration, Platform, Spawn, TcpListener, TcpStack};
use morgana_rt::Stalled;
use morgana_unix::{Runtime, SocketStack};

/// CPU time this thread has used, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    s.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn sleeps_end_on_time() {
    run(|p| async move {
        let clock = p.clock();
        for ms in [1u64, 20, 50] {
            let started = StdInstant::now();
            clock.sleep(Duration::from_millis(ms)).await;
            let took = started.elapsed();
            assert!(took >= std::time::Duration::from_millis(ms), "{ms} ms sleep took {took:?}");
            // Generous: a busy machine may run the thread late; a missed timer would take seconds.
            assert!(took < std::time::Duration::from_millis(ms + 500), "{ms} ms sleep took {took:?}");
        }
    });
}

#[test]
fn waiting_on_sockets_and_timers_burns_no_cpu() {
    let cpu_before = thread_cpu_ns();
    let wall = StdInstant::now();
    run(|p| async move {
        let stack = SocketStack::new();
        let mut listener = stack.listen(0, 1).await.unwrap();
        // A task parked on a socket nobody connects to, beside a timer.
        p.spawn(async move {
            let _ = listener.accept().await;
        });
        p.clock().sleep(Duration::from_millis(400)).await;
    });
    let cpu = thread_cpu_ns() - cpu_before;
    assert!(wall.elapsed() >= std::time::Duration::from_millis(400));
    // 400 ms of waiting; a busy loop would use all of it.
    assert!(cpu < 40_000_000, "waiting used {} ms of CPU", cpu / 1_000_000);
}

#[test]
fn a_task_waiting_on_nothing_is_reported_not_hung() {
    let mut rt = Runtime::new().unwrap();
    let result = rt.block_on(std::future::pending::<()>());
    assert!(matches!(result, Err(Stalled::Deadlock { .. })), "{result:?}");
}
