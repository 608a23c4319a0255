//! A node: one unikernel in the world, as a [`Target`]. Its app asks it for devices exactly as
//! on any other target (`t.tcp_stack()`, `t.block()`, `t.platform()`), reading the same
//! arguments (`--ipv4 10.0.0.1/24`); what it gets is the simulator's: `morgana-tcpip` on a port
//! of the world's switch, the node's disk (a [`FaultyBlock`] that outlives crashes), a clock that
//! is the world's through the node's skew, and randomness from the node's seed.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::rc::Rc;

use futures::FutureExt;
use morgana::block::{Block, BlockError, BlockInfo};
use morgana_args::{ArgSpec, Args};
use morgana_mem::{FaultyBlock, MemBlock, SeededEntropy};
use morgana_rt::{Executor, Park, RtPlatform, Stalled};
use morgana_target::{Absent, Device, Refused, Specs, StartError, Target};
use rand_chacha::ChaCha20Rng;

use crate::fabric::{Fabric, SimNet};
use crate::time::{NodeTime, WorldClock};
use crate::traced::{Tap, Traced};

/// The platform a node's app receives: the node's clock, its seeded entropy, its executor.
pub type SimPlatform = RtPlatform<NodeTime, SeededEntropy>;

/// A node's disk, kept by the world across the node's crashes.
pub type Disk = Rc<RefCell<FaultyBlock<MemBlock>>>;

/// A node's view of its disk. Every operation of the RAM disk underneath completes at once,
/// so it is done within one poll and no borrow is held across an await.
pub struct NodeDisk(Disk);

fn at_once<T>(f: impl Future<Output = T>) -> T {
    f.now_or_never().expect("a RAM disk operation completes at once")
}

impl Block for NodeDisk {
    fn info(&self) -> BlockInfo {
        self.0.borrow().info()
    }

    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        at_once(self.0.borrow_mut().read(sector, buf))
    }

    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        at_once(self.0.borrow_mut().write(sector, buf))
    }

    async fn flush(&mut self) -> Result<(), BlockError> {
        at_once(self.0.borrow_mut().flush())
    }
}

/// What the world hands a node to boot: its clock, seed, port and disk.
pub struct NodeBoot {
    pub(crate) index: u16,
    pub(crate) time: NodeTime,
    pub(crate) seed: u64,
    pub(crate) fabric: Rc<RefCell<Fabric>>,
    pub(crate) port: usize,
    pub(crate) disk: Option<Disk>,
    pub(crate) tap: Tap,
    pub(crate) tls_rng: Rc<RefCell<ChaCha20Rng>>,
    pub(crate) tcpip: Rc<dyn Fn(morgana_tcpip::Config) -> morgana_tcpip::Config>,
}

/// A running node: the [`Target`] its app is built on, and the executor its tasks run on.
/// Dropping it is the node's crash: every task, socket and buffer is gone.
pub struct SimNode {
    exec: Executor<NodeTime>,
    platform: SimPlatform,
    args: Args,
    boot: NodeBoot,
    taken: Vec<&'static str>,
    /// What the app and its stacks count (a node's run prints no counters lines: the trace is
    /// its record).
    counters: morgana_target::Counters,
}

impl SimNode {
    /// The node's executor.
    pub(crate) fn exec(&self) -> &Executor<NodeTime> {
        &self.exec
    }

    /// Run the app's future (and so its exit) on this node.
    pub(crate) fn spawn_app(&self, app: impl Future<Output = ()> + 'static) {
        use morgana::Spawn;
        self.exec.handle().spawn(app);
    }

    /// Its trace tap (what it waits on).
    pub(crate) fn tap(&self) -> &Tap {
        &self.boot.tap
    }

    /// Its TLS randomness.
    pub(crate) fn tls_rng(&self) -> &Rc<RefCell<ChaCha20Rng>> {
        &self.boot.tls_rng
    }

    fn take(&mut self, what: &'static str) -> Result<(), StartError> {
        if self.taken.contains(&what) {
            return Err(StartError::Device(format!("the {what} was already handed out")));
        }
        self.taken.push(what);
        Ok(())
    }
}

impl fmt::Debug for SimNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimNode(n{})", self.boot.index)
    }
}

fn refused(name: &'static str, kind: &'static str, help: &'static str, instead: &'static str) -> Refused {
    Refused {
        spec: ArgSpec::value(name, kind, help),
        why: "a simulated node has no directories or files",
        instead,
    }
}

impl Target for SimNode {
    const NAME: &'static str = "sim";
    type Boot = NodeBoot;
    type Platform = SimPlatform;
    type TcpStack = Traced<morgana_tcpip::Stack>;
    type Net = SimNet;
    type Block = Traced<NodeDisk>;
    type KvRo = Absent;
    type KvRw = Absent;

    fn specs(devices: &[Device]) -> Specs {
        let mut out = Specs::default();
        for d in devices {
            match d {
                Device::TcpStack | Device::Net => {
                    for s in morgana_tcpip::ARGS {
                        if !out.read.iter().any(|o| o.name == s.name) {
                            out.read.push(*s);
                        }
                    }
                }
                Device::Block | Device::Archive(_) => {}
                Device::KvRo(s) | Device::KvRw(s) => {
                    out.refused.push(refused(s.name, "DIR", s.help, s.instead))
                }
                Device::File(s) => out.refused.push(refused(s.name, "FILE", s.help, s.instead)),
            }
        }
        out
    }

    fn print_usage(text: &str) {
        log::info!("{text}");
    }

    fn print_error(line: fmt::Arguments<'_>) {
        log::error!("{line}");
    }

    fn start(boot: NodeBoot, args: Args, _level: log::LevelFilter) -> Result<Self, StartError> {
        let exec = Executor::new(boot.time.clone());
        let platform = RtPlatform::new(exec.handle(), SeededEntropy::new(boot.seed));
        Ok(Self {
            exec,
            platform,
            args,
            boot,
            taken: Vec::new(),
            counters: morgana_target::Counters::default(),
        })
    }

    fn args(&self) -> &Args {
        &self.args
    }

    fn counters(&self) -> &morgana_target::Counters {
        &self.counters
    }

    fn platform(&self) -> SimPlatform {
        self.platform.clone()
    }

    fn tcp_stack(&mut self) -> Result<Self::TcpStack, StartError> {
        self.take("network interface")?;
        let config = self.tcpip_config()?;
        let net = SimNet::new(self.boot.fabric.clone(), self.boot.port);
        let stack = morgana_tcpip::spawn(&self.platform, net, config);
        Ok(Traced::new(stack, self.boot.tap.clone()))
    }

    fn net(&mut self) -> Result<SimNet, StartError> {
        self.take("network interface")?;
        Ok(SimNet::new(self.boot.fabric.clone(), self.boot.port))
    }

    fn tcpip_config(&self) -> Result<morgana_tcpip::Config, StartError> {
        Ok((self.boot.tcpip)(morgana_tcpip::Config::from_args(&self.args)?))
    }

    fn block(&mut self) -> Result<Self::Block, StartError> {
        self.take("disk")?;
        match &self.boot.disk {
            Some(d) => Ok(Traced::new(NodeDisk(d.clone()), self.boot.tap.clone())),
            None => Err(StartError::Device(
                "this node has no disk: give it one in the scenario (NodeSpec::disk)".into(),
            )),
        }
    }

    fn kv_ro(&mut self, _: &str) -> Result<Option<Absent>, StartError> {
        Ok(None)
    }

    fn kv_rw(&mut self, name: &str) -> Result<Absent, StartError> {
        Err(StartError::Device(format!(
            "--{name}: a simulated node has no directories; build the store on its disk (t.block())"
        )))
    }

    fn file(&mut self, _: &str) -> Result<Option<Vec<u8>>, StartError> {
        Ok(None)
    }

    /// Run `app` on this node alone: the world's clock jumps to each next deadline, and frames
    /// in flight arrive when due (a world of one; a [`World`](crate::World) steps its nodes
    /// itself and never calls this).
    fn block_on<F: Future>(self, app: F) -> Result<F::Output, Stalled> {
        struct Alone<'a> {
            node: &'a SimNode,
            clock: WorldClock,
        }
        impl Park for Alone<'_> {
            fn park(&mut self, deadline: Option<morgana::Instant>) -> Result<(), Stalled> {
                let fabric = self.node.boot.fabric.borrow().next_arrival();
                let local = deadline.map(|d| self.node.boot.time.skew().world(d));
                match [local, fabric].into_iter().flatten().min() {
                    None => Err(Stalled::Deadlock { at: self.clock.now() }),
                    Some(at) => {
                        self.clock.advance_to(at);
                        self.node.boot.fabric.borrow_mut().deliver_due();
                        Ok(())
                    }
                }
            }
        }
        let clock = self.boot.time.world();
        let rng = self.boot.tls_rng.clone();
        crate::tls::with_rng(&rng, || self.exec.block_on(&mut Alone { node: &self, clock }, app))
    }
}
