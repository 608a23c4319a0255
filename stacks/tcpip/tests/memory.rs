//! A listener short of memory resets the connections it cannot take, keeps serving the ones it
//! has, and accepts again once memory is back; `connect` fails with `NoResources`. The heap
//! runs short on demand: this test binary's allocator has a limit (the `cap` crate).

mod common;

use std::alloc::System;

use cap::Cap;
use common::*;
use embedded_io_async::{Read, Write};
use morgana::{Spawn, StackError, TcpListener, TcpStack};
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
fn a_listener_short_of_memory_resets_new_connections_and_recovers() {
    let out = run(9, |p| async move {
        let switch = Switch::default();
        // The client needs no reserve: only the server runs short.
        let mut lean = Config::default().ipv4_static(IP_A, 24, None);
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
        let turned_away = match a.connect(addr(IP_B, 7)).await {
            Ok(mut c) => ping_pong(&mut c).await.err(),
            Err(e) => Some(e),
        };
        let during = ping_pong(&mut first).await;
        heap_room(None);

        let mut again = a.connect(addr(IP_B, 7)).await.unwrap();
        let after = ping_pong(&mut again).await;
        (before, refused, turned_away, during, after)
    });
    let log: Vec<String> = out.messages().into_iter().map(String::from).collect();
    let (before, refused, turned_away, during, after) = out.result.expect("no stall");
    assert_eq!(before, Ok(*b"hi"));
    assert_eq!(refused, StackError::NoResources);
    assert!(
        matches!(turned_away, Some(StackError::ConnectionReset | StackError::ConnectionRefused)),
        "{turned_away:?}"
    );
    assert_eq!(during, Ok(*b"hi"), "the connection accepted before keeps working");
    assert_eq!(after, Ok(*b"hi"), "connections are accepted again once memory is back");
    assert!(
        log.iter().any(|l| l == "low on memory: resetting new connections to port 7 until some close"),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l == "memory available again: accepting connections"), "{log:?}");
}
