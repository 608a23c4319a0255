//! The executor's contract: tasks, timers, virtual time, stall detection.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{Either, select};
use morgana::{Clock, Instant, Spawn};
use morgana_rt::{Executor, Stalled, VirtualTime};

#[test]
fn ten_virtual_minutes_take_no_time() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let started = std::time::Instant::now();
    let ticks = exec
        .block_on(&mut time.park(), async {
            let mut n = 0;
            while h.now() < Instant::from_millis(600_000) {
                h.sleep(Duration::from_millis(100)).await;
                n += 1;
            }
            n
        })
        .unwrap();
    assert_eq!(ticks, 6000);
    assert_eq!(h.now(), Instant::from_millis(600_000));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn spawned_tasks_interleave_by_deadline() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let log = Rc::new(RefCell::new(Vec::new()));
    exec.block_on(&mut time.park(), async {
        for (name, ms) in [("c", 300u64), ("a", 100), ("b", 200)] {
            let (h2, log) = (h.clone(), log.clone());
            h.spawn(async move {
                h2.sleep(Duration::from_millis(ms)).await;
                log.borrow_mut().push((name, h2.now().as_millis()));
            });
        }
        h.sleep(Duration::from_secs(1)).await;
    })
    .unwrap();
    assert_eq!(*log.borrow(), vec![("a", 100), ("b", 200), ("c", 300)]);
    assert_eq!(exec.live_tasks(), 0);
}

#[test]
fn tasks_wake_each_other_without_timers() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let out = exec
        .block_on(&mut time.park(), async {
            let (tx, rx) = oneshot::channel();
            h.spawn(async move {
                tx.send(42).unwrap();
            });
            rx.await.unwrap()
        })
        .unwrap();
    assert_eq!(out, 42);
    assert_eq!(h.now(), Instant::ZERO);
}

#[test]
fn deadlock_is_reported_not_skipped() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let (_tx, rx) = oneshot::channel::<()>();
    let err = exec.block_on(&mut time.park(), rx).unwrap_err();
    assert_eq!(err, Stalled::Deadlock { at: Instant::ZERO });
    assert!(err.to_string().contains("no runnable task and no timer"));
}

#[test]
fn time_limit_caps_the_jump() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let err = exec
        .block_on(&mut time.park_until(Instant::from_millis(5_000)), h.sleep(Duration::from_secs(3600)))
        .unwrap_err();
    assert!(matches!(err, Stalled::TimeLimit { .. }), "{err}");
}

#[test]
fn a_timeout_race_is_decided_by_the_earlier_deadline() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let won = exec
        .block_on(&mut time.park(), async {
            let slow = std::pin::pin!(h.sleep(Duration::from_secs(3)));
            let timeout = std::pin::pin!(h.sleep(Duration::from_secs(2)));
            match select(slow, timeout).await {
                Either::Left(_) => "task",
                Either::Right(_) => "timeout",
            }
        })
        .unwrap();
    assert_eq!(won, "timeout");
    assert_eq!(h.now(), Instant::from_millis(2000));
    // The loser's timer is still registered once, not once per poll.
    assert!(h.pending_timers() <= 1);
}

#[test]
fn one_timer_entry_per_task() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    exec.block_on(&mut time.park(), async {
        let waker = futures::task::noop_waker();
        for i in 0..100 {
            h.wake_at(Instant::from_millis(1000 - i), &waker);
        }
        assert_eq!(h.pending_timers(), 1);
    })
    .unwrap();
}

#[test]
fn ten_thousand_tasks_with_timers_wake_in_deadline_order_at_their_earliest_deadline() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let woke = Rc::new(RefCell::new(Vec::new()));
    for i in 0..10_000u64 {
        let (h, woke) = (h.clone(), woke.clone());
        // Deadlines interleaved so that registration order is not deadline order.
        let at = Instant::from_millis(1 + (i * 7919) % 10_000);
        h.clone().spawn(async move {
            // A later deadline from the same task does not postpone the earlier one.
            let sleep = std::pin::pin!(h.sleep_until(at));
            let later = std::pin::pin!(h.sleep_until(Instant::from_millis(1_000_000)));
            let _ = select(sleep, later).await;
            woke.borrow_mut().push((h.now(), at));
        });
    }
    exec.block_on(&mut time.park(), h.sleep_until(Instant::from_millis(20_000))).unwrap();
    let woke = woke.borrow();
    assert_eq!(woke.len(), 10_000);
    assert!(woke.iter().all(|(now, at)| now == at), "each woke at its own deadline");
    assert!(woke.windows(2).all(|w| w[0].0 <= w[1].0), "in deadline order");
}

/// Found by the tcpip fuzz target (LeakSanitizer): a task still running when the executor goes
/// holds a `Handle`, as a stack's runner holds its clock; the executor must drop it all the
/// same, and with it what it owns.
#[test]
fn tasks_holding_a_handle_are_dropped_with_the_executor() {
    let owned = Rc::new(());
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let (held, clock) = (owned.clone(), h.clone());
    h.spawn(async move {
        let _held = held;
        clock.sleep(Duration::from_secs(3600)).await;
    });
    exec.block_on(&mut time.park(), h.sleep(Duration::from_secs(1))).expect("no stall");
    assert_eq!(Rc::strong_count(&owned), 2, "the task is still running");
    drop(h);
    drop(exec);
    assert_eq!(Rc::strong_count(&owned), 1, "the task outlived its executor");
}

#[test]
fn two_executors_step_on_one_clock_without_parking() {
    let time = VirtualTime::new();
    let (a, b) = (Executor::new(time.clone()), Executor::new(time.clone()));
    let log = Rc::new(RefCell::new(Vec::new()));
    for (name, exec, period) in [("a", &a, 300u64), ("b", &b, 500)] {
        let (h, log) = (exec.handle(), log.clone());
        exec.handle().spawn(async move {
            for _ in 0..3 {
                h.sleep(Duration::from_millis(period)).await;
                log.borrow_mut().push((name, h.now().as_millis()));
            }
        });
    }
    let mut steps = 0;
    loop {
        let (ia, ib) = (a.run_until_idle(), b.run_until_idle());
        steps += ia.polls + ib.polls;
        let next = [a.next_deadline(), b.next_deadline()].into_iter().flatten().min();
        match next {
            Some(at) => time.advance_to(at),
            None => break,
        }
    }
    assert_eq!(
        *log.borrow(),
        [("a", 300), ("b", 500), ("a", 600), ("a", 900), ("b", 1000), ("b", 1500)],
        "each executor's timers fire in world order"
    );
    assert_eq!(steps, 8, "a first poll and one per timer: nothing is polled twice");
    assert_eq!((a.live_tasks(), b.live_tasks()), (0, 0));
}
