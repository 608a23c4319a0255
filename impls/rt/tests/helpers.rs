//! The signature crate's helpers on the real executor and virtual time: `time::timeout`,
//! `time::deadline` and `task::TaskGroup`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures::channel::oneshot;
use morgana::time::{TimedOut, deadline, timeout};
use morgana::{Clock, Instant, Spawn, TaskGroup};
use morgana_rt::{Executor, VirtualTime};

#[test]
fn timeout_gives_the_output_of_a_future_that_is_in_time() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let out = exec
        .block_on(&mut time.park(), async {
            timeout(&h, Duration::from_secs(2), async {
                h.sleep(Duration::from_secs(1)).await;
                7
            })
            .await
        })
        .unwrap();
    assert_eq!(out, Ok(7));
    assert_eq!(h.now(), Instant::from_millis(1000), "done when the future was, not at the deadline");
}

#[test]
fn timeout_fires_at_its_time_and_drops_the_future() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let dropped = Rc::new(Cell::new(false));
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let (_tx, rx) = oneshot::channel::<()>();
    let flag = Flag(dropped.clone());
    let out = exec
        .block_on(&mut time.park(), async {
            timeout(&h, Duration::from_millis(1500), async move {
                let _flag = flag;
                rx.await
            })
            .await
        })
        .unwrap();
    assert_eq!(out, Err(TimedOut));
    assert_eq!(h.now(), Instant::from_millis(1500));
    assert!(dropped.get(), "the timed-out future is cancelled");
    assert_eq!(TimedOut.to_string(), "timed out");
    assert_eq!(morgana::StackError::from(TimedOut), morgana::StackError::TimedOut);
}

#[test]
fn deadline_is_absolute_and_a_ready_future_wins_even_past_it() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let (late, ready) = exec
        .block_on(&mut time.park(), async {
            h.sleep(Duration::from_secs(1)).await;
            // Counted from the origin, not from now: half a second is left.
            let late = deadline(&h, Instant::from_millis(1500), h.sleep(Duration::from_secs(3))).await;
            let at = h.now();
            let ready = deadline(&h, Instant::ZERO, async { "ready" }).await;
            ((late, at), ready)
        })
        .unwrap();
    assert_eq!(late, (Err(TimedOut), Instant::from_millis(1500)));
    assert_eq!(ready, Ok("ready"));
}

#[test]
fn a_task_group_counts_live_tasks_and_admits_only_under_its_limit() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let started = Rc::new(RefCell::new(Vec::new()));
    let tasks = TaskGroup::new(h.clone(), 2);
    exec.block_on(&mut time.park(), async {
        // Five jobs of one second each, two at a time: they start at 0, 0, 1, 1, 2 s.
        for n in 0..5u64 {
            let ((), place) = tasks.admit(async {}).await;
            assert!(tasks.live() <= 2, "{} live", tasks.live());
            let (h2, started) = (h.clone(), started.clone());
            tasks.spawn_in(place, async move {
                started.borrow_mut().push((n, h2.now().as_millis()));
                h2.sleep(Duration::from_secs(1)).await;
            });
        }
        assert_eq!(tasks.live(), 1);
        tasks.until_fewer_than(1).await;
    })
    .unwrap();
    assert_eq!(*started.borrow(), vec![(0, 0), (1, 0), (2, 1000), (3, 1000), (4, 2000)]);
    assert_eq!(h.now(), Instant::from_millis(3000), "all done when the last one was");
    assert_eq!(tasks.live(), 0);
    assert_eq!(exec.live_tasks(), 0);
}

#[test]
fn two_acceptors_sharing_a_group_never_pass_its_limit() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let tasks = TaskGroup::new(h.clone(), 3);
    let most = Rc::new(Cell::new(0));
    exec.block_on(&mut time.park(), async {
        for acceptor in 0..2u64 {
            let (tasks, h2, most) = (tasks.clone(), h.clone(), most.clone());
            h.spawn(async move {
                for _ in 0..6 {
                    // An "accept" that takes a while, as a real one does.
                    let ((), place) = tasks.admit(h2.sleep(Duration::from_millis(10 + acceptor))).await;
                    most.set(most.get().max(tasks.live()));
                    let h3 = h2.clone();
                    tasks.spawn_in(place, async move { h3.sleep(Duration::from_millis(100)).await });
                }
            });
        }
        // 12 jobs of 100 ms, 3 at a time: done in about 400 ms.
        h.sleep(Duration::from_secs(2)).await;
    })
    .unwrap();
    assert_eq!(most.get(), 3);
    assert_eq!(tasks.live(), 0);
}

#[test]
fn a_dropped_place_and_a_plain_spawn_count_too() {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let tasks = TaskGroup::unlimited(h.clone());
    exec.block_on(&mut time.park(), async {
        let place = tasks.reserve();
        assert_eq!(tasks.live(), 1);
        drop(place);
        assert_eq!(tasks.live(), 0);
        for _ in 0..100 {
            let h2 = h.clone();
            tasks.spawn(async move { h2.sleep(Duration::from_secs(1)).await });
        }
        assert_eq!(tasks.live(), 100);
        tasks.until_fewer_than(1).await;
    })
    .unwrap();
    assert_eq!(h.now(), Instant::from_millis(1000));
}

#[test]
fn a_lock_serves_its_takers_in_order_and_a_cancelled_one_gives_its_place_up() {
    use morgana::sync::Lock;
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let h = exec.handle();
    let lock = Rc::new(Lock::new(Vec::new()));
    let order = exec
        .block_on(&mut time.park(), {
            let (lock, h) = (lock.clone(), h.clone());
            async move {
                let first = lock.lock().await;
                // Three takers queue behind the holder; the second gives up at 5 ms.
                for n in 0..3u32 {
                    let (lock, h2) = (lock.clone(), h.clone());
                    h.spawn(async move {
                        let take = async {
                            let mut g = lock.lock().await;
                            h2.sleep(Duration::from_millis(1)).await;
                            g.push(n);
                        };
                        if n == 1 {
                            let _ = timeout(&h2, Duration::from_millis(5), take).await;
                        } else {
                            take.await;
                        }
                    });
                    h.sleep(Duration::from_micros(1)).await;
                }
                h.sleep(Duration::from_millis(10)).await;
                drop(first);
                h.sleep(Duration::from_millis(10)).await;
                lock.lock().await.clone()
            }
        })
        .unwrap();
    assert_eq!(order, [0, 2], "the cancelled taker left no entry and did not stall the one behind it");
    assert_eq!(Rc::try_unwrap(lock).ok().unwrap().into_inner(), [0, 2]);
}
