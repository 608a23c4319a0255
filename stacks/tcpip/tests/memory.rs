//! A listener short of memory never resets a connection: it serves the ones whose buffers
//! exist, lets new SYNs wait (dropped, so clients retry) and takes them once memory is back;
//! `connect` fails with `NoResources`. The heap
//! runs short on demand: this test binary's allocator has a limit (the `cap` crate).

mod common;

use std::alloc::System;

use cap::Cap;
use common::*;
use embedded_io_async::{Read, Write};
use morgana::{Clock, Platform, Spawn, StackError, TcpListener, TcpStack};
use morgana_mem::{FaultConfig, Switch};
use morgana_tcpip::Config;

/// The heap of this test binary: `set_limit` makes it short.
#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// Leave `room` bytes of heap from now on (`None`: no limit).
fn heap_room(room: Option<usize>) {
    let limit = room.map_or(usize::MAX, |r| HEAP.allocated() + r);
    HEAP.set_limit(limit).expect("a limit above what is allocated");
}

/// Echo `hi` over `conn`: what came back, or the error.
async fn ping_pong(conn: &mut morgana_tcpip::Connection) -> Result<[u8; 2], StackError> {
    conn.write_all(b"hi").await?;
    let mut buf = [0u8; 2];
    conn.read_exact(&mut buf).await.map_err(|e| match e {
        embedded_io_async::ReadExactError::Other(e) => e,
        embedded_io_async::ReadExactError::UnexpectedEof => StackError::ConnectionReset,
    })?;
    Ok(buf)
}

#[test]
fn a_listener_short_of_memory_never_resets_and_takes_connections_again_once_memory_is_back() {
    let out = run(9, |p| async move {
        let switch = Switch::default();
        // The client needs no reserve and small buffers: only the server runs short.
        let mut lean = Config::default().ipv4_static(IP_A, 24, None).tcp_buffers(8192, 8192);
        lean.memory_reserve = 0;
        let a = stack_on(&p, &switch, MAC_A, lean, FaultConfig::default(), 1);
        let b = stack_on(
            &p,
            &switch,
            MAC_B,
            Config::default().ipv4_static(IP_B, 24, None),
            FaultConfig::default(),
            2,
        );
        let mut listener = b.listen(7, 2).await.unwrap();
        p.spawn({
            let p = p.clone();
            async move {
                while let Ok((mut conn, _)) = listener.accept().await {
                    p.spawn(async move {
                        let mut buf = [0u8; 64];
                        while let Ok(n @ 1..) = conn.read(&mut buf).await {
                            if conn.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        });
        let mut first = a.connect(addr(IP_B, 7)).await.unwrap();
        let before = ping_pong(&mut first).await;

        // Room for the client's buffers (it keeps no reserve), not for the server's reserve.
        heap_room(Some(200 * 1024));
        let refused = match b.connect(addr(IP_A, 9)).await {
            Err(e) => e,
            Ok(_) => panic!("connect with no memory for its buffers succeeded"),
        };
        // The pool's two sockets already have their buffers: both connections are served,
        // though neither can be replaced.
        let mut served = Vec::new();
        let mut kept = Vec::new();
        for _ in 0..2 {
            let mut c = a.connect(addr(IP_B, 7)).await.unwrap();
            served.push(ping_pong(&mut c).await);
            kept.push(c);
        }
        // Now no socket listens: the next SYN is dropped (no reset), and the client retries.
        let waiting = {
            let a = a.clone();
            let p2 = p.clone();
            let (tx, rx) = futures::channel::oneshot::channel();
            p.spawn(async move {
                let started = p2.clock().now();
                let r = match a.connect(addr(IP_B, 7)).await {
                    Ok(mut c) => ping_pong(&mut c).await,
                    Err(e) => Err(e),
                };
                let _ = tx.send((r, p2.clock().now() - started));
            });
            rx
        };
        p.clock().sleep(morgana::Duration::from_secs(2)).await;
        let during = ping_pong(&mut first).await;
        heap_room(None);
        let (late, waited) = waiting.await.unwrap();
        (before, refused, served, during, late, waited)
    });
    let log: Vec<String> = out.messages().into_iter().map(String::from).collect();
    let (before, refused, served, during, late, waited) = out.result.expect("no stall");
    assert_eq!(before, Ok(*b"hi"));
    assert_eq!(refused, StackError::NoResources);
    assert_eq!(served, vec![Ok(*b"hi"), Ok(*b"hi")], "connections whose buffers exist are served");
    assert_eq!(during, Ok(*b"hi"), "the connection accepted before keeps working");
    assert_eq!(late, Ok(*b"hi"), "a connection that waited is taken once memory is back");
    assert!(waited >= morgana::Duration::from_secs(2), "it waited for memory ({waited:?})");
    let warned = log.iter().filter(|l| l.starts_with("low on memory")).count();
    assert_eq!(warned, 1, "logged once: {log:?}");
    assert!(log.iter().any(|l| l.contains("memory available again")), "{log:?}");
}
