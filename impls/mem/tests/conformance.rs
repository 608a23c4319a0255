//! Every in-memory device passes its conformance suite.

use std::future::Future;

use morgana::Duration;
use morgana_mem::{FaultConfig, FaultyBlock, FaultyNet, ManualClock, MemBlock, MemKv, Switch, pair};
use morgana_rt::{Executor, Handle, VirtualTime};
use morgana_testkit as suite;

fn run<F: Future>(f: impl FnOnce(Handle<VirtualTime>) -> F) -> F::Output {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    exec.block_on(&mut time.park(), f(exec.handle())).expect("no stall")
}

#[test]
fn mem_kv_passes_the_kv_suite() {
    run(|h| async move { suite::kv::check_rw(&MemKv::new(h)).await });
}

#[test]
fn mem_kv_passes_the_read_only_suite() {
    run(|h| async move {
        let kv = MemKv::new(h);
        let contents: &[(&str, &[u8])] =
            &[("/index.html", b"<h1>hi</h1>"), ("/css/site.css", b"body{}"), ("/a/b/c/deep", b"deep value")];
        for (path, value) in contents {
            morgana::KvRw::set(&kv, &path.parse().unwrap(), value).await.unwrap();
        }
        suite::kv::check_ro(&kv, contents).await
    });
}

#[test]
fn mem_kv_reports_no_space() {
    run(|h| async move {
        use morgana::{KvError, KvRw};
        let kv = MemKv::new(h).with_capacity_limit(10);
        kv.set(&"/a".parse().unwrap(), b"0123456789").await.unwrap();
        assert_eq!(kv.set(&"/b".parse().unwrap(), b"x").await, Err(KvError::NoSpace));
        kv.set(&"/a".parse().unwrap(), b"short").await.unwrap();
        kv.set(&"/b".parse().unwrap(), b"x").await.unwrap();
    });
}

#[test]
fn mem_block_passes_the_block_suites() {
    run(|_| async {
        suite::block::check_rw(&mut MemBlock::new(512, 64)).await;
        suite::block::check_rw(&mut MemBlock::new(4096, 4)).await;
        suite::block::check_read_only(&mut MemBlock::new(512, 8).read_only()).await;
    });
}

#[test]
fn faulty_block_without_faults_passes_the_block_suite() {
    run(|_| async { suite::block::check_rw(&mut FaultyBlock::new(MemBlock::new(512, 16), 1)).await });
}

#[test]
fn mem_net_pair_and_switch_pass_the_net_suite() {
    run(|h| async move {
        let (mut a, mut b) = pair([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        suite::net::check_pair(&mut a, &mut b, &h).await;
        let switch = Switch::default();
        let mut ports: Vec<_> = (1..=4).map(|i| switch.port([2, 0, 0, 0, 1, i])).collect();
        let (left, right) = ports.split_at_mut(2);
        suite::net::check_pair(&mut left[0], &mut right[1], &h).await;
    });
}

#[test]
fn faulty_net_without_faults_passes_the_net_suite() {
    run(|h| async move {
        let (a, b) = pair([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let mut a = FaultyNet::new(a, h.clone(), FaultConfig::default(), 1);
        let mut b = FaultyNet::new(
            b,
            h.clone(),
            FaultConfig { delay: Duration::from_millis(5), ..Default::default() },
            2,
        );
        suite::net::check_pair(&mut a, &mut b, &h).await;
    });
}

#[test]
fn manual_clock_wakes_timers_when_moved() {
    use futures::task::noop_waker;
    use morgana::Clock;
    use std::task::{Context, Poll};
    let clock = ManualClock::new(Duration::from_secs(1_000_000));
    let mut sleep = std::pin::pin!(clock.sleep(Duration::from_secs(5)));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(sleep.as_mut().poll(&mut cx).is_pending());
    clock.advance(Duration::from_secs(4));
    assert!(sleep.as_mut().poll(&mut cx).is_pending());
    clock.advance(Duration::from_secs(1));
    assert_eq!(sleep.as_mut().poll(&mut cx), Poll::Ready(()));
    assert_eq!(morgana::WallClock::now_unix(&clock), Duration::from_secs(1_000_005));
}
