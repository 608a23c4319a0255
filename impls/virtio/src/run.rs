//! The kernel's entry: platform bring-up, then the shared run skeleton with [`Virtio`] as the
//! target, then the exit status.

use alloc::borrow::Cow;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::fmt::Display;
use core::future::Future;
use core::mem::ManuallyDrop;

use morgana::Duration;
use morgana_args::{ArgSpec, Args};
use morgana_rt::{Executor, RtPlatform, Stalled, TimeSource};
use morgana_target::{Device, Specs, StartError, Target};

use crate::cmdline::Cmdline;
use crate::console::{init_log, println};
use crate::devices::{Devices, VirtioBlock, VirtioNet};
use crate::irq::{HaltPark, Irqs, Timer};
use crate::rng::HwEntropy;
use crate::stack::VirtioStack;
use crate::sys::{self, apic, cpu};
use crate::time::{KernelTime, Scale};

pub use morgana_target::{EXIT_EXCEPTION, EXIT_FAILURE, EXIT_PANIC, EXIT_SUCCESS, EXIT_USAGE};

/// The platform an app receives on bare metal.
pub type VirtioPlatform = RtPlatform<KernelTime, HwEntropy>;

/// The clock an app receives on bare metal (`platform.clock()`).
pub type VirtioClock = morgana_rt::Handle<KernelTime>;

/// What the platform brought up.
pub struct Booted {
    time: KernelTime,
    irqs: Irqs,
    park: HaltPark,
    entropy: HwEntropy,
    cmdline: Cmdline<'static>,
    describe: Describe,
}

/// What the boot log says about the platform; formatted only if debug logging is on.
struct Describe {
    clock: &'static str,
    timer: Timer,
    heap: u64,
}

impl Display for Describe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let timer = match self.timer {
            Timer::TscDeadline => "tsc-deadline",
            Timer::OneShot(_) => "lapic one-shot",
        };
        write!(f, "clock {}, timer {timer}, heap {} KiB", self.clock, self.heap / 1024)
    }
}

/// Bring the platform up. Errors before the heap exists must not allocate, hence `Cow`.
fn boot() -> Result<Booted, Cow<'static, str>> {
    sys::idt::init();
    let info = sys::pvh::start_info()?;
    let len = sys::heap::init(&info)?;
    let line = core::str::from_utf8(info.cmdline()).map_err(|_| "the kernel command line is not UTF-8")?;
    let cmdline = Cmdline::parse(line).map_err(|e| e.to_string())?;
    let entropy = HwEntropy::detect()?;
    let (time, clock) = KernelTime::init();
    let timer = if apic::init() { Timer::TscDeadline } else { Timer::OneShot(calibrate_lapic(&time)) };
    let irqs = Irqs::default();
    cpu::sti();
    let describe = Describe { clock, timer, heap: len };
    Ok(Booted { time, park: HaltPark::new(time, irqs.clone(), timer), irqs, entropy, cmdline, describe })
}

/// Measure the local APIC timer's rate against the clock over 10 ms (only without TSC-deadline).
fn calibrate_lapic(time: &KernelTime) -> Scale {
    let window = Duration::from_millis(10);
    apic::oneshot_start_max();
    let t0 = time.now();
    let mut t1 = t0;
    while t1 - t0 < window {
        core::hint::spin_loop();
        t1 = time.now();
    }
    let ticks = u64::from(u32::MAX - apic::oneshot_remaining());
    apic::disarm();
    let ns = (t1 - t0).as_nanos().max(1);
    Scale::from_hz((u128::from(ticks) * 1_000_000_000 / ns) as u64)
}

/// Bring the platform up, then run the app through the shared skeleton
/// ([`morgana_target::run`]) on the kernel command line, with [`Virtio`] as the target; exit
/// with its status.
///
/// `--help` prints the usage and exits 0; a bad argument prints one line and exits 2; an app
/// error prints `error: ...` and exits 1; a missing device prints one line and exits 1. The
/// virtio devices are probed when the app first asks for one.
pub fn run<F, E>(
    app: &[&[ArgSpec]],
    devices: &[Device],
    build: impl FnOnce(&mut Virtio) -> Result<F, StartError>,
) -> !
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let program = sys::boot::program_name();
    let mut b = match boot() {
        Ok(b) => b,
        Err(e) => {
            println(format_args!("{program}: cannot start: {e}"));
            sys::exit(EXIT_FAILURE)
        }
    };
    // Never freed: the machine stops right after, and freeing costs emulated instructions.
    let argv = ManuallyDrop::new(core::mem::take(&mut b.cmdline.args));
    let status = morgana_target::run::<Virtio, _, _, _>(b, program, argv.iter(), app, devices, build);
    sys::exit(status)
}

/// The bare-metal target: a kernel under a hypervisor, with virtio-net and virtio-blk, the
/// serial console, pvclock or the TSC, and RDRAND. There are no files or directories: a store
/// argument is refused in one line ([`crate::specs`]).
pub struct Virtio {
    exec: Executor<KernelTime>,
    park: HaltPark,
    time: KernelTime,
    platform: VirtioPlatform,
    /// Probed when the app first asks for a device, so that an image without any has no driver
    /// code at all (nor their drop glue: the devices live until the machine stops).
    devices: ManuallyDrop<Option<Devices>>,
    mmio: Vec<crate::cmdline::MmioDevice>,
    irqs: Irqs,
    args: Args,
    describe: Describe,
    counters: morgana_target::Counters,
}

impl Virtio {
    /// The virtio devices (probed at the first call) not taken yet, for an image that wants
    /// more than one of a kind (the conformance image's two NICs).
    pub fn devices(&mut self) -> &mut Devices {
        self.devices.get_or_insert_with(|| {
            let (devices, errors) = Devices::discover(&self.mmio, &self.irqs);
            for e in errors {
                log::warn!("{e}");
            }
            devices
        })
    }
}

impl Target for Virtio {
    const NAME: &'static str = "virtio";
    type Boot = Booted;
    type Platform = VirtioPlatform;
    type TcpStack = VirtioStack;
    type Net = VirtioNet;
    type Block = VirtioBlock;
    type KvRo = morgana_target::Absent;
    type KvRw = morgana_target::Absent;

    fn specs(devices: &[Device]) -> Specs {
        crate::specs::specs(devices)
    }

    fn print_usage(text: &str) {
        sys::serial::write(text.as_bytes());
    }

    fn print_error(line: core::fmt::Arguments<'_>) {
        println(line);
    }

    fn start(b: Booted, args: Args, level: log::LevelFilter) -> Result<Self, StartError> {
        init_log(b.time, level);
        let exec = Executor::new(b.time);
        let platform = RtPlatform::new(exec.handle(), b.entropy).with_heap(heap_usage);
        let (mmio, irqs, describe) = (b.cmdline.mmio, b.irqs, b.describe);
        let devices = ManuallyDrop::new(None);
        let counters = morgana_target::Counters::default();
        Ok(Self { exec, park: b.park, time: b.time, platform, devices, mmio, irqs, args, describe, counters })
    }

    fn args(&self) -> &Args {
        &self.args
    }

    fn platform(&self) -> VirtioPlatform {
        self.platform.clone()
    }

    fn tcp_stack(&mut self) -> Result<VirtioStack, StartError> {
        // As `crate::stack`: the arguments are checked before the NIC is taken.
        let config = crate::tcpip_config(&self.args)?;
        let net = crate::net(self.devices())?;
        let stack = morgana_tcpip::spawn(&self.platform, net, config);
        self.counters.add_tcpip(&stack);
        Ok(stack)
    }

    fn counters(&self) -> &morgana_target::Counters {
        &self.counters
    }

    fn net(&mut self) -> Result<VirtioNet, StartError> {
        crate::net(self.devices())
    }

    fn tcpip_config(&self) -> Result<morgana_tcpip::Config, StartError> {
        crate::tcpip_config(&self.args)
    }

    fn block(&mut self) -> Result<VirtioBlock, StartError> {
        self.devices().block().ok_or_else(|| {
            StartError::Device(
                "no virtio-blk disk: attach a disk image (cargo xtask run APP --target virtio -- --block disk.img)"
                    .into(),
            )
        })
    }

    /// Never given: `--NAME DIR` is refused before the start ([`crate::specs`]).
    fn kv_ro(&mut self, _: &str) -> Result<Option<morgana_target::Absent>, StartError> {
        Ok(None)
    }

    fn kv_rw(&mut self, name: &str) -> Result<morgana_target::Absent, StartError> {
        Err(StartError::Device(alloc::format!("--{name}: bare metal has no directories to read or write")))
    }

    /// The virtio-blk disk, when `--NAME FILE` names it (`cargo xtask run` attaches FILE).
    fn archive(&mut self, name: &str) -> Result<Option<VirtioBlock>, StartError> {
        if self.args.flag(name) { self.block().map(Some) } else { Ok(None) }
    }

    /// Never given: `--NAME FILE` is refused before the start ([`crate::specs`]).
    fn file(&mut self, _: &str) -> Result<Option<Vec<u8>>, StartError> {
        Ok(None)
    }

    fn block_on<F: Future>(self, app: F) -> Result<F::Output, Stalled> {
        // The machine stops when this returns: the executor, its tasks and the devices are never
        // dropped (freeing them would cost a thousand emulated instructions on the way out).
        let mut this = ManuallyDrop::new(self);
        // Only read at `--log debug`: each clock read is a trip to the hypervisor's clock page.
        log::debug!(
            "boot: {} us from the first instruction to the app ({})",
            this.time.now().as_micros(),
            this.describe
        );
        let this = &mut *this;
        let out = this.exec.block_on(&mut this.park, app);
        // Let the NICs send what the app handed them last, before QEMU stops (none were probed:
        // nothing to send).
        if this.devices.is_some() {
            let clock = this.exec.handle();
            let drain = morgana_virtio_drivers::drain_tx(&clock, Duration::from_millis(100));
            let _ = this.exec.block_on(&mut this.park, drain);
        }
        out
    }
}

/// The heap's size and use, for [`morgana::Platform::heap`].
fn heap_usage() -> Option<morgana::HeapUsage> {
    crate::sys::heap::usage().map(|(used, size)| morgana::HeapUsage { used, size })
}
