//! The world: nodes, the switch, one clock, one seed, and the loop that runs them.
//!
//! The loop runs every node's executor (and the scenario's director) until none has anything
//! to do, then jumps the world's clock to the earliest next event: a node's timer (seen through
//! its skew), a frame's arrival, the director's timer. Nodes run in index order and frames
//! arrive in (time, sequence) order, so a run is a function of its seed. When nothing is left
//! to happen and the director is still waiting, the world is stuck: the run ends with a report
//! of what each node was waiting on.

use std::cell::{Cell, RefCell, RefMut};
use std::fmt::{self, Display};
use std::future::Future;
use std::rc::Rc;

use morgana::{Clock, Duration, Instant, Spawn};
use morgana_args::ArgSpec;
use morgana_mem::{FaultyBlock, MemBlock, Pcap};
use morgana_rt::{Executor, Handle, Idle};
use morgana_target::{Device, StartError};
use rand_chacha::{ChaCha8Rng, ChaCha20Rng};
use rand_core::{RngCore, SeedableRng};

use crate::fabric::{Fabric, LinkFaults};
use crate::node::{Disk, NodeBoot, SimNode};
use crate::swarm::Swarm;
use crate::time::{NodeTime, Skew, WorldClock};
use crate::trace::{Event, Record, Trace};
use crate::traced::Tap;

/// A node's index in its world.
pub type NodeId = usize;

/// The director's node number in the trace.
const DIRECTOR: u16 = u16::MAX;

thread_local! {
    /// World time and the node being run, for log lines.
    static RUNNING: Cell<(Instant, u16)> = const { Cell::new((Instant::ZERO, DIRECTOR)) };
}

/// The world time and the node (`u16::MAX`: the director) whose code is running on this
/// thread, for a logger to stamp its lines with.
pub fn running() -> (Instant, u16) {
    RUNNING.with(Cell::get)
}

fn set_running(node: u16, at: Instant) {
    RUNNING.with(|r| r.set((at, node)));
}

/// How a world runs.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// The one seed everything is drawn from.
    pub seed: u64,
    /// Let the seed also choose which faults are on and how strong (up to each scenario's
    /// maximum), clock skews and disk faults.
    pub swarm: bool,
    /// Keep every event (for a trace file, or as the reference of a determinism check).
    pub record: bool,
    /// Compare every event with a first run's.
    pub compare: Option<Vec<Record>>,
    /// Capture the switch's traffic in a pcap.
    pub capture: bool,
    /// Stop (as a failure) at this much simulated time.
    pub limit: Duration,
}

impl WorldConfig {
    /// Seed `seed`, no swarm, nothing kept, a one-hour limit.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            swarm: false,
            record: false,
            compare: None,
            capture: false,
            limit: Duration::from_secs(3600),
        }
    }
}

/// A simulated disk's faults besides power cuts, as `morgana_mem::FaultyBlock` models them:
/// probabilities per sector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskFaults {
    /// A sector read comes back with one bit flipped.
    pub flip: f64,
    /// A sector read comes back with another sector's contents.
    pub misread: f64,
    /// A write lands on other sectors.
    pub miswrite: f64,
}

impl DiskFaults {
    /// A disk that reads and writes what it is asked.
    pub const NONE: Self = Self { flip: 0.0, misread: 0.0, miswrite: 0.0 };

    /// Faults on the way only: reads flipped or served from another sector, each with
    /// probability `p` (the same sector read again is right; nothing on the disk changes).
    pub fn on_the_way(p: f64) -> Self {
        Self { flip: p, misread: p, ..Self::NONE }
    }
}

/// What a node is and runs.
#[derive(Clone)]
pub struct NodeSpec {
    name: String,
    argv: Vec<String>,
    disk: Option<(u32, u64)>,
    disk_faults: DiskFaults,
    skew: Option<Skew>,
    start: bool,
    tcpip: Rc<dyn Fn(morgana_tcpip::Config) -> morgana_tcpip::Config>,
}

impl NodeSpec {
    /// A node called `name` (for reports), started with the world, no arguments, no disk.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            argv: Vec::new(),
            disk: None,
            disk_faults: DiskFaults::NONE,
            skew: None,
            start: true,
            tcpip: Rc::new(|c| c),
        }
    }

    /// Its command line (`--ipv4 10.0.0.1/24 --port 443`): as the app reads on every target.
    pub fn args<S: Into<String>>(mut self, argv: impl IntoIterator<Item = S>) -> Self {
        self.argv.extend(argv.into_iter().map(Into::into));
        self
    }

    /// A disk of `sectors` 512-byte sectors (zeroed), kept across crashes.
    pub fn disk(mut self, sectors: u64) -> Self {
        self.disk = Some((512, sectors));
        self
    }

    /// Its disk's faults besides power cuts (none unless set): as given, or in swarm mode the
    /// strongest, each then on or off and its strength drawn from the seed.
    pub fn disk_faults(mut self, faults: DiskFaults) -> Self {
        self.disk_faults = faults;
        self
    }

    /// Its clock's skew (in swarm mode, drawn from the seed unless set here).
    pub fn skew(mut self, skew: Skew) -> Self {
        self.skew = Some(skew);
        self
    }

    /// Not started with the world: the director starts it ([`Ctl::start`]).
    pub fn stopped(mut self) -> Self {
        self.start = false;
        self
    }

    /// Adjust its `morgana-tcpip` configuration beyond what its arguments say (buffer sizes).
    pub fn tcpip(mut self, f: impl Fn(morgana_tcpip::Config) -> morgana_tcpip::Config + 'static) -> Self {
        self.tcpip = Rc::new(f);
        self
    }
}

type BootFn = Rc<dyn Fn(NodeBoot) -> Result<(SimNode, std::pin::Pin<Box<dyn Future<Output = u8>>>), u8>>;

struct Slot {
    spec: NodeSpec,
    port: usize,
    skew: Skew,
    disk: Option<Disk>,
    boot: BootFn,
    boots: u32,
    exit: Rc<Cell<Option<u8>>>,
    /// Who waits for the exit ([`Ctl::wait_exit`]).
    exit_waiters: Rc<RefCell<Vec<std::task::Waker>>>,
    running: Option<Rc<SimNode>>,
    /// The running node's next timer, in world time (kept after each step: a node's timers
    /// change only while it runs).
    next: Option<Instant>,
}

struct Inner {
    config: WorldConfig,
    swarm: Swarm,
    clock: WorldClock,
    trace: Rc<RefCell<Trace>>,
    fabric: Rc<RefCell<Fabric>>,
    slots: RefCell<Vec<Slot>>,
    rng: RefCell<ChaCha8Rng>,
}

/// A simulated world: build it with nodes, then [`run`](Self::run) it with a director.
pub struct World {
    inner: Rc<Inner>,
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A check of the scenario failed (the director returned an error).
    Check(String),
    /// Nothing could ever happen again and the director was still waiting.
    Stuck(String),
    /// The run reached its time limit.
    TimeLimit(String),
}

impl Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Check(m) => write!(f, "check failed: {m}"),
            Self::Stuck(r) => write!(f, "stuck: no runnable task, no timer, no frame in flight\n{r}"),
            Self::TimeLimit(r) => write!(f, "time limit reached\n{r}"),
        }
    }
}

/// What a run produced.
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Success, or why not.
    pub result: Result<(), Failure>,
    /// The trace's hash.
    pub hash: u64,
    /// The trace (events kept when recording, and the divergence when comparing).
    pub trace: Trace,
    /// The switch's capture, when asked for.
    pub pcap: Option<Pcap>,
    /// Simulated time at the end.
    pub end: Instant,
    /// Real time the run took.
    pub wall: std::time::Duration,
    /// The fault mix, when swarm mode drew it.
    pub swarm: Option<String>,
}

impl Outcome {
    /// Simulated time over real time.
    pub fn speedup(&self) -> f64 {
        self.end.as_nanos() as f64 / self.wall.as_nanos().max(1) as f64
    }
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl World {
    /// A world with no nodes; links get `links` (in swarm mode: each fault on or off, and its
    /// strength up to `links`'s, drawn from the seed).
    pub fn new(config: WorldConfig, links: LinkFaults) -> Self {
        let swarm = if config.swarm { Swarm::draw(config.seed, links) } else { Swarm::off(links) };
        let clock = WorldClock::default();
        let mut trace = if config.record { Trace::new().record() } else { Trace::new() };
        if let Some(reference) = config.compare.clone() {
            trace = trace.compare(reference);
        }
        let trace = Rc::new(RefCell::new(trace));
        let mut fabric = Fabric::new(clock.clone(), trace.clone(), mix(config.seed ^ 0xfab), swarm.links);
        if config.capture {
            fabric.capture();
        }
        let rng = RefCell::new(ChaCha8Rng::seed_from_u64(mix(config.seed ^ 0x5ce)));
        let inner = Inner {
            config,
            swarm,
            clock,
            trace,
            fabric: Rc::new(RefCell::new(fabric)),
            slots: RefCell::default(),
            rng,
        };
        Self { inner: Rc::new(inner) }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.inner.config.seed
    }

    /// The world's clock (true time: for checkers and histories, not for apps, whose clocks
    /// are skewed).
    pub fn clock(&self) -> WorldClock {
        self.inner.clock.clone()
    }

    /// The fault mix (drawn from the seed in swarm mode).
    pub fn swarm(&self) -> &Swarm {
        &self.inner.swarm
    }

    /// The scenario's own randomness (workloads), from the seed.
    pub fn rng(&self) -> RefMut<'_, ChaCha8Rng> {
        self.inner.rng.borrow_mut()
    }

    /// The faults of the link `from` → `to`.
    pub fn set_faults(&self, from: NodeId, to: NodeId, faults: LinkFaults) {
        self.inner.fabric.borrow_mut().set_faults(from, to, faults);
    }

    /// Add a node running the app `build` makes, as its `main.rs` would on any target: `app`
    /// are its argument lists, `devices` what it asks for. Returns its id.
    pub fn node<F, E>(
        &self,
        spec: NodeSpec,
        app: &'static [&'static [ArgSpec]],
        devices: &'static [Device],
        build: impl Fn(&mut SimNode) -> Result<F, StartError> + 'static,
    ) -> NodeId
    where
        F: Future<Output = Result<(), E>> + 'static,
        E: Display + 'static,
    {
        let mut slots = self.inner.slots.borrow_mut();
        let id = slots.len();
        let mac = [2, 0x53, 0x49, 0x4d, (id >> 8) as u8, id as u8];
        let port = self.inner.fabric.borrow_mut().add_port(mac);
        assert_eq!(port, id, "one port per node");
        let (name, argv) = (spec.name.clone(), spec.argv.clone());
        let boot: BootFn = Rc::new(move |b: NodeBoot| {
            let (node, app) =
                morgana_target::prepare::<SimNode, _, F, E>(b, &name, &argv, app, devices, &build)?;
            let app: std::pin::Pin<Box<dyn Future<Output = u8>>> =
                Box::pin(async move { morgana_target::exit_status::<SimNode, E>(Ok(app.await)) });
            Ok((node, app))
        });
        let skew = spec.skew.unwrap_or_else(|| self.inner.swarm.skew(self.inner.config.seed, id));
        let disk = spec.disk.map(|(size, sectors)| {
            let (lose, tear) = self.inner.swarm.power_cut;
            let ([a, b, c], f) = (self.inner.swarm.disk, spec.disk_faults);
            let (flip, misread, miswrite) = (a * f.flip, b * f.misread, c * f.miswrite);
            let dev = FaultyBlock::new(
                MemBlock::new(size, sectors),
                mix(self.inner.config.seed ^ (id as u64) << 20),
            )
            .power_cut_faults(lose, tear)
            .read_faults(flip, misread)
            .misdirected_writes(miswrite);
            Rc::new(RefCell::new(dev))
        });
        slots.push(Slot {
            spec,
            port,
            skew,
            disk,
            boot,
            boots: 0,
            exit: Rc::default(),
            exit_waiters: Rc::default(),
            running: None,
            next: None,
        });
        id
    }

    /// Run until the director's future completes (its error is the run's failure), the world is
    /// stuck, or the time limit.
    pub fn run<D>(self, director: impl FnOnce(Ctl) -> D) -> Outcome
    where
        D: Future<Output = Result<(), String>> + 'static,
    {
        let started = std::time::Instant::now();
        let inner = self.inner.clone();
        let exec = Executor::new(inner.clock.node(Skew::default()));
        let ctl = Ctl { inner: inner.clone(), clock: exec.handle() };
        let done: Rc<RefCell<Option<Result<(), String>>>> = Rc::default();
        let fut = director(ctl.clone());
        exec.handle().spawn({
            let done = done.clone();
            async move { *done.borrow_mut() = Some(fut.await) }
        });
        let director_rng = Rc::new(RefCell::new(ChaCha20Rng::seed_from_u64(mix(inner.config.seed ^ 0xd1))));
        let count = inner.slots.borrow().len();
        for id in 0..count {
            if inner.slots.borrow()[id].spec.start {
                ctl.start(id);
            }
        }
        let limit = Instant::ZERO + inner.config.limit;
        let result = loop {
            loop {
                let mut busy = inner.fabric.borrow_mut().deliver_due() > 0;
                set_running(DIRECTOR, inner.clock.now());
                let step = crate::tls::with_rng(&director_rng, || exec.run_until_idle());
                busy |= inner.ran(DIRECTOR, step);
                if done.borrow().is_some() {
                    break;
                }
                for id in 0..count {
                    busy |= inner.step(id);
                }
                if !busy {
                    break;
                }
            }
            if let Some(r) = done.borrow_mut().take() {
                break r.map_err(Failure::Check);
            }
            let next = inner.next_event(exec.next_deadline());
            match next {
                None => break Err(Failure::Stuck(inner.report())),
                Some(at) if at > limit => {
                    inner.clock.advance_to(limit);
                    break Err(Failure::TimeLimit(inner.report()));
                }
                Some(at) => inner.clock.advance_to(at),
            }
        };
        drop(exec);
        for id in 0..count {
            let node = inner.slots.borrow_mut()[id].running.take();
            drop(node);
        }
        drop(ctl);
        let end = inner.clock.now();
        let pcap = inner.fabric.borrow_mut().pcap().cloned();
        let trace = std::mem::take(&mut *inner.trace.borrow_mut());
        let hash = trace.hash();
        let swarm = inner.swarm.drawn.then(|| inner.swarm.to_string());
        Outcome { seed: inner.config.seed, result, hash, trace, pcap, end, wall: started.elapsed(), swarm }
    }
}

impl Inner {
    fn ran(&self, node: u16, step: Idle) -> bool {
        if step.polls == 0 && step.timers == 0 {
            return false;
        }
        let now = self.clock.now();
        self.trace
            .borrow_mut()
            .push(now, Event::Ran { node, polls: step.polls as u32, timers: step.timers as u32 });
        true
    }

    /// Run node `id` until idle, if it has something to do (a task woken, a timer due); whether
    /// it did anything. A node whose app finished halts.
    fn step(&self, id: NodeId) -> bool {
        let now = self.clock.now();
        let node = {
            let slots = self.slots.borrow();
            let slot = &slots[id];
            match &slot.running {
                Some(n) if n.exec().is_woken() || slot.next.is_some_and(|at| at <= now) => n.clone(),
                _ => return false,
            }
        };
        set_running(id as u16, now);
        let step = crate::tls::with_rng(node.tls_rng(), || node.exec().run_until_idle());
        let busy = self.ran(id as u16, step);
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[id];
        slot.next = node.exec().next_deadline().map(|d| slot.skew.world(d));
        let exited = slot.exit.get().is_some();
        drop(slots);
        if exited {
            self.halt(id);
        }
        busy
    }

    /// Stop node `id` (its memory is gone), cutting it off the switch.
    fn halt(&self, id: NodeId) -> Option<Rc<SimNode>> {
        let mut slots = self.slots.borrow_mut();
        let node = slots[id].running.take();
        let port = slots[id].port;
        drop(slots);
        self.fabric.borrow_mut().set_port(port, false);
        node
    }

    fn next_event(&self, director: Option<Instant>) -> Option<Instant> {
        let mut next = director;
        let mut consider = |at: Option<Instant>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        consider(self.fabric.borrow().next_arrival());
        for slot in self.slots.borrow().iter() {
            if slot.running.is_some() {
                consider(slot.next);
            }
        }
        next
    }

    /// What each node is doing: for a stuck world or a time limit.
    fn report(&self) -> String {
        let now = self.clock.now();
        let mut out = format!("at {now}, {} frames in flight\n", self.fabric.borrow().in_flight());
        for (id, slot) in self.slots.borrow().iter().enumerate() {
            let name = &slot.spec.name;
            match (&slot.running, slot.exit.get()) {
                (Some(node), _) => {
                    let tasks = node.exec().live_tasks();
                    let next = node.exec().next_deadline().map(|d| slot.skew.world(d));
                    out += &format!("  n{id} {name}: {tasks} tasks, ");
                    out += &match next {
                        Some(at) => format!("next timer at {at}"),
                        None => "no timer".into(),
                    };
                    let waits = node.tap().waits();
                    if waits.is_empty() {
                        out += ", no I/O in progress\n";
                    } else {
                        let list: Vec<String> = waits
                            .iter()
                            .map(|w| format!("{:?} on c{} since {}", w.op, w.conn, w.since))
                            .collect();
                        out += &format!(", waiting on: {}\n", list.join("; "));
                    }
                }
                (None, Some(code)) => out += &format!("  n{id} {name}: exited with status {code}\n"),
                (None, None) => out += &format!("  n{id} {name}: down\n"),
            }
        }
        out
    }
}

/// The director's handle on the world: time, starts, crashes, partitions, notes.
#[derive(Clone)]
pub struct Ctl {
    inner: Rc<Inner>,
    clock: Handle<NodeTime>,
}

impl Ctl {
    /// World time.
    pub fn now(&self) -> Instant {
        self.inner.clock.now()
    }

    /// Wait `d` of world time.
    pub async fn sleep(&self, d: Duration) {
        self.clock.sleep(d).await
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.inner.config.seed
    }

    /// The scenario's randomness, from the seed.
    pub fn rng(&self) -> RefMut<'_, ChaCha8Rng> {
        self.inner.rng.borrow_mut()
    }

    /// The fault mix.
    pub fn swarm(&self) -> &Swarm {
        &self.inner.swarm
    }

    /// Boot node `id` (it must be down): a fresh executor, its seed for this boot, its disk as
    /// the last crash left it.
    pub fn start(&self, id: NodeId) {
        let inner = &self.inner;
        let (boot_fn, boot) = {
            let mut slots = inner.slots.borrow_mut();
            let slot = &mut slots[id];
            assert!(slot.running.is_none(), "n{id} is already running");
            let boots = slot.boots;
            slot.boots += 1;
            slot.exit.set(None);
            let seed = mix(inner.config.seed ^ mix((id as u64) << 32 | u64::from(boots)));
            let tls_rng = Rc::new(RefCell::new(ChaCha20Rng::seed_from_u64(mix(seed ^ 0x715))));
            let boot = NodeBoot {
                index: id as u16,
                time: inner.clock.node(slot.skew),
                seed,
                fabric: inner.fabric.clone(),
                port: slot.port,
                disk: slot.disk.clone(),
                tap: Tap::new(id as u16, inner.trace.clone(), inner.clock.clone()),
                tls_rng,
                tcpip: slot.spec.tcpip.clone(),
            };
            inner.trace.borrow_mut().push(inner.clock.now(), Event::Boot { node: id as u16, boot: boots });
            (slot.boot.clone(), boot)
        };
        inner.fabric.borrow_mut().set_port(id, true);
        let rng = boot.tls_rng.clone();
        let exit = inner.slots.borrow()[id].exit.clone();
        let waiters = inner.slots.borrow()[id].exit_waiters.clone();
        set_running(id as u16, inner.clock.now());
        match crate::tls::with_rng(&rng, || boot_fn(boot)) {
            Ok((node, app)) => {
                let trace = inner.trace.clone();
                let clock = inner.clock.clone();
                node.spawn_app(async move {
                    let code = app.await;
                    trace.borrow_mut().push(clock.now(), Event::Exit { node: id as u16, code });
                    exit.set(Some(code));
                    waiters.borrow_mut().drain(..).for_each(std::task::Waker::wake);
                });
                let mut slots = inner.slots.borrow_mut();
                slots[id].next = Some(inner.clock.now());
                slots[id].running = Some(Rc::new(node));
            }
            Err(code) => {
                inner.trace.borrow_mut().push(inner.clock.now(), Event::Exit { node: id as u16, code });
                exit.set(Some(code));
                waiters.borrow_mut().drain(..).for_each(std::task::Waker::wake);
                inner.fabric.borrow_mut().set_port(id, false);
            }
        }
    }

    /// Crash node `id`: everything in its memory is gone; its disk keeps what was flushed, and
    /// each unflushed write is lost, kept or torn as the disk model draws.
    pub fn crash(&self, id: NodeId) {
        let node = self.inner.halt(id);
        drop(node);
        let disk = self.inner.slots.borrow()[id].disk.clone();
        let cut = disk.map(|d| {
            let mut d = d.borrow_mut();
            futures::FutureExt::now_or_never(d.power_cut()).and_then(Result::ok).unwrap_or_default()
        });
        let cut = cut.unwrap_or_default();
        self.inner.trace.borrow_mut().push(
            self.now(),
            Event::Crash {
                node: id as u16,
                unflushed: cut.unflushed as u32,
                lost: cut.lost as u32,
                torn: cut.torn as u32,
            },
        );
    }

    /// Crash node `id` and boot it again.
    pub fn restart(&self, id: NodeId) {
        self.crash(id);
        self.start(id);
    }

    /// Whether node `id` is running.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.inner.slots.borrow()[id].running.is_some()
    }

    /// Node `id`'s exit status, once its app has finished (or failed to start).
    pub fn exit_code(&self, id: NodeId) -> Option<u8> {
        self.inner.slots.borrow()[id].exit.get()
    }

    /// Wait until node `id`'s app has finished; its exit status.
    pub async fn wait_exit(&self, id: NodeId) -> u8 {
        std::future::poll_fn(|cx| match self.exit_code(id) {
            Some(code) => std::task::Poll::Ready(code),
            None => {
                self.inner.slots.borrow()[id].exit_waiters.borrow_mut().push(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await
    }

    /// Cut the link `from` → `to` (a one-way partition).
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.inner.fabric.borrow_mut().set_link(from, to, false);
    }

    /// Cut every link between `a` and `b`, both ways.
    pub fn partition(&self, a: &[NodeId], b: &[NodeId]) {
        let mut f = self.inner.fabric.borrow_mut();
        for &x in a {
            for &y in b {
                f.set_link(x, y, false);
                f.set_link(y, x, false);
            }
        }
    }

    /// Heal every partition.
    pub fn heal(&self) {
        let mut f = self.inner.fabric.borrow_mut();
        let n = f.ports();
        for from in 0..n {
            for to in 0..n {
                f.set_link(from, to, true);
            }
        }
    }

    /// The faults of the link `from` → `to`.
    pub fn set_faults(&self, from: NodeId, to: NodeId, faults: LinkFaults) {
        self.inner.fabric.borrow_mut().set_faults(from, to, faults);
    }

    /// Put `value` in the trace.
    pub fn note(&self, value: u64) {
        self.inner.trace.borrow_mut().push(self.now(), Event::Note { node: DIRECTOR, value });
    }

    /// Draw a number below `n` from the scenario's randomness.
    pub fn below(&self, n: u64) -> u64 {
        self.rng().next_u64() % n.max(1)
    }
}
