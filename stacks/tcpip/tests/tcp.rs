//! TCP between two stacks on the in-memory switch.

mod common;

use std::time::Instant as WallInstant;

use common::*;
use morgana::{Clock, Flow, Platform, Spawn, TcpListener, TcpStack};
use morgana_mem::FaultConfig;
use morgana_tcpip::Config;

const MIB: usize = 1 << 20;

/// A sends `len` bytes to B through `faults`; B checks every byte. Returns what B counted.
fn transfer(seed: u64, faults: FaultConfig, len: usize) -> usize {
    let out = run(seed, |p| async move {
        let (a, b) = two_stacks(&p, faults, seed, Config::default());
        let mut listener = b.listen(7, 1).await.unwrap();
        let (done_tx, done_rx) = futures::channel::oneshot::channel();
        p.spawn(async move {
            let (mut conn, peer) = listener.accept().await.unwrap();
            assert_eq!(peer.ip(), IP_A);
            let got = expect_pattern(&mut conn, seed).await;
            let _ = done_tx.send(got);
        });
        let mut conn = a.connect(addr(IP_B, 7)).await.unwrap();
        let r = send_pattern(&mut conn, seed, len).await;
        if let Err(e) = r {
            panic!("send failed at {}: {e}", p.clock().now());
        }
        conn.close().await.unwrap();
        done_rx.await.unwrap().unwrap()
    });
    eprintln!("seed {seed}: virtual {} wall {:?}", out.end, out.wall);
    out.result.unwrap_or_else(|e| panic!("seed {seed}: {e}"))
}

#[test]
fn ten_mib_clean() {
    let t = WallInstant::now();
    assert_eq!(transfer(1, FaultConfig::default(), 10 * MIB), 10 * MIB);
    eprintln!("clean 10 MiB: {:?}", t.elapsed());
}

#[test]
fn ten_mib_lossy_one_seed() {
    let t = WallInstant::now();
    assert_eq!(transfer(2, FaultConfig::lossy(0.1), 10 * MIB), 10 * MIB);
    eprintln!("lossy 10 MiB: {:?}", t.elapsed());
}

#[test]
fn debug_connect_lossy() {
    for seed in 0..20 {
        let out = run(seed, |p| async move {
            let (a, b) = two_stacks(&p, FaultConfig::lossy(0.1), seed, Config::default());
            let _listener = b.listen(7, 1).await.unwrap();
            let r = a.connect(addr(IP_B, 7)).await.map(|_| ());
            (r, p.clock().now())
        });
        eprintln!("seed {seed}: {:?}", out.result);
    }
}
