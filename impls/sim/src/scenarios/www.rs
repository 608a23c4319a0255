//! `www` serving `http-fetch` clients: each client node runs http-fetch's `start` unchanged,
//! in a loop (a request, then an exponentially distributed think time), against the `www`
//! node, which runs www's `start` unchanged; both wired by bodies like their `main.rs`.
//! Every answer must be the site's page, byte for byte (its SHA-256).
//!
//! `www` is the full scenario (50 clients, 10 simulated minutes, lossy links); `www-small` the
//! same for CI (8 clients, 1 minute); `partition` cuts the clients off the server both ways,
//! then one way, and heals: clients must recover.

use std::cell::RefCell;
use std::rc::Rc;

use morgana::{Clock, Duration, Key, Platform};
use morgana_target::{Device, Target};
use rand_core::RngCore;
use sha2::{Digest, Sha256};

use crate::fabric::{Latency, LinkFaults};
use crate::time::WorldClock;
use crate::{Ctl, NodeId, NodeSpec, Outcome, World, WorldConfig};

/// What one client saw.
#[derive(Debug, Default, Clone)]
pub struct Client {
    /// Pages fetched intact.
    pub ok: u64,
    /// Fetches that failed (timeouts, resets): allowed while the network is cut.
    pub failed: u64,
    /// Answers that were not the page: never allowed.
    pub wrong: u64,
    /// World time of the last intact page.
    pub last_ok: Option<morgana::Instant>,
    /// Why fetches failed, and how often.
    pub errors: std::collections::BTreeMap<String, u64>,
}

type Stats = Rc<RefCell<Vec<Client>>>;

/// The shape of a run.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Client nodes.
    pub clients: usize,
    /// How long they fetch.
    pub duration: Duration,
    /// Mean think time between fetches.
    pub think: Duration,
    /// http-fetch's `--timeout-ms`.
    pub timeout_ms: u64,
}

/// `www` on 10.0.0.1 and `shape.clients` clients; their statistics.
fn build(w: &World, shape: Shape) -> (NodeId, Vec<NodeId>, Stats) {
    let server = w.node(
        NodeSpec::new("www").args(["--ipv4", "10.0.0.1/16", "--port", "443"]),
        &[www::ARGS],
        &[Device::TcpStack, Device::KvRo(www::SITE), Device::KvRo(www::CERTS)],
        |t| {
            // www's main.rs, with the simulator's TLS provider.
            let config = www::Config::from_args(t.args())?;
            www::check_connection_limit(&config, t.connection_limit());
            let htdocs = t.kv_ro_or("kv", www::site::HTDOCS)?;
            let certs = t.kv_ro("certs")?;
            let (platform, stack, provider) = (t.platform(), t.tcp_stack()?, crate::tls::provider());
            Ok(async move {
                // The Ed25519 development identity unless the scenario gives certificates: its
                // signatures are deterministic and a quarter of the ECDSA ones' cost, which
                // thousands of handshakes feel.
                let identity = match certs {
                    Some(c) => www::identity(Some(&c)).await?,
                    None => morgana_tls::dev::ed25519_identity().map_err(www::Error::Certificate)?,
                };
                www::start(platform, stack, htdocs, identity, provider, config).await
            })
        },
    );
    let index = www::site::HTDOCS.file(&Key::parse("/index.html").unwrap_or_default()).map(|f| f.data);
    let want: [u8; 32] = Sha256::digest(index.unwrap_or_default()).into();
    let stats: Stats = Rc::new(RefCell::new(vec![Client::default(); shape.clients]));
    let mut clients = Vec::new();
    for i in 0..shape.clients {
        let ip = format!("10.0.{}.{}/16", 1 + i / 200, 10 + i % 200);
        let timeout = shape.timeout_ms.to_string();
        let argv = [
            "--ipv4",
            ip.as_str(),
            "--url",
            "https://localhost/",
            "--resolve",
            "localhost:10.0.0.1",
            "--timeout-ms",
            timeout.as_str(),
        ];
        let (stats, world) = (stats.clone(), w.clock());
        let id = w.node(
            NodeSpec::new(format!("fetch{i}")).args(argv),
            &[http_fetch::ARGS],
            &[Device::TcpStack, Device::File(http_fetch::CA)],
            move |t| {
                // http-fetch's main.rs, its `start` called once per request.
                let config = http_fetch::Config::from_args(t.args())?;
                // The CA of the server's Ed25519 identity, as `--ca FILE` would give it.
                let ca_pem = t.file("ca")?.or_else(|| Some(morgana_tls::dev::ED25519_CA_PEM.to_vec()));
                config.check_trust(ca_pem.is_some())?;
                let (platform, stack, provider) = (t.platform(), t.tcp_stack()?, crate::tls::provider());
                let (stats, world) = (stats.clone(), world.clone());
                Ok(fetch_loop(platform, stack, provider, ca_pem, config, shape, i, want, stats, world))
            },
        );
        clients.push(id);
    }
    (server, clients, stats)
}

#[allow(clippy::too_many_arguments)]
async fn fetch_loop<P: Platform, S>(
    platform: P,
    stack: S,
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
    ca_pem: Option<Vec<u8>>,
    config: http_fetch::Config,
    shape: Shape,
    me: usize,
    want: [u8; 32],
    stats: Stats,
    world: WorldClock,
) -> Result<(), http_fetch::FetchError>
where
    S: morgana::TcpStack + morgana::Resolver + Clone,
{
    let clock = platform.clock();
    let mut rng = platform.rng();
    let end = clock.now() + shape.duration;
    while clock.now() < end {
        let r = http_fetch::start(
            platform.clone(),
            stack.clone(),
            stack.clone(),
            provider.clone(),
            ca_pem.clone(),
            config.clone(),
        )
        .await;
        {
            let mut s = stats.borrow_mut();
            let c = &mut s[me];
            match r {
                Ok(f) if f.status == 200 && f.sha256 == want => {
                    c.ok += 1;
                    c.last_ok = Some(world.now());
                }
                Ok(_) => c.wrong += 1,
                Err(e) => {
                    log::info!("fetch failed: {e}");
                    c.failed += 1;
                    *c.errors.entry(e.to_string()).or_default() += 1;
                }
            }
        }
        let u = ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64).max(1e-9);
        let think = -u.ln() * shape.think.as_nanos() as f64;
        clock.sleep(Duration::from_nanos(think as u64)).await;
    }
    Ok(())
}

fn links() -> LinkFaults {
    LinkFaults {
        latency: Latency::Exponential { base: Duration::from_millis(5), mean: Duration::from_millis(5) },
        ..LinkFaults::default()
    }
    .lossy(0.01)
}

/// Check what the clients saw: nothing wrong, at most `max_failed` of the fetches failed, everyone
/// busy.
fn check(stats: &Stats, shape: Shape, max_failed: f64) -> Result<(), String> {
    let s = stats.borrow();
    let (ok, failed, wrong): (u64, u64, u64) =
        s.iter().fold((0, 0, 0), |(a, b, c), x| (a + x.ok, b + x.failed, c + x.wrong));
    if wrong > 0 {
        return Err(format!("{wrong} answers were not the page"));
    }
    let total = ok + failed;
    if (failed as f64) > max_failed * total as f64 {
        return Err(format!("{failed} of {total} fetches failed"));
    }
    // A client makes a request about once per think time; each must have made a fair share.
    let expected = shape.duration.as_secs_f64() / (shape.think.as_secs_f64() + 0.2);
    for (i, c) in s.iter().enumerate() {
        if (c.ok as f64) < expected * 0.3 {
            return Err(format!("client {i} fetched only {} pages (expected about {expected:.0})", c.ok));
        }
    }
    let mut why: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for (e, n) in s.iter().flat_map(|c| c.errors.iter()) {
        *why.entry(e).or_default() += n;
    }
    log::info!("{ok} pages fetched, {failed} failed: {why:?}");
    Ok(())
}

/// 10 simulated minutes of `www` and 50 clients (`www`), or a smaller run. In swarm mode the
/// seed may also cut clients off for a few seconds at random, and restart the server (it keeps
/// no state): fetches may then fail, but never return anything but the page, and every client
/// keeps being served.
pub fn serve(config: WorldConfig, shape: Shape) -> Outcome {
    let w = World::new(config, links());
    let (server, clients, stats) = build(&w, shape);
    w.run(move |ctl: Ctl| async move {
        let (partitions, crashes) = (ctl.swarm().partitions, ctl.swarm().crashes);
        let end = ctl.now() + shape.duration;
        while (partitions || crashes) && ctl.now() + Duration::from_secs(20) < end {
            ctl.sleep(Duration::from_millis(5_000 + ctl.below(10_000))).await;
            if partitions && ctl.below(2) == 0 {
                let victims: Vec<NodeId> = clients.iter().copied().filter(|_| ctl.below(3) == 0).collect();
                ctl.partition(&victims, &[server]);
                ctl.sleep(Duration::from_millis(500 + ctl.below(4_000))).await;
                ctl.heal();
            } else if crashes {
                ctl.restart(server);
            }
        }
        ctl.sleep(end.saturating_duration_since(ctl.now()) + Duration::from_secs(1)).await;
        // Loss, duplication, reordering and corruption alone fail no fetch (100 seeds of
        // www-small, plain and swarm, and 3 of www's 24,000 fetches each); cutting clients off
        // or restarting the server may.
        let allowed = if partitions || crashes { 0.2 } else { 0.0 };
        check(&stats, shape, allowed)
    })
}

/// `partition`: clients cut off the server both ways for 20 s, then server → clients only for
/// 15 s; each client must fetch again after each heal.
pub fn partition(config: WorldConfig) -> Outcome {
    let shape = Shape {
        clients: 4,
        duration: Duration::from_secs(100),
        think: Duration::from_secs(1),
        timeout_ms: 8000,
    };
    let w = World::new(config, links());
    let (server, clients, stats) = build(&w, shape);
    w.run(move |ctl: Ctl| async move {
        ctl.sleep(Duration::from_secs(10)).await;
        ctl.partition(&clients, &[server]);
        ctl.sleep(Duration::from_secs(20)).await;
        ctl.heal();
        let healed = ctl.now();
        ctl.sleep(Duration::from_secs(25)).await;
        recovered(&stats, healed, "the two-way partition")?;
        for &c in &clients {
            ctl.cut(server, c);
        }
        ctl.sleep(Duration::from_secs(15)).await;
        ctl.heal();
        let healed = ctl.now();
        ctl.sleep(Duration::from_secs(25)).await;
        recovered(&stats, healed, "the one-way partition")?;
        let s = stats.borrow();
        if s.iter().all(|c| c.failed == 0) {
            return Err("no fetch failed while the network was cut: the partition did nothing".into());
        }
        if s.iter().any(|c| c.wrong > 0) {
            return Err("an answer was not the page".into());
        }
        Ok(())
    })
}

fn recovered(stats: &Stats, healed: morgana::Instant, what: &str) -> Result<(), String> {
    for (i, c) in stats.borrow().iter().enumerate() {
        if c.last_ok.is_none_or(|t| t < healed) {
            return Err(format!("client {i} fetched nothing after {what} healed"));
        }
    }
    Ok(())
}
