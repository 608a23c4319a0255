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

/// What the wiring of a target would build, from a command line.
fn wire(
    p: &morgana_mem::sim::SimPlatform,
    switch: &morgana_mem::Switch,
    argv: &[&str],
    opened: &std::cell::Cell<Option<String>>,
) -> Result<Either<&'static str, Stack>, morgana::args::ArgError> {
    use morgana::args::{Args, COMMON};
    let args = Args::parse(&[COMMON, morgana_tcpip::ARGS], argv)?;
    morgana_tcpip::either::from_args(
        p,
        &args,
        || Ok("host sockets"),
        |name| {
            opened.set(Some(name.to_string()));
            Ok(switch.port(MAC_A))
        },
    )
}

#[test]
fn from_args_picks_host_sockets_or_this_stack_configured_and_running() {
    let out = run(31, |p| async move {
        let switch = morgana_mem::Switch::default();
        let opened = std::cell::Cell::new(None);
        let default = wire(&p, &switch, &[], &opened).map(|s| matches!(s, Either::Left("host sockets")));
        let bad = wire(&p, &switch, &["--net", "tap:mg0", "--ipv4", "10.0.0.1"], &opened).err();
        let untouched = opened.take();
        let tap = wire(&p, &switch, &["--net", "tap:mg0", "--ipv4", "10.0.0.1/24"], &opened).unwrap();
        let Either::Right(a) = tap else { panic!("--net tap: gives this stack") };
        // Its runner was spawned: it talks to a peer on the same link at once.
        let b = stack_on(
            &p,
            &switch,
            MAC_B,
            Config::default().ipv4_static(IP_B, 24, None),
            Default::default(),
            2,
        );
        p.spawn(serve_one(b));
        let (echoed, ..) = ask(&a).await;
        (default, bad.map(|e| e.to_string()), untouched, opened.take(), a.ipv4(), echoed)
    });
    let (default, bad, untouched, opened, ipv4, echoed) = out.result.unwrap();
    assert_eq!(default, Ok(true), "--net socket is the default");
    assert!(bad.is_some_and(|e| e.starts_with("--ipv4: expected")), "arguments are checked first");
    assert_eq!(untouched, None, "and the device is not opened when they are wrong");
    assert_eq!(opened.as_deref(), Some("mg0"));
    assert_eq!(ipv4, Some((IP_A, 24)));
    assert_eq!(echoed, "EITHER WAY");
}
