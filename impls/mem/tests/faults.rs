//! The fault injectors inject what they claim, at the rates they claim, reproducibly.

use std::future::Future;

use morgana::block::Block;
use morgana::{BlockError, Duration, Instant};
use morgana_mem::{FaultConfig, FaultStats, FaultyBlock, FaultyNet, MemBlock, pair};
use morgana_rt::{Executor, Handle, VirtualTime};
use morgana_testkit::net::{frame, recv, send};

fn run<F: Future>(f: impl FnOnce(Handle<VirtualTime>) -> F) -> F::Output {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    exec.block_on(&mut time.park(), f(exec.handle())).expect("no stall")
}

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// Send `n` numbered frames a -> b through `config`; the sequence numbers b saw, and the stats.
fn transfer(n: u16, config: FaultConfig, seed: u64) -> (Vec<u16>, FaultStats, Vec<Vec<u8>>) {
    run(|h| async move {
        let (mut a, b) = pair(A, B);
        let mut b = FaultyNet::new(b, h.clone(), config, seed);
        let sent: Vec<Vec<u8>> = (0..n).map(|i| frame(B, A, i, 200)).collect();
        let mut got = Vec::new();
        let mut frames = Vec::new();
        // In batches that fit the switch's queue.
        for batch in sent.chunks(250) {
            for f in batch {
                send(&mut a, f).await;
            }
            while let Some(f) = recv(&mut b, &h, Duration::from_millis(100)).await {
                got.push(u16::from_be_bytes([f[14], f[15]]));
                frames.push(f);
            }
        }
        (got, b.fault_stats(), frames)
    })
}

#[test]
fn loss_rate_is_within_tolerance() {
    let (got, stats, _) = transfer(10_000, FaultConfig { loss: 0.10, ..Default::default() }, 42);
    let delivered = got.len();
    // Binomial(10000, 0.9): sd = 30, so +-150 is five sigma.
    assert!((8_850..=9_150).contains(&delivered), "delivered {delivered} of 10000 at 10% loss");
    assert_eq!(stats.lost as usize, 10_000 - delivered);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, got, "loss alone does not reorder");
}

#[test]
fn faults_replay_from_the_seed() {
    let cfg = FaultConfig::lossy(0.2);
    assert_eq!(transfer(500, cfg, 7).0, transfer(500, cfg, 7).0);
    assert_ne!(transfer(500, cfg, 7).0, transfer(500, cfg, 8).0);
}

#[test]
fn duplication_delivers_twice() {
    let (got, stats, _) = transfer(2_000, FaultConfig { duplicate: 0.25, ..Default::default() }, 3);
    assert!((400..=600).contains(&stats.duplicated), "duplicated {}", stats.duplicated);
    assert_eq!(got.len() as u64, 2_000 + stats.duplicated);
}

#[test]
fn reordering_lets_later_frames_overtake() {
    let (got, stats, _) = transfer(2_000, FaultConfig { reorder: 0.1, ..Default::default() }, 4);
    assert!(stats.reordered > 100, "reordered {}", stats.reordered);
    assert_eq!(got.len(), 2_000, "reordering loses nothing");
    // A frame is overtaken when some frame sent after it arrived before it.
    let mut max_seen = 0;
    let overtaken = got
        .iter()
        .filter(|&&seq| {
            let late = seq < max_seen;
            max_seen = max_seen.max(seq);
            late
        })
        .count() as u64;
    assert!(overtaken * 10 >= stats.reordered * 9, "{overtaken} overtaken of {} held back", stats.reordered);
}

#[test]
fn corruption_flips_bits() {
    let (_, stats, frames) = transfer(1_000, FaultConfig { corrupt: 0.3, ..Default::default() }, 5);
    let damaged = frames
        .iter()
        .filter(|f| {
            let seq = u16::from_be_bytes([f[14], f[15]]);
            **f != frame(B, A, seq, 200)
        })
        .count() as u64;
    assert!((240..=360).contains(&stats.corrupted), "corrupted {}", stats.corrupted);
    // A flip in the header can change which frame it looks like, or drop it from the suite's
    // filter; most corrupted frames are visibly damaged.
    assert!(damaged * 10 >= stats.corrupted * 8, "{damaged} visibly damaged of {}", stats.corrupted);
}

#[test]
fn delay_holds_frames_in_virtual_time() {
    run(|h| async move {
        let (mut a, b) = pair(A, B);
        let mut b = FaultyNet::new(
            b,
            h.clone(),
            FaultConfig { delay: Duration::from_millis(250), ..Default::default() },
            1,
        );
        send(&mut a, &frame(B, A, 1, 100)).await;
        let f = recv(&mut b, &h, Duration::from_secs(1)).await;
        assert!(f.is_some());
        assert_eq!(morgana::Clock::now(&h), Instant::from_millis(250));
    });
}

#[test]
fn block_fails_after_n_writes() {
    run(|_| async {
        let mut dev = FaultyBlock::new(MemBlock::new(512, 8), 1).fail_after_writes(3);
        let s = vec![1u8; 512];
        for i in 0..3 {
            dev.write(i, &s).await.unwrap();
        }
        assert_eq!(dev.write(3, &s).await, Err(BlockError::Io(5)));
        assert_eq!(dev.write(0, &s).await, Err(BlockError::Io(5)), "a dead disk stays dead");
        let mut back = vec![0u8; 512];
        dev.read(3, &mut back).await.unwrap();
        assert_eq!(back, vec![0u8; 512], "a failed write changed nothing");
    });
}

#[test]
fn power_cut_loses_unflushed_writes_and_keeps_flushed_ones() {
    run(|_| async {
        let mut dev = FaultyBlock::new(MemBlock::new(512, 8), 1);
        dev.write(0, &[0xaa; 512]).await.unwrap();
        dev.flush().await.unwrap();
        dev.write(1, &[0xbb; 1024]).await.unwrap();
        let cut = dev.power_cut().await.unwrap();
        assert_eq!((cut.unflushed, cut.lost, cut.torn), (2, 2, 0));
        let mut back = vec![0u8; 1536];
        dev.read(0, &mut back).await.unwrap();
        assert!(back[..512].iter().all(|b| *b == 0xaa), "the flushed write survives");
        assert!(back[512..].iter().all(|b| *b == 0), "the unflushed writes are lost");
    });
}

#[test]
fn power_cut_can_tear_a_sector() {
    run(|_| async {
        let mut dev = FaultyBlock::new(MemBlock::new(512, 4), 9).power_cut_faults(0.0, 1.0);
        dev.write(2, &[0xcc; 512]).await.unwrap();
        let cut = dev.power_cut().await.unwrap();
        assert_eq!(cut.torn, 1);
        let mut back = vec![0u8; 512];
        dev.read(2, &mut back).await.unwrap();
        let new = back.iter().filter(|b| **b == 0xcc).count();
        assert!(new > 0 && new < 512, "a torn sector is part new ({new} bytes), part old");
        assert!(back[..new].iter().all(|b| *b == 0xcc), "the new part is a prefix");
    });
}

#[test]
fn pending_writes_persist_in_any_order_at_a_power_cut() {
    // Two writes to different sectors with no flush between: every subset can survive.
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let got = run(|_| async move {
            let mut dev = FaultyBlock::new(MemBlock::new(512, 4), seed).power_cut_faults(0.5, 0.0);
            dev.write(0, &[1; 512]).await.unwrap();
            dev.write(1, &[2; 512]).await.unwrap();
            dev.power_cut().await.unwrap();
            let mut back = vec![0u8; 1024];
            dev.read(0, &mut back).await.unwrap();
            (back[0], back[512])
        });
        seen.insert(got);
    }
    assert_eq!(seen.len(), 4, "both, neither, only the first, only the later one: {seen:?}");
}

#[test]
fn reads_can_flip_bits_or_come_from_another_sector_without_changing_the_disk() {
    run(|_| async {
        let mut dev = FaultyBlock::new(MemBlock::new(512, 64), 5);
        for s in 0..64 {
            dev.write(s, &[s as u8; 512]).await.unwrap();
        }
        dev.flush().await.unwrap();
        dev.set_io_faults(0.5, 0.0, 0.0);
        let mut buf = vec![0u8; 512 * 64];
        dev.read(0, &mut buf).await.unwrap();
        let flipped = buf.chunks(512).enumerate().filter(|(i, s)| s.iter().any(|b| *b != *i as u8)).count();
        assert_eq!(flipped as u64, dev.faults().flipped);
        assert!((16..48).contains(&flipped), "about half the sectors flipped: {flipped}");
        dev.set_io_faults(0.0, 1.0, 0.0);
        dev.read(10, &mut buf[..512]).await.unwrap();
        assert_eq!(dev.faults().misdirected_reads, 1);
        assert!(buf[..512].iter().all(|b| *b == buf[0]), "a whole other sector");
        dev.set_io_faults(0.0, 0.0, 0.0);
        dev.read(0, &mut buf).await.unwrap();
        assert!(
            buf.chunks(512).enumerate().all(|(i, s)| s.iter().all(|b| *b == i as u8)),
            "the disk is intact"
        );
    });
}

#[test]
fn a_misdirected_write_lands_elsewhere_and_rot_is_durable() {
    run(|_| async {
        let mut dev = FaultyBlock::new(MemBlock::new(512, 64), 2).misdirected_writes(1.0);
        dev.write(7, &[0xee; 512]).await.unwrap();
        dev.flush().await.unwrap();
        assert_eq!(dev.faults().misdirected_writes, 1);
        let bytes = dev.inner().as_bytes();
        assert!(bytes[7 * 512..8 * 512].iter().all(|b| *b == 0), "the intended sector is untouched");
        assert_eq!(bytes.iter().filter(|b| **b == 0xee).count(), 512, "the data went somewhere else");
        dev.rot(3, 9).await.unwrap();
        dev.power_cut().await.unwrap();
        assert_eq!(dev.inner().as_bytes()[3 * 512 + 1], 2, "rot survives a power cut");
    });
}
