//! A connection's buffers grow with a transfer over a long path and give their memory back once
//! the connection is quiet, so an idle connection left over from a bulk transfer costs what a
//! new one does; the next transfer grows them again, and every byte arrives intact. The heap is
//! measured by this test binary's allocator (the `cap` crate).

mod common;

use std::alloc::System;
use std::time::Duration;

use cap::Cap;
use common::*;
use embedded_io_async::{Read, Write};
use morgana::{Clock, Platform, Spawn, StackError, TcpListener, TcpStack};
use morgana_mem::{FaultConfig, Switch};
use morgana_tcpip::Config;

/// The heap of this test binary, counted.
#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// Bytes in each transfer: enough for both buffers to grow to the cap below.
const LEN: usize = 8 << 20;

/// Write `len` bytes of `Pattern::new(seed)`.
async fn write_pattern(w: &mut morgana_tcpip::Connection, seed: u64, len: usize) -> Result<(), StackError> {
    let mut pat = Pattern::new(seed);
    let mut buf = vec![0u8; 8192];
    for _ in 0..len / buf.len() {
        pat.fill(&mut buf);
        w.write_all(&buf).await?;
    }
    w.flush().await
}

/// Read `len` bytes and check them against `Pattern::new(seed)`.
async fn read_pattern(r: &mut morgana_tcpip::Connection, seed: u64, len: usize) -> Result<(), StackError> {
    let mut pat = Pattern::new(seed);
    let (mut got, mut want) = (vec![0u8; 8192], vec![0u8; 8192]);
    for chunk in 0..len / got.len() {
        r.read_exact(&mut got).await.map_err(|_| StackError::ConnectionReset)?;
        pat.fill(&mut want);
        assert!(got == want, "byte mismatch in chunk {chunk}");
    }
    Ok(())
}

#[test]
fn buffers_grown_by_a_transfer_shrink_back_once_the_connection_is_quiet() {
    let out = run(3, |p| async move {
        let switch = Switch::default();
        let path = FaultConfig { delay: Duration::from_millis(10), ..FaultConfig::default() };
        // 1 MiB at most: the in-memory switch queues 1024 frames per port (see `loss_recovery`).
        let mut config = Config::default();
        config.tcp_buffer_max = 1 << 20;
        let initial = config.tcp_rx_buffer + config.tcp_tx_buffer;
        let a = stack_on(&p, &switch, MAC_A, config.clone().ipv4_static(IP_A, 24, None), path, 1);
        let b = stack_on(&p, &switch, MAC_B, config.ipv4_static(IP_B, 24, None), path, 2);
        let mut listener = b.listen(7, 1).await.unwrap();
        // B reads each transfer whole, then answers one byte.
        p.spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            for seed in 1..=2 {
                read_pattern(&mut conn, seed, LEN).await.unwrap();
                conn.write_all(b"k").await.unwrap();
            }
            // Keep the connection open while A looks at the heap.
            let _ = conn.read(&mut [0u8; 1]).await;
        });
        let mut conn = a.connect(addr(IP_B, 7)).await.unwrap();
        p.clock().sleep(Duration::from_millis(100)).await;
        let idle = HEAP.allocated();
        let mut grown_by = Vec::new();
        let mut quiet_by = Vec::new();
        for seed in 1..=2 {
            let start = p.clock().now();
            write_pattern(&mut conn, seed, LEN).await.unwrap();
            conn.read_exact(&mut [0u8; 1]).await.unwrap();
            let secs = (p.clock().now() - start).as_secs_f64();
            grown_by.push(HEAP.allocated().saturating_sub(idle));
            p.clock().sleep(Duration::from_secs(2)).await;
            quiet_by.push(HEAP.allocated().saturating_sub(idle));
            eprintln!(
                "transfer {seed}: {:.1} MiB/s, heap +{} KiB after it, +{} KiB after 2 s quiet",
                LEN as f64 / secs / f64::from(1 << 20),
                grown_by[seed as usize - 1] >> 10,
                quiet_by[seed as usize - 1] >> 10
            );
        }
        drop(conn);
        (grown_by, quiet_by, initial)
    });
    let (grown_by, quiet_by, initial) = out.result.unwrap();
    for (grown, quiet) in grown_by.iter().zip(&quiet_by) {
        // A's send buffer and B's receive buffer grew to about 1 MiB each...
        assert!(*grown > 1 << 20, "the buffers did not grow: +{grown} bytes");
        // ... and gave it back. What is left is not buffers: the switch's frame queues keep the
        // capacity the burst gave them, and B holds its 16 KiB of read buffers (about 56 KiB;
        // without the shrink, 2 MiB).
        assert!(*quiet < 3 * initial, "still +{quiet} bytes after 2 s quiet (one connection: {initial})");
    }
}
