//! `www` and `http-fetch` on two `morgana-tcpip` stacks joined by the in-memory switch, on the
//! virtual clock: the whole unikernel network path (Ethernet, ARP, IPv4, TCP, TLS, HTTP) with
//! both ends in one test.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use http_fetch::{Url, connect_tls, fetch, tls_client};
use morgana::{Clock, Duration, Key, Platform, Resolver, Spawn, StackError};
use morgana_mem::sim::{Sim, SimPlatform};
use morgana_mem::{FaultConfig, FaultyNet, MemKv, Switch};
use morgana_tcpip::{Config, Stack};
use sha2::{Digest, Sha256};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn provider() -> Arc<morgana_tls::rustls::crypto::CryptoProvider> {
    Arc::new(morgana_tls::rustls::crypto::ring::default_provider())
}

fn file(path: &str) -> &'static [u8] {
    www::site::HTDOCS.file(&Key::parse(path).unwrap()).unwrap().data
}

/// `localhost` (the name in the development certificate) is the server on this network.
struct Hosts;

impl Resolver for Hosts {
    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, StackError> {
        match name {
            "localhost" => Ok(vec![IpAddr::V4(SERVER)]),
            _ => Err(StackError::NameNotFound),
        }
    }
}

/// A stack at `ip` on a new port of `switch`, receiving through `faults`; its runner is spawned.
fn stack(p: &SimPlatform, switch: &Switch, mac: u8, ip: Ipv4Addr, faults: FaultConfig) -> Stack {
    let net = FaultyNet::new(switch.port([2, 0, 0, 0, 0, mac]), p.clock(), faults, u64::from(mac));
    let config = Config::default().ipv4_static(ip, 24, None).seed(u64::from(mac));
    let (stack, runner) = morgana_tcpip::new(net, p.clock(), config);
    p.spawn(async move { runner.run().await });
    stack
}

/// `www` on 10.0.0.1:443 and a client stack at 10.0.0.2, both on `faults`.
async fn network(p: &SimPlatform, faults: FaultConfig) -> Stack {
    let switch = Switch::default();
    let server = stack(p, &switch, 1, SERVER, faults);
    let client = stack(p, &switch, 2, CLIENT, faults);
    let identity = www::identity::<MemKv<morgana_rt::Handle<morgana_rt::VirtualTime>>>(None).await.unwrap();
    let config = www::Config { port: 443, ..www::Config::default() };
    p.spawn({
        let p = p.clone();
        async move {
            let r = www::start(p, server, www::site::HTDOCS, identity, provider(), config).await;
            log::error!("www stopped: {r:?}");
        }
    });
    p.clock().sleep(Duration::from_millis(1)).await;
    client
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

#[test]
fn pages_404_range_304_keep_alive_and_a_hundred_requests_over_tcpip() {
    let out = Sim::new(11).run(|p| async move {
        let client = network(&p, FaultConfig::default()).await;
        let tls = tls_client(provider(), p.clock(), morgana_tls::dev::CA_PEM).unwrap();
        let url = |s: &str| Url::parse(s).unwrap();
        let index = fetch(&client, &Hosts, Some(&tls), &url("https://localhost/")).await.unwrap();
        let missing = fetch(&client, &Hosts, Some(&tls), &url("https://localhost/nope")).await.unwrap();
        let png = fetch(&client, &Hosts, Some(&tls), &url("https://localhost/favicon.png")).await.unwrap();

        // One TLS session over one TCP connection: Range, ETag/304, then a hundred requests.
        let mut c = connect_tls(&client, &Hosts, &tls, &url("https://localhost/")).await.unwrap();
        let range = c.request("GET", "localhost", "/style.css", &[("Range", "bytes=2-9")]).await.unwrap();
        let tag = c.get("localhost", "/style.css").await.unwrap().header("etag").unwrap().to_string();
        let cached = c.request("GET", "localhost", "/style.css", &[("If-None-Match", &tag)]).await.unwrap();
        let mut ok = 0;
        for i in 0..100 {
            let path = ["/", "/about.html", "/logo.svg", "/style.css"][i % 4];
            let r = c.get("localhost", path).await.unwrap();
            let want = file(if path == "/" { "/index.html" } else { path });
            ok += usize::from(r.status == 200 && r.body == want);
        }
        (index, missing, png, range, cached, ok, p.clock().now())
    });
    let (index, missing, png, range, cached, ok, end) = out.result.expect("no stall");
    assert_eq!((index.status, index.sha256), (200, sha(file("/index.html"))));
    assert_eq!(missing.status, 404);
    assert_eq!((png.status, png.sha256), (200, sha(file("/favicon.png"))));
    assert_eq!((range.status, range.body.as_slice()), (206, &file("/style.css")[2..10]));
    assert_eq!((cached.status, cached.body.len()), (304, 0));
    assert_eq!(ok, 100, "a hundred sequential requests on one keep-alive TLS session");
    assert!(end < morgana::Instant::from_millis(5_000), "a clean link needs no retransmissions: {end}");
}

#[test]
fn pages_arrive_intact_through_a_lossy_link() {
    let faults = FaultConfig { loss: 0.05, duplicate: 0.02, reorder: 0.05, ..FaultConfig::default() };
    let out = Sim::new(12).run(|p| async move {
        let client = network(&p, faults).await;
        let tls = tls_client(provider(), p.clock(), morgana_tls::dev::CA_PEM).unwrap();
        let mut got = Vec::new();
        for path in ["/", "/about.html", "/favicon.png", "/style.css"] {
            let url = Url::parse(&format!("https://localhost{path}")).unwrap();
            got.push(fetch(&client, &Hosts, Some(&tls), &url).await.unwrap());
        }
        got
    });
    let got = out.result.expect("no stall");
    for (r, path) in got.iter().zip(["/index.html", "/about.html", "/favicon.png", "/style.css"]) {
        assert_eq!((r.status, r.sha256), (200, sha(file(path))), "{path}");
    }
}
