//! `www` and `http-fetch` end to end on an in-memory TCP network and the virtual clock.

use std::sync::Arc;

use embedded_io_async::Write;
use http_fetch::{Url, connect_tls, fetch, tls_client};
use morgana::{Clock, Duration, Flow, Key, KvRw, Platform, Spawn, TcpStack};
use morgana_mem::sim::{Outcome, Sim, SimPlatform};
use morgana_mem::{MemKv, MemTcp, MemTcpNet};
use sha2::{Digest, Sha256};

fn provider() -> Arc<morgana_tls::rustls::crypto::CryptoProvider> {
    Arc::new(morgana_tls::rustls::crypto::ring::default_provider())
}

fn file(path: &str) -> &'static [u8] {
    www::site::HTDOCS.file(&Key::parse(path).unwrap()).unwrap().data
}

/// A network with `www` on 10.0.0.1 (name `www.test`, also `localhost` for the certificate) and
/// a client host 10.0.0.2; `www` runs in its own task with `config`.
async fn network(p: &SimPlatform, config: www::Config) -> MemTcp {
    let net = MemTcpNet::new();
    net.add_name("localhost", [10, 0, 0, 1]);
    let server = net.host([10, 0, 0, 1]);
    let site = www::site::HTDOCS;
    let identity = www::identity::<MemKv<morgana_rt::Handle<morgana_rt::VirtualTime>>>(None).await.unwrap();
    p.spawn({
        let p = p.clone();
        async move {
            let r = www::start(p, server, site, identity, provider(), config).await;
            log::error!("www stopped: {r:?}");
        }
    });
    // Let it start listening.
    p.clock().sleep(Duration::from_millis(1)).await;
    net.host([10, 0, 0, 2])
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

fn messages<T>(out: &Outcome<T>) -> Vec<String> {
    out.messages().into_iter().map(String::from).collect()
}

fn run<T>(f: impl AsyncFnOnce(SimPlatform) -> T) -> Outcome<T> {
    Sim::new(6).run(|p| async move { f(p).await })
}

#[test]
fn http_fetch_gets_pages_over_https_from_www() {
    let out = run(async |p| {
        let client = network(&p, www::Config { port: 443, ..www::Config::default() }).await;
        let tls = tls_client(provider(), p.clock(), morgana_tls::dev::CA_PEM).unwrap();
        let mut got = Vec::new();
        for u in [
            "https://localhost/",
            "https://localhost/about.html",
            "https://localhost/favicon.png",
            "https://localhost/nope",
        ] {
            got.push(fetch(&client, &client, Some(&tls), &url(u)).await.unwrap());
        }
        got
    });
    let log = messages(&out);
    let got = out.result.unwrap();
    let sha = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
    assert_eq!((got[0].status, got[0].sha256), (200, sha(file("/index.html"))));
    assert_eq!((got[1].status, got[1].sha256), (200, sha(file("/about.html"))));
    assert_eq!((got[2].status, got[2].len), (200, file("/favicon.png").len()));
    assert!(got[2].headers.iter().any(|(n, v)| n == "Content-Type" && v == "image/png"));
    assert_eq!(got[3].status, 404);
    assert!(log.iter().any(|m| m == "serving https://10.0.0.1:443/"), "{log:?}");
    assert!(
        log.iter().any(|m| m.starts_with("using the built-in development certificate for localhost")),
        "{log:?}"
    );
}

#[test]
fn one_tls_session_keep_alive_range_304_and_a_hundred_requests() {
    let out = run(async |p| {
        let client = network(&p, www::Config { port: 443, ..www::Config::default() }).await;
        let tls = tls_client(provider(), p.clock(), morgana_tls::dev::CA_PEM).unwrap();
        let mut c = connect_tls(&client, &client, &tls, &url("https://localhost/")).await.unwrap();
        let range = c.request("GET", "localhost", "/style.css", &[("Range", "bytes=0-3")]).await.unwrap();
        let tag = c.get("localhost", "/style.css").await.unwrap().header("etag").unwrap().to_string();
        let not_modified =
            c.request("GET", "localhost", "/style.css", &[("If-None-Match", &tag)]).await.unwrap();
        let docs = c.get("localhost", "/docs/").await.unwrap();
        let mut ok = 0;
        for i in 0..100 {
            let path = ["/", "/about.html", "/logo.svg", "/style.css"][i % 4];
            let r = c.get("localhost", path).await.unwrap();
            ok += usize::from(
                r.status == 200 && r.body == file(if path == "/" { "/index.html" } else { path }),
            );
        }
        (range, not_modified, docs, ok)
    });
    let (range, not_modified, docs, ok) = out.result.unwrap();
    assert_eq!((range.status, range.body.as_slice()), (206, &file("/style.css")[..4]));
    assert_eq!((not_modified.status, not_modified.body.len()), (304, 0));
    assert_eq!(docs.body, file("/docs/index.html"));
    assert_eq!(ok, 100, "a hundred sequential requests on one TLS session");
}

#[test]
fn bad_clients_do_not_hurt_the_next_one() {
    let out = run(async |p| {
        let client = network(&p, www::Config { port: 443, ..www::Config::default() }).await;
        let addr = "10.0.0.1:443".parse().unwrap();
        // Plain-text HTTP to the TLS port.
        let mut c = client.connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        // A truncated TLS record, then FIN.
        let mut t = client.connect(addr).await.unwrap();
        t.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
        t.close().await.unwrap();
        // A TLS session carrying a 1 MiB header and garbage.
        let tls = tls_client(provider(), p.clock(), morgana_tls::dev::CA_PEM).unwrap();
        let mut s = connect_tls(&client, &client, &tls, &url("https://localhost/")).await.unwrap();
        let mut huge = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        huge.resize(1 << 20, b'a');
        let _ = s.flow_mut().write_all(&huge).await;
        let big = s.receive(false).await.map(|r| r.status);
        let mut g = connect_tls(&client, &client, &tls, &url("https://localhost/")).await.unwrap();
        g.flow_mut().write_all(b"\x00\x01garbage\r\n\r\n").await.unwrap();
        let garbage = g.receive(false).await.map(|r| r.status);
        // A client that connects and says nothing is timed out; meanwhile others are served.
        let _silent = client.connect(addr).await.unwrap();
        let next = fetch(&client, &client, Some(&tls), &url("https://localhost/")).await.unwrap();
        p.clock().sleep(Duration::from_secs(11)).await;
        drop(c);
        (big, garbage, next.status)
    });
    let log = messages(&out);
    let (big, garbage, next) = out.result.unwrap();
    assert_eq!(big, Ok(431));
    assert_eq!(garbage, Ok(400));
    assert_eq!(next, 200);
    assert!(log.iter().any(|m| m.contains("TLS handshake failed")), "{log:?}");
    assert!(
        log.iter().any(|m| m.ends_with("TLS handshake timed out")),
        "the silent client is dropped: {log:?}"
    );
}

#[test]
fn plain_http_port_redirects_to_https() {
    let out = run(async |p| {
        let client =
            network(&p, www::Config { port: 443, http_port: Some(80), ..www::Config::default() }).await;
        fetch::<_, _, morgana_rt::Handle<morgana_rt::VirtualTime>>(
            &client,
            &client,
            None,
            &url("http://localhost/about.html"),
        )
        .await
        .unwrap()
    });
    let log = messages(&out);
    let r = out.result.unwrap();
    assert_eq!(r.status, 308);
    assert!(
        r.headers.iter().any(|(n, v)| n == "Location" && v == "https://localhost/about.html"),
        "{:?}",
        r.headers
    );
    assert!(log.iter().any(|m| m == "redirecting http://10.0.0.1:80/ to HTTPS"), "{log:?}");
}

#[test]
fn plain_http_port_serves_the_site_with_http_serve() {
    let out = run(async |p| {
        let config =
            www::Config { port: 443, http_port: Some(80), http_serve: true, ..www::Config::default() };
        let client = network(&p, config).await;
        let plain = url("http://localhost/about.html");
        fetch::<_, _, morgana_rt::Handle<morgana_rt::VirtualTime>>(&client, &client, None, &plain)
            .await
            .unwrap()
    });
    let log = messages(&out);
    let r = out.result.unwrap();
    assert_eq!((r.status, r.sha256), (200, Sha256::digest(file("/about.html")).into()));
    assert!(log.iter().any(|m| m == "serving http://10.0.0.1:80/"), "{log:?}");
}

#[test]
fn at_the_connection_limit_accepting_pauses_and_the_time_paused_is_reported() {
    let out = run(async |p| {
        let config = www::Config {
            port: 443,
            http_port: Some(80),
            http_serve: true,
            max_connections: 2,
            ..www::Config::default()
        };
        let client = network(&p, config).await;
        let addr = "10.0.0.1:80".parse().unwrap();
        let clock = p.clock();
        // Two idle connections take both places for 15 s (the idle timeout is 30 s).
        let held = [client.connect(addr).await.unwrap(), client.connect(addr).await.unwrap()];
        clock.sleep(Duration::from_secs(15)).await;
        drop(held);
        // Ten seconds later, the limit is reached again.
        clock.sleep(Duration::from_secs(10)).await;
        let again = [client.connect(addr).await.unwrap(), client.connect(addr).await.unwrap()];
        clock.sleep(Duration::from_millis(10)).await;
        // A third waits in the backlog until one of them ends, then is served.
        let c = clock.clone();
        p.spawn(async move {
            c.sleep(Duration::from_secs(3)).await;
            drop(again);
        });
        let plain = url("http://localhost/about.html");
        let r =
            fetch::<_, _, morgana_rt::Handle<morgana_rt::VirtualTime>>(&client, &client, None, &plain).await;
        (r.unwrap().status, clock.now())
    });
    let log = messages(&out);
    let (status, done) = out.result.unwrap();
    assert_eq!(status, 200);
    assert!(done.as_millis() >= 28_000, "served at {done} once a place was free, not before");
    let limit: Vec<&String> = log.iter().filter(|m| m.contains("--max-connections")).collect();
    assert!(
        limit[0].starts_with("2 connections open, the --max-connections limit: accepting paused"),
        "{limit:?}"
    );
    assert!(
        limit[1].starts_with("still at --max-connections 2: accepting paused for 10.0 s of the last 10.0 s"),
        "{limit:?}"
    );
    // Paused from 10 s (the last report) to 15 s (the two ended): 5 of the 15 s since.
    assert!(
        limit[2].starts_with(
            "--max-connections 2 reached 1 time(s) in the last 15.0 s, accepting paused for 5.0 s of it"
        ),
        "{limit:?}"
    );
}

#[test]
fn certificates_from_a_store_and_a_clear_error_without_them() {
    let out = run(async |p| {
        let certs = MemKv::new(p.clock());
        let missing = www::identity(Some(&certs)).await.map(|_| ()).unwrap_err().to_string();
        certs.set(&Key::parse(www::CHAIN_KEY).unwrap(), morgana_tls::dev::CHAIN_PEM).await.unwrap();
        certs.set(&Key::parse(www::KEY_KEY).unwrap(), morgana_tls::dev::KEY_PEM).await.unwrap();
        let loaded = www::identity(Some(&certs)).await.is_ok();
        // The port is taken: start says so.
        let net = MemTcpNet::new();
        let host = net.host([10, 0, 0, 1]);
        let _taken = host.listen(443, 1).await.unwrap();
        let site = www::site::HTDOCS;
        let id = morgana_tls::dev::identity().unwrap();
        let config = www::Config { port: 443, ..www::Config::default() };
        let busy = www::start(p.clone(), host, site, id, provider(), config).await.unwrap_err().to_string();
        (missing, loaded, busy)
    });
    let log = messages(&out);
    let (missing, loaded, busy) = out.result.unwrap();
    assert_eq!(
        missing,
        "TLS configuration: /server.pem: not found (--certs DIR needs DIR/server.pem and DIR/server.key in PEM format)"
    );
    assert!(loaded);
    assert_eq!(busy, "cannot listen on port 443: address already in use (choose another with --port)");
    assert!(!log.iter().any(|m| m.contains("development certificate")), "a store was given");
}

#[test]
fn arguments() {
    let args = morgana_args::Args::parse(&[www::ARGS], ["--http-port", "8080"]).unwrap();
    let c = www::Config::from_args(&args).unwrap();
    assert_eq!((c.port, c.http_port, c.http_serve), (8443, Some(8080), false));
    let args = morgana_args::Args::parse(&[www::ARGS], ["--http-port", "80", "--http-serve"]).unwrap();
    assert!(www::Config::from_args(&args).unwrap().http_serve);
    let alone = morgana_args::Args::parse(&[www::ARGS], ["--http-serve"]).unwrap();
    assert_eq!(
        www::Config::from_args(&alone).unwrap_err().to_string(),
        "--http-serve serves the site on the plain HTTP port: add --http-port PORT (e.g. 8080)"
    );
    let bad = morgana_args::Args::parse(&[www::ARGS], ["--port", "https"]).unwrap();
    assert_eq!(
        www::Config::from_args(&bad).unwrap_err().to_string(),
        "--port: expected a number from 0 to 65535, got \"https\""
    );
    // The limits: defaults for a host, given values, and one line for a bad one.
    assert_eq!((c.max_connections, c.limits.idle_timeout), (10240, Duration::from_secs(30)));
    let args =
        morgana_args::Args::parse(&[www::ARGS], ["--max-connections", "4", "--idle-timeout", "5"]).unwrap();
    let c = www::Config::from_args(&args).unwrap();
    assert_eq!((c.max_connections, c.limits.idle_timeout), (4, Duration::from_secs(5)));
    for (arg, value, expected) in [
        ("--max-connections", "0", "a number of connections, at least 1"),
        ("--max-connections", "many", "a number of connections, at least 1"),
        ("--idle-timeout", "0", "a number of seconds, at least 1"),
        ("--idle-timeout", "1.5", "a number of seconds, at least 1"),
    ] {
        let bad = morgana_args::Args::parse(&[www::ARGS], [arg, value]).unwrap();
        assert_eq!(
            www::Config::from_args(&bad).unwrap_err().to_string(),
            format!("{arg}: expected {expected}, got {value:?}")
        );
    }
}
