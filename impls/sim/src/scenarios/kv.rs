//! A key-value service and its clients, for the linearizability checker: `kv` (a correct
//! server in memory), `kv-store` (on `morgana-store` over the node's disk, crashed and
//! restarted in a loop), and `selftest-broken` (a server that drops every 1000th acknowledged
//! write: the runner must find it).
//!
//! The protocol is a line each way: `S KEY VALUE` answered `OK`, `G KEY` answered `V VALUE` or
//! `N` (absent). Each client keeps one connection (reconnecting after an error), makes a read
//! or a write of one of a few keys, then thinks; every operation goes into the history with
//! its invocation and answer times in world time. An operation without an answer (a timeout,
//! a reset, the server crashed) is a write that may or may not have happened, or a read that
//! tells nothing.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use embedded_io_async::{Read, Write};
use morgana::{Clock, Duration, Flow, Key, KvError, KvRw, Platform, StackError, TcpListener, TcpStack};
use morgana_args::ArgSpec;
use morgana_target::{Device, Target};
use rand_core::RngCore;

use crate::check::{Call, Op, linearizable};
use crate::fabric::{Latency, LinkFaults};
use crate::time::WorldClock;
use crate::{DiskFaults, NodeSpec, Outcome, World, WorldConfig};

/// The service's port.
const PORT: u16 = 7000;

/// What to break, for the self-test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A correct server.
    None,
    /// Acknowledge every `n`th write without applying it.
    DropEvery(u64),
}

fn key(k: u64) -> Key {
    Key::parse(&format!("/k{k}")).unwrap_or_default()
}

/// Serve the protocol on `stack` from `kv` until accepting fails.
pub async fn serve<P: Platform, S: TcpStack, K: KvRw + 'static>(
    platform: P,
    stack: S,
    kv: K,
    fault: Fault,
) -> Result<(), StackError> {
    let mut listener = stack.listen(PORT, 64).await?;
    log::info!("kv serving on port {PORT}");
    let kv = Rc::new(kv);
    let writes = Rc::new(std::cell::Cell::new(0u64));
    loop {
        let (conn, peer) = listener.accept().await?;
        let (kv, writes) = (kv.clone(), writes.clone());
        platform.spawn(async move {
            if let Err(e) = session(conn, &*kv, &writes, fault).await {
                log::debug!("{peer}: {e:?}");
            }
        });
    }
}

#[derive(Debug)]
enum SessionError {
    Net(#[allow(dead_code)] StackError),
    Kv(#[allow(dead_code)] KvError),
    Protocol,
}

async fn session<F: Flow<Error = StackError>, K: KvRw>(
    mut conn: F,
    kv: &K,
    writes: &std::cell::Cell<u64>,
    fault: Fault,
) -> Result<(), SessionError> {
    let mut lines = Lines::default();
    while let Some(line) = lines.next(&mut conn).await.map_err(SessionError::Net)? {
        let mut words = line.split(' ');
        let reply = match (words.next(), words.next().and_then(|k| k.parse::<u64>().ok()), words.next()) {
            (Some("S"), Some(k), Some(v)) => {
                let n = writes.get() + 1;
                writes.set(n);
                let dropped = matches!(fault, Fault::DropEvery(every) if n.is_multiple_of(every));
                if !dropped {
                    kv.set(&key(k), v.as_bytes()).await.map_err(SessionError::Kv)?;
                }
                "OK\n".to_string()
            }
            (Some("G"), Some(k), None) => match kv.get(&key(k)).await {
                Ok(v) => format!("V {}\n", String::from_utf8_lossy(&v)),
                Err(KvError::NotFound(_)) => "N\n".to_string(),
                Err(e) => return Err(SessionError::Kv(e)),
            },
            _ => return Err(SessionError::Protocol),
        };
        conn.write_all(reply.as_bytes()).await.map_err(SessionError::Net)?;
    }
    Ok(())
}

/// Lines from a flow.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    async fn next<R: Read<Error = StackError>>(&mut self, r: &mut R) -> Result<Option<String>, StackError> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Ok(Some(String::from_utf8_lossy(&line[..i]).into_owned()));
            }
            if self.buf.len() > 4096 {
                return Err(StackError::InvalidInput);
            }
            let mut chunk = [0u8; 512];
            let n = r.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The history the clients build.
pub type History = Rc<RefCell<Vec<Call>>>;

/// How the clients behave.
#[derive(Debug, Clone, Copy)]
struct Workload {
    keys: u64,
    think: Duration,
    timeout: Duration,
    until: Duration,
}

/// One client: connect, then read or write, think, repeat until `until`; every operation into
/// `history` (world time).
async fn client<P: Platform, S: TcpStack>(
    platform: P,
    stack: S,
    server: SocketAddr,
    id: u32,
    work: Workload,
    world: WorldClock,
    history: History,
) -> Result<(), StackError> {
    let clock = platform.clock();
    let mut rng = platform.rng();
    let mut conn: Option<(S::Connection, Lines)> = None;
    let mut written = 0u64;
    let end = clock.now() + work.until;
    while clock.now() < end {
        let think = work.think.as_nanos() as f64
            * -((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64).max(1e-9).ln();
        clock.sleep(Duration::from_nanos(think as u64)).await;
        if conn.is_none() {
            let at = clock.now() + work.timeout;
            match morgana_http::with_deadline(&clock, at, stack.connect(server)).await {
                Some(Ok(c)) => conn = Some((c, Lines::default())),
                _ => {
                    clock.sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some((c, lines)) = conn.as_mut() else { continue };
        let k = rng.next_u64() % work.keys;
        let write = rng.next_u32() & 1 == 1;
        let value = u64::from(id) << 32 | written;
        let request = if write { format!("S {k} {value}\n") } else { format!("G {k}\n") };
        let invoked = world.now().as_nanos();
        let at = clock.now() + work.timeout;
        let answer = morgana_http::with_deadline(&clock, at, async {
            c.write_all(request.as_bytes()).await?;
            lines.next(c).await
        })
        .await;
        let returned = world.now().as_nanos();
        let answer = match answer {
            Some(Ok(Some(line))) => Some(line),
            _ => None,
        };
        let op = match (write, answer.as_deref()) {
            (true, Some("OK")) => Some((Op::Put(value), Some(returned))),
            (true, _) => Some((Op::Put(value), None)),
            (false, Some("N")) => Some((Op::Get(None), Some(returned))),
            (false, Some(v)) => match v.strip_prefix("V ").and_then(|v| v.parse().ok()) {
                Some(v) => Some((Op::Get(Some(v)), Some(returned))),
                None => return Err(StackError::InvalidInput),
            },
            (false, None) => None,
        };
        if write {
            written += 1;
        }
        if let Some((op, returned)) = op {
            history.borrow_mut().push(Call { client: id, key: k, op, invoked, returned });
        }
        if answer.is_none() {
            conn = None;
        }
    }
    Ok(())
}

const SERVER_IP: &str = "10.0.0.1";

fn add_clients(w: &World, n: u32, work: Workload, history: &History) {
    for i in 0..n {
        let ip = format!("10.0.0.{}/24", 10 + i);
        let (world, history) = (w.clock(), history.clone());
        w.node(
            NodeSpec::new(format!("client{i}")).args(["--ipv4", ip.as_str()]),
            &[],
            &[Device::TcpStack],
            move |t| {
                let (platform, stack) = (t.platform(), t.tcp_stack()?);
                let (world, history) = (world.clone(), history.clone());
                let server = SocketAddr::new(SERVER_IP.parse().unwrap_or([10, 0, 0, 1].into()), PORT);
                Ok(client(platform, stack, server, i, work, world, history))
            },
        );
    }
}

fn links() -> LinkFaults {
    LinkFaults {
        latency: Latency::Exponential { base: Duration::from_millis(1), mean: Duration::from_millis(2) },
        ..LinkFaults::default()
    }
    .lossy(0.01)
}

/// Check the history: linearizable, and the clients did something.
fn check(history: &History, min_ops: usize) -> Result<(), String> {
    let h = history.borrow();
    if h.len() < min_ops {
        return Err(format!("only {} operations completed (expected at least {min_ops})", h.len()));
    }
    linearizable(&h).map_err(|v| v.to_string())
}

const NO_ARGS: &[&[ArgSpec]] = &[];

/// `kv` and `selftest-broken`: a server in memory (`MemKv`), four clients for 30 s.
pub fn memory(config: WorldConfig, fault: Fault) -> Outcome {
    let w = World::new(config, links());
    let history: History = Rc::default();
    w.node(NodeSpec::new("kv").args(["--ipv4", "10.0.0.1/24"]), NO_ARGS, &[Device::TcpStack], move |t| {
        let (platform, stack) = (t.platform(), t.tcp_stack()?);
        let kv = morgana_mem::MemKv::new(platform.clock());
        Ok(serve(platform, stack, kv, fault))
    });
    let work = Workload {
        keys: 5,
        think: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        until: Duration::from_secs(30),
    };
    add_clients(&w, 4, work, &history);
    w.run(move |ctl| async move {
        ctl.sleep(work.until + Duration::from_secs(6)).await;
        check(&history, 200)
    })
}

/// `kv-store`: the server on `morgana-store` over its disk, crashed and restarted every few
/// seconds (pending writes lost or torn as the disk model draws); the history must stay
/// linearizable: every acknowledged write survives.
pub fn store(config: WorldConfig) -> Outcome {
    let w = World::new(config, links());
    let history: History = Rc::default();
    let server = w.node(
        // Reads that go wrong on the way and writes that land on the wrong sectors, 0.1 % each
        // (or up to that in swarm mode): the store reads again what fails its checksum, and
        // reports what a misdirected write destroyed rather than serving it. With both copies
        // of a commit record in one write, one misdirected write lost a whole commit (seed 12).
        NodeSpec::new("kv-store")
            .args(["--ipv4", "10.0.0.1/24"])
            .disk(8192)
            .disk_faults(DiskFaults { miswrite: 1e-3, ..DiskFaults::on_the_way(1e-3) }),
        NO_ARGS,
        &[Device::TcpStack, Device::Block],
        move |t| {
            let (platform, stack, disk) = (t.platform(), t.tcp_stack()?, t.block()?);
            Ok(async move {
                let kv = morgana_store::Store::open(disk, platform.clock())
                    .await
                    .map_err(|e| format!("cannot open the store: {e}"))?;
                serve(platform, stack, kv, Fault::None).await.map_err(|e| e.to_string())
            })
        },
    );
    let work = Workload {
        keys: 5,
        think: Duration::from_millis(100),
        timeout: Duration::from_secs(3),
        until: Duration::from_secs(40),
    };
    add_clients(&w, 3, work, &history);
    w.run(move |ctl| async move {
        let end = ctl.now() + work.until;
        let mut crashes = 0;
        while ctl.now() < end {
            let wait = 2_000 + ctl.below(4_000);
            ctl.sleep(Duration::from_millis(wait)).await;
            ctl.restart(server);
            crashes += 1;
        }
        ctl.sleep(Duration::from_secs(6)).await;
        if crashes < 5 {
            return Err(format!("only {crashes} crashes"));
        }
        check(&history, 100)
    })
}
