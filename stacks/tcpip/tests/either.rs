//! `Either` of two stacks is a stack: generic app code runs on either side unchanged.

mod common;

use common::*;
use embedded_io_async::{Read, Write};
use morgana::{Flow, FlowWrite, Resolver, Spawn, TcpListener, TcpStack, UdpSocket, UdpStack};
use morgana_mem::FaultConfig;
use morgana_tcpip::either::Either;
use morgana_tcpip::{Config, Stack};

/// An app generic over one stack type: echo one connection, upper-cased.
async fn serve_one<S: TcpStack>(stack: S) {
    let mut l = stack.listen(7, 1).await.unwrap();
    let (conn, _) = l.accept().await.unwrap();
    let (mut r, mut w) = conn.split();
    let mut buf = [0u8; 64];
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n].to_ascii_uppercase()).await.unwrap();
    }
    w.shutdown_write().await.unwrap();
}

async fn ask<S: TcpStack + UdpStack + Resolver>(stack: &S) -> (String, u16, usize) {
    let mut c = stack.connect(addr(IP_B, 7)).await.unwrap();
    c.write_all(b"either way").await.unwrap();
    c.shutdown_write().await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        let n = c.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    c.close().await.unwrap();
    let udp = stack.bind(4444).await.unwrap();
    let literal = stack.resolve("10.9.8.7").await.unwrap();
    (String::from_utf8(out).unwrap(), udp.local_addr().port(), literal.len())
}

#[test]
fn either_side_serves_and_connects() {
    let out = run(30, |p| async move {
        let (a, b) = two_stacks(&p, FaultConfig::default(), 30, Config::default());
        let server: Either<Stack, Stack> = Either::Right(b);
        p.spawn(serve_one(server));
        let client: Either<Stack, Stack> = Either::Left(a);
        ask(&client).await
    });
    assert_eq!(out.result.unwrap(), ("EITHER WAY".to_string(), 4444, 1));
}
