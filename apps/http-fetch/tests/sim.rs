//! `http-fetch` on in-memory devices: URLs, plain HTTP, trust, resolution, timeouts.

use std::rc::Rc;
use std::sync::Arc;

use http_fetch::{Config, FetchError, Pin, Url};
use morgana::{Clock, Duration, Key, KvRw, Platform, Spawn, StackError, TcpListener, TcpStack};
use morgana_http::{Limits, StaticFiles, serve};
use morgana_mem::sim::Sim;
use morgana_mem::{MemKv, MemTcpNet};

fn provider() -> Arc<morgana_tls::rustls::crypto::CryptoProvider> {
    Arc::new(morgana_tls::rustls::crypto::ring::default_provider())
}

#[test]
fn urls() {
    let u = Url::parse("https://localhost:8443/a/b?c=d").unwrap();
    assert_eq!((u.https, u.host.as_str(), u.port, u.target.as_str()), (true, "localhost", 8443, "/a/b?c=d"));
    assert_eq!(u.host_header(), "localhost:8443");
    let u = Url::parse("http://[::1]/").unwrap();
    assert_eq!((u.host.as_str(), u.port, u.host_header()), ("::1", 80, "[::1]".to_string()));
    assert_eq!(Url::parse("https://example.com").unwrap().target, "/");
    for bad in [
        "ftp://x/",
        "https://",
        "http://a b/",
        "https://x:99999/",
        "https://x:0/",
        "http://[::1/",
        "localhost",
    ] {
        assert_eq!(Url::parse(bad), None, "{bad}");
    }
    let parse = |argv: &[&str]| {
        morgana_args::Args::parse(&[http_fetch::ARGS], argv.iter().copied())
            .and_then(|a| Config::from_args(&a))
    };
    let c =
        parse(&["--url", "https://localhost:8443/", "--resolve", "localhost:10.0.2.2", "--dev-ca"]).unwrap();
    assert_eq!(c.resolve, Some(Pin { host: "localhost".into(), addr: [10, 0, 2, 2].into() }));
    assert!(c.dev_ca);
    let c = parse(&["--url", "https://localhost/", "--resolve", "localhost:[::1]"]).unwrap();
    assert_eq!(c.resolve.unwrap().addr, "::1".parse::<std::net::IpAddr>().unwrap());
    for bad in ["localhost", "localhost:", ":10.0.0.1", "localhost:nowhere"] {
        assert_eq!(
            parse(&["--url", "http://x/", "--resolve", bad]).unwrap_err().to_string(),
            format!(
                "--resolve: expected HOST:ADDR, like localhost:10.0.2.2 or localhost:[::1], got \"{bad}\""
            )
        );
    }
    let args = morgana_args::Args::parse(&[http_fetch::ARGS], ["--url", "gopher://x"]).unwrap();
    assert_eq!(
        Config::from_args(&args).unwrap_err().to_string(),
        "--url: expected a URL like https://localhost:8443/, got \"gopher://x\""
    );
}

#[test]
fn fetches_plain_http_and_reports_what_fails() {
    let out = Sim::new(3).run(|p| async move {
        let net = MemTcpNet::new();
        net.add_name("web.test", [10, 0, 0, 1]);
        let server = net.host([10, 0, 0, 1]);
        let kv = Rc::new(MemKv::new(p.clock()));
        kv.set(&Key::parse("/hello.txt").unwrap(), b"hello\n").await.unwrap();
        let mut listener = server.listen(80, 4).await.unwrap();
        p.spawn({
            let p = p.clone();
            async move {
                let files = Rc::new(StaticFiles::new(kv));
                while let Ok((conn, _)) = listener.accept().await {
                    let (files, clock) = (files.clone(), p.clock());
                    p.spawn(async move {
                        let _ = serve(conn, &*files, &clock, &Limits::default()).await;
                    });
                }
            }
        });
        let client = net.host([10, 0, 0, 2]);
        let config = |url: &str, ms| Config::new(Url::parse(url).unwrap(), Duration::from_millis(ms));
        let ok = http_fetch::start(
            p.clone(),
            client.clone(),
            client.clone(),
            provider(),
            None,
            config("http://web.test/hello.txt", 1000),
        )
        .await;
        let unknown = http_fetch::start(
            p.clone(),
            client.clone(),
            client.clone(),
            provider(),
            None,
            config("http://nope.test/", 1000),
        )
        .await;
        // --resolve: a name the network does not know, pinned to the server's address.
        let pinned = http_fetch::start(
            p.clone(),
            client.clone(),
            client.clone(),
            provider(),
            None,
            Config {
                resolve: Some(Pin { host: "WWW.example".into(), addr: [10, 0, 0, 1].into() }),
                ..config("http://www.example/hello.txt", 1000)
            },
        )
        .await;
        let refused = http_fetch::start(
            p.clone(),
            client.clone(),
            client.clone(),
            provider(),
            None,
            config("http://web.test:81/", 1000),
        )
        .await;
        let untrusted = http_fetch::start(
            p.clone(),
            client.clone(),
            client.clone(),
            provider(),
            None,
            config("https://web.test/", 1000),
        )
        .await;
        // A server that accepts and never answers.
        let _mute = net.host([10, 0, 0, 3]).listen(80, 4).await.unwrap();
        let started = p.clock().now();
        let slow = http_fetch::start(
            p.clone(),
            client.clone(),
            client,
            provider(),
            None,
            config("http://10.0.0.3/", 1500),
        )
        .await;
        (ok, unknown, pinned, refused, untrusted, slow, p.clock().now() - started)
    });
    let log: Vec<String> = out.messages().into_iter().map(String::from).collect();
    let (ok, unknown, pinned, refused, untrusted, slow, waited) = out.result.unwrap();
    assert_eq!(pinned.unwrap().sha256, ok.as_ref().unwrap().sha256);
    assert!(log.iter().any(|l| l == "--resolve: WWW.example is 10.0.0.1"), "{log:?}");
    let ok = ok.unwrap();
    assert_eq!((ok.status, ok.len), (200, 6));
    assert_eq!(ok.sha256_hex(), "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
    assert!(log.iter().any(|l| l == "HTTP/1.1 200 OK"), "{log:?}");
    assert!(log.iter().any(|l| l == "Content-Type: text/plain; charset=utf-8"), "{log:?}");
    assert!(log.iter().any(|l| l == "sha256 5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 (6 bytes)"));
    assert_eq!(unknown, Err(FetchError::Resolve("nope.test".into(), StackError::NameNotFound)));
    assert_eq!(
        refused,
        Err(FetchError::Connect("10.0.0.1:81".parse().unwrap(), StackError::ConnectionRefused))
    );
    assert_eq!(untrusted, Err(FetchError::NoTrust));
    assert_eq!(slow, Err(FetchError::TimedOut(Duration::from_millis(1500))));
    assert_eq!(waited, Duration::from_millis(1500));
}
