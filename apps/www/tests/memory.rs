//! TLS handshakes against a heap too small to hold them all at once: rustls allocates
//! infallibly, so without `www`'s TLS budget this binary aborts ("memory allocation of N bytes
//! failed"). With it, every handshake completes (those beyond the budget wait, unaccepted), a
//! session opened before the flood keeps being answered, and nothing panics. The heap runs
//! short on demand: this test binary's allocator has a limit (the `cap` crate). One test in the
//! binary, so that no other test allocates against the limit.

use std::alloc::System;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use cap::Cap;
use http_fetch::{Url, connect_tls, fetch, tls_client};
use morgana::{Clock, Duration, HeapUsage, Key, Platform, Spawn};
use morgana_mem::MemTcpNet;
use morgana_mem::sim::Sim;

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// Concurrent clients, each a TLS handshake and a GET.
const CLIENTS: usize = 48;
/// TLS connections the server's heap has a budget for (its heap's size is given in its config).
const BUDGET: usize = 6;

fn provider() -> Arc<morgana_tls::rustls::crypto::CryptoProvider> {
    Arc::new(morgana_tls::rustls::crypto::ring::default_provider())
}

#[test]
fn handshakes_beyond_the_heap_wait_all_complete_and_open_sessions_keep_being_served() {
    let index = www::site::HTDOCS.file(&Key::parse("/index.html").unwrap()).unwrap().data;
    let out = Sim::new(17).run(|p| async move {
        let net = MemTcpNet::new();
        net.add_name("localhost", [10, 0, 0, 1]);
        let server = net.host([10, 0, 0, 1]);
        let identity = www::identity::<morgana_mem::MemKv<morgana_rt::Handle<morgana_rt::VirtualTime>>>(None)
            .await
            .unwrap();
        // A heap of twice the budget's charges, all free: `BUDGET` TLS connections at once.
        let heap = HeapUsage { used: 0, size: 2 * BUDGET * www::CONNECTION_HEAP };
        let config = www::Config { port: 443, heap: Some(heap), ..www::Config::default() };
        p.spawn({
            let p = p.clone();
            async move {
                let r = www::start(p, server, www::site::HTDOCS, identity, provider(), config).await;
                log::error!("www stopped: {r:?}");
            }
        });
        p.clock().sleep(Duration::from_millis(1)).await;
        let client = net.host([10, 0, 0, 2]);
        let tls = Rc::new(tls_client(provider(), p.clock(), morgana_tls::dev::CA_PEM).unwrap());
        let url = Url::parse("https://localhost/").unwrap();
        // A session opened before the flood: asked for a page every 10 ms through it.
        let mut open = connect_tls(&client, &client, &tls, &url).await.unwrap();

        // From here on the process's heap has room for what the clients and the in-memory
        // network hold (48 KiB each: a client's handshake peaks at about 40 KiB) and for the
        // server's budget, not for a server handshake (43 KiB) per client at once: without the
        // budget (`heap: None`) this binary aborts, "memory allocation of 18944 bytes failed".
        let room = CLIENTS * 48 * 1024 + (BUDGET + 1) * www::CONNECTION_HEAP;
        HEAP.set_limit(HEAP.allocated() + room).unwrap();

        let results = Rc::new(RefCell::new(Vec::new()));
        for _ in 0..CLIENTS {
            let (client, tls, url, results, clock) =
                (client.clone(), tls.clone(), url.clone(), results.clone(), p.clock());
            p.spawn(async move {
                let started = clock.now();
                let r = fetch(&client, &client, Some(&*tls), &url).await.map(|f| f.status);
                results.borrow_mut().push((r.map_err(|e| e.to_string()), clock.now() - started));
            });
        }
        let mut answered = Vec::new();
        while results.borrow().len() < CLIENTS {
            p.clock().sleep(Duration::from_millis(10)).await;
            let r = open.get("localhost", "/").await.map(|r| (r.status, r.body == index));
            answered.push(r.map_err(|e| e.to_string()));
        }
        let results = results.take();
        HEAP.set_limit(usize::MAX).unwrap();
        (results, answered)
    });
    let log: Vec<String> = out.messages().into_iter().map(String::from).collect();
    let (results, answered) = out.result.expect("no stall");
    assert_eq!(results.len(), CLIENTS);
    let ok = results.iter().filter(|(r, _)| r == &Ok(200)).count();
    assert_eq!(ok, CLIENTS, "every handshake and GET completed: {results:?}");
    assert!(!answered.is_empty(), "the open session was asked meanwhile");
    assert!(answered.iter().all(|r| r == &Ok((200, true))), "the open session was served: {answered:?}");
    assert!(
        log.iter().any(|l| l.contains("TLS connections open, the budget for this heap")),
        "the wait was logged: {log:?}"
    );
}
