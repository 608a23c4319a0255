//! The stack's counters move as a user would expect: frames both ways, a connection accepted
//! and open while it lasts, retransmissions under loss, none without.

mod common;

use common::*;
use morgana::{Clock, Duration, Platform, Spawn, TcpListener, TcpStack};
use morgana_mem::FaultConfig;
use morgana_tcpip::Config;

/// Send 256 KiB from A to B through links with `loss`: B's counters while the connection is
/// open, and both stacks' once it has closed.
fn transfer(loss: f64) -> (morgana_tcpip::Counters, morgana_tcpip::Counters, morgana_tcpip::Counters) {
    let out = run(5, move |p| async move {
        let faults = FaultConfig { loss, ..FaultConfig::default() };
        let (a, b) = two_stacks(&p, faults, 3, Config::default());
        let mut listener = b.listen(7, 4).await.unwrap();
        let (tx, rx) = futures::channel::oneshot::channel();
        p.spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let got = expect_pattern(&mut conn, 1).await;
            let _ = tx.send(got);
        });
        let mut conn = a.connect(addr(IP_B, 7)).await.unwrap();
        p.clock().sleep(Duration::from_millis(50)).await;
        let during = b.counters();
        send_pattern(&mut conn, 1, 256 * 1024).await.unwrap();
        drop(conn);
        let got = rx.await.unwrap();
        assert_eq!(got, Ok(256 * 1024));
        p.clock().sleep(Duration::from_secs(120)).await;
        (during, a.counters(), b.counters())
    });
    out.result.expect("no stall")
}

#[test]
fn counters_show_frames_connections_and_retransmissions_under_loss() {
    let (during, a, b) = transfer(0.0);
    assert_eq!((during.accepted, during.open), (1, 1), "{during:?}");
    assert_eq!((b.accepted, b.open, b.refused), (1, 0, 0), "closed: {b:?}");
    assert!(b.net.rx_frames > 100 && a.net.tx_frames > 100, "{a:?} {b:?}");
    assert_eq!(a.retransmits, 0, "no loss, no retransmission: {a:?}");
    let (_, lossy, _) = transfer(0.05);
    assert!(lossy.retransmits > 0, "5 % loss: {lossy:?}");
    assert!(lossy.net.tx_frames > a.net.tx_frames, "retransmissions are frames too: {lossy:?}");
}
