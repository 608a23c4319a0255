//! The generic `echo` lib on host sockets, with its clients in the same event loop.
//!
//! There is no in-memory TCP stack yet, so this runs `echo::start` on `SocketStack` over
//! loopback; the lib itself only knows `TcpStack`.

use std::net::{Ipv4Addr, SocketAddr};
use std::pin::pin;

use futures::future::{Either, join_all, select};
use morgana::embedded_io_async::{Read, Write};
use morgana::{Flow, FlowWrite, TcpStack};
use morgana_netns::free_port;
use morgana_unix::{Runtime, SocketStack};

async fn client<S: TcpStack>(stack: S, addr: SocketAddr, seed: u8) -> Vec<u8> {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i as u8).wrapping_mul(seed)).collect();
    let conn = stack.connect(addr).await.unwrap();
    let (mut rx, mut tx) = conn.split();
    let send = async {
        tx.write_all(&data).await.unwrap();
        tx.shutdown_write().await.unwrap();
    };
    let receive = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match rx.read(&mut buf).await.unwrap() {
                0 => break got,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let ((), got) = futures::join!(send, receive);
    assert!(got == data, "client {seed}: {} bytes back, byte-exact", got.len());
    got
}

#[test]
fn echo_serves_concurrent_connections_from_the_same_loop() {
    let mut rt = Runtime::new().unwrap();
    let p = rt.platform();
    let stack = SocketStack::with_ipv4(Ipv4Addr::LOCALHOST);
    let port = free_port();
    // Server and clients share one stack by reference: `&S` is a `TcpStack` too.
    let server = echo::start(p.clone(), &stack, echo::Config { port, backlog: 64 });
    // `select` polls the server first, and its first poll binds the port.
    let clients = async {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        join_all((1..=20).map(|seed| client(&stack, addr, seed))).await.len()
    };
    let served = rt.block_on(async {
        match select(pin!(server), pin!(clients)).await {
            Either::Left((r, _)) => panic!("the server stopped: {r:?}"),
            Either::Right((n, _)) => n,
        }
    });
    assert_eq!(served.unwrap(), 20);
}
