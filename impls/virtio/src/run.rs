//! The kernel's entry: platform bring-up, arguments, logging, the executor, the exit status.

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use core::fmt::Display;
use core::future::Future;
use core::str::FromStr;

use morgana::args::{ArgError, ArgSpec, Args, COMMON};
use morgana::{Duration, Instant};
use morgana_rt::{Executor, RtPlatform, TimeSource};

use crate::cmdline::Cmdline;
use crate::console::{init_log, println};
use crate::devices::Devices;
use crate::irq::{HaltPark, Irqs, Timer};
use crate::rng::HwEntropy;
use crate::sys::{self, apic, cpu};
use crate::time::{KernelTime, Scale};

/// The app returned `Ok`.
pub const EXIT_SUCCESS: u8 = 0;
/// The app returned an error, the executor stalled, or the platform could not start.
pub const EXIT_FAILURE: u8 = 1;
/// A bad argument on the kernel command line.
pub const EXIT_USAGE: u8 = 2;
/// A CPU exception.
pub const EXIT_EXCEPTION: u8 = 3;
/// A panic (Rust's own convention for a panicking process).
pub const EXIT_PANIC: u8 = 101;

/// The platform an app receives on bare metal.
pub type VirtioPlatform = RtPlatform<KernelTime, HwEntropy>;

/// The clock an app receives on bare metal (`platform.clock()`).
pub type VirtioClock = morgana_rt::Handle<KernelTime>;

/// Why an app could not start (returned by the `build` closure of [`run`] and
/// [`run_with_devices`]).
#[derive(Debug)]
pub enum StartError {
    /// A bad argument value: one line, exit status 2.
    Args(ArgError),
    /// Arguments that do not go together, or one missing; the line says what to add (exit
    /// status 2, as a bad value).
    Usage(String),
    /// A device is missing or unusable; the line says why and how to fix it (exit status 1).
    Device(String),
}

impl From<ArgError> for StartError {
    fn from(e: ArgError) -> Self {
        Self::Args(e)
    }
}

impl Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Args(e) => e.fmt(f),
            Self::Usage(m) | Self::Device(m) => f.write_str(m),
        }
    }
}

/// What the platform brought up.
struct Booted {
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
    let (start, len) = crate::memmap::heap_region(info.regions, &info.reserved, 1 << 32)
        .ok_or("the memory map has no free RAM for a heap: give the VM more memory (--mem)")?;
    if !sys::heap::init(start, len) {
        return Err("the heap's memory lies above 4 GiB".into());
    }
    let line = core::str::from_utf8(info.cmdline).map_err(|_| "the kernel command line is not UTF-8")?;
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

/// Bring the platform up, parse the kernel command line against [`COMMON`] and `app_args`, start
/// logging, and run the app that `build` returns until it completes; then exit with its status.
///
/// `--help` prints the usage and exits 0; a bad argument prints one line and exits 2; an app
/// error prints `error: ...` and exits 1; a [`StartError::Device`] prints one line and exits 1.
/// No devices are probed: see [`run_with_devices`].
pub fn run<F, E>(
    app_args: &[ArgSpec],
    build: impl FnOnce(VirtioPlatform, &Args) -> Result<F, StartError>,
) -> !
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    start(app_args, false, |platform, _devices, args| build(platform, args))
}

/// [`run`], with the virtio-net and virtio-blk devices found at boot handed to `build`, and the
/// TCP/IP stack's own arguments ([`morgana_tcpip::ARGS`]: `--ipv6`, `--ipv6-gateway`) declared
/// for [`crate::stack`].
pub fn run_with_devices<F, E>(
    app_args: &[ArgSpec],
    build: impl FnOnce(VirtioPlatform, Devices, &Args) -> Result<F, StartError>,
) -> !
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    start(app_args, true, build)
}

fn start<F, E>(
    app_args: &[ArgSpec],
    probe: bool,
    build: impl FnOnce(VirtioPlatform, Devices, &Args) -> Result<F, StartError>,
) -> !
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let program = sys::boot::program_name();
    let b = match boot() {
        Ok(b) => b,
        Err(e) => {
            println(format_args!("{program}: cannot start: {e}"));
            sys::exit(EXIT_FAILURE)
        }
    };
    let net_args: &[ArgSpec] = if probe { morgana_tcpip::ARGS } else { &[] };
    let specs = [COMMON, net_args, app_args];
    let args = match Args::parse(&specs, &b.cmdline.args) {
        Ok(a) => a,
        Err(e) => arg_failure(program, &specs, e),
    };
    let level = match args.get_opt_with("log", "error, warn, info, debug or trace", level) {
        Ok(l) => l.unwrap_or(log::LevelFilter::Info),
        Err(e) => arg_failure(program, &specs, e),
    };
    init_log(b.time, level);
    let devices = if probe {
        let (devices, errors) = Devices::discover(&b.cmdline.mmio, &b.irqs);
        for e in errors {
            log::warn!("{e}");
        }
        devices
    } else {
        Devices::default()
    };
    let exec = Executor::new(b.time);
    let platform = RtPlatform::new(exec.handle(), b.entropy);
    let app = match build(platform, devices, &args) {
        Ok(app) => app,
        Err(StartError::Args(e)) => arg_failure(program, &specs, e),
        Err(StartError::Usage(e)) => {
            println(format_args!("{program}: {e}"));
            sys::exit(EXIT_USAGE)
        }
        Err(StartError::Device(e)) => {
            println(format_args!("{program}: {e}"));
            sys::exit(EXIT_FAILURE)
        }
    };
    let started: Instant = b.time.now();
    log::debug!("boot: {} us from the first instruction to the app ({})", started.as_micros(), b.describe);
    let mut park = b.park;
    let status = match exec.block_on(&mut park, app) {
        Ok(Ok(())) => EXIT_SUCCESS,
        Ok(Err(e)) => {
            println(format_args!("error: {e}"));
            EXIT_FAILURE
        }
        Err(stalled) => {
            println(format_args!("error: {stalled}"));
            EXIT_FAILURE
        }
    };
    // Let the NICs send what the app handed them last, before QEMU stops.
    let clock = exec.handle();
    let _ = exec.block_on(&mut park, crate::net::drain_tx(&clock, Duration::from_millis(100)));
    sys::exit(status)
}

/// A `--log` level: the usual lower-case names by a direct match (`LevelFilter::from_str`'s
/// case-insensitive search costs a few hundred emulated instructions at boot), else as `log`
/// parses it.
fn level(s: &str) -> Option<log::LevelFilter> {
    use log::LevelFilter::*;
    Some(match s {
        "info" => Info,
        "debug" => Debug,
        "warn" => Warn,
        "error" => Error,
        "trace" => Trace,
        "off" => Off,
        _ => return log::LevelFilter::from_str(s).ok(),
    })
}

fn arg_failure(program: &str, specs: &[&[ArgSpec]], e: ArgError) -> ! {
    if e == ArgError::Help {
        crate::sys::serial::write(Args::usage(program, specs).as_bytes());
        sys::exit(EXIT_SUCCESS)
    }
    println(format_args!("{program}: {e}"));
    sys::exit(EXIT_USAGE)
}
