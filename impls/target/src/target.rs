//! The trait every target implements.

use alloc::vec::Vec;
use core::future::Future;

use morgana::{Block, Either, KvRo, KvRw, Net, Platform, Resolver, TcpStack, UdpStack};
use morgana_args::{ArgSpec, Args};
use morgana_rt::Stalled;

use crate::{Chosen, Counters, Device, Or, StartError};

/// The user asking for the counters (SIGUSR1 on a host), or asking the program to stop
/// (SIGTERM, SIGINT), which prints them before it exits.
pub trait StatsRequests {
    /// Ready once for each request since the last ready; else the task of `cx` is woken at the
    /// next one.
    fn poll_request(&mut self, cx: &mut core::task::Context<'_>) -> core::task::Poll<StatsRequest>;
}

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsRequest {
    /// The counters, now.
    Now,
    /// Stop: print the counters and exit with this status (128 + the signal, by convention).
    Exit(u8),
}

/// A target's arguments for one app's devices: those it reads (listed by `--help`) and those
/// it knows but cannot honour (never listed; given, they stop the start with their reason).
#[derive(Debug, Clone, Default)]
pub struct Specs {
    /// Read by the target to provide the devices.
    pub read: Vec<ArgSpec>,
    /// Refused with a reason: `--kv DIR` on a target without directories.
    pub refused: Vec<Refused>,
}

/// An argument a target knows but cannot honour, and why: "bare metal has no directories to
/// read; drop --kv to check the compiled-in store". Given, it is one line and exit status 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The argument, so that its value is consumed and shown.
    pub spec: ArgSpec,
    /// Why it cannot be honoured.
    pub why: &'static str,
    /// What to do instead.
    pub instead: &'static str,
}

/// A target: where an app runs (a Linux process, a bare-metal image, ...). It declares the
/// arguments its devices need, starts the platform, and hands devices out as the app asks.
///
/// Each device method is called at most once per device (a second call says the device is
/// taken); asking for a device the app did not list in its `devices` finds its arguments
/// undeclared.
pub trait Target: Sized {
    /// The name `cargo xtask --target` knows it by.
    const NAME: &'static str;
    /// What the target brought up before the arguments could be read (bare metal: the machine
    /// and its command line; a process: nothing).
    type Boot;
    /// Clock, RNG and spawning.
    type Platform: Platform;
    /// The default transport stack.
    type TcpStack: TcpStack + UdpStack + Resolver + Clone + 'static;
    /// A network interface.
    type Net: Net + 'static;
    /// A block device.
    type Block: Block + 'static;
    /// A read-only store ([`Absent`](crate::Absent) where there are none).
    type KvRo: KvRo + 'static;
    /// A read-write store ([`Absent`](crate::Absent) where there are none).
    type KvRw: KvRw + 'static;

    /// The arguments this target reads (and refuses) to provide `devices`.
    fn specs(devices: &[Device]) -> Specs;

    /// Print the usage text (`--help`) where the user reads it.
    fn print_usage(text: &str);

    /// Print one line where errors go (stderr, the serial console).
    fn print_error(line: core::fmt::Arguments<'_>);

    /// Start: logging at `level`, the event loop, the platform. Devices open later, when the app
    /// asks for them.
    fn start(boot: Self::Boot, args: Args, level: log::LevelFilter) -> Result<Self, StartError>;

    /// The parsed arguments: the app's, the target's, [`COMMON`](crate::COMMON).
    fn args(&self) -> &Args;

    /// The platform for the app (cheap to clone).
    fn platform(&self) -> Self::Platform;

    /// The default stack (Mirage's `generic_stackv4v6`), its runner spawned.
    fn tcp_stack(&mut self) -> Result<Self::TcpStack, StartError>;

    /// The network interface, for an app that runs its own stack on it.
    fn net(&mut self) -> Result<Self::Net, StartError>;

    /// How this target configures a stack of its own on [`Target::net`] (the addressing
    /// arguments, and the target's default when there are none: DHCP on a hypervisor's network).
    fn tcpip_config(&self) -> Result<morgana_tcpip::Config, StartError>;

    /// The block device.
    fn block(&mut self) -> Result<Self::Block, StartError>;

    /// The read-only store `--name DIR`, if given.
    fn kv_ro(&mut self, name: &str) -> Result<Option<Self::KvRo>, StartError>;

    /// The read-write store `--name DIR` (required).
    fn kv_rw(&mut self, name: &str) -> Result<Self::KvRw, StartError>;

    /// The bytes of the file `--name FILE`, if given.
    fn file(&mut self, name: &str) -> Result<Option<Vec<u8>>, StartError>;

    /// A limit on the connections the target can hold open at once, where it has one that an
    /// app could exceed: on a host, the open-files limit (a descriptor per connection, and a few
    /// for listeners, the event loop and files). `None` where memory is the only limit.
    fn connection_limit(&self) -> Option<u64> {
        None
    }

    /// The run's counters: the target adds its devices' and stacks' groups as it builds them
    /// (`net`, `tcp`), the app its own (`tls`, `http`); the run prints them at exit, every
    /// `--stats-interval` and on request.
    fn counters(&self) -> &Counters;

    /// How the user asks for the counters now, where there is a way (a signal on a host).
    fn stats_requests(&mut self) -> Option<alloc::boxed::Box<dyn StatsRequests>> {
        None
    }

    /// Run `app` and the tasks it spawns until `app` completes.
    fn block_on<F: Future>(self, app: F) -> Result<F::Output, Stalled>;

    /// The block device holding the archive `--name FILE`, if given, read-only (for
    /// [`Device::Archive`](crate::Device::Archive)); `None` where the target has no such
    /// devices.
    fn archive(&mut self, name: &str) -> Result<Option<Self::Block>, StartError> {
        let _ = name;
        Ok(None)
    }

    /// The store `--dir DIR` if given, else the tar image `--archive FILE` if given, else
    /// `fallback`: chosen now (both given is one line), opened by [`Chosen::open`] inside the
    /// app's future (reading the archive's index is I/O), so that every target wires an
    /// archive the same way.
    fn kv_ro_or_archive<F: KvRo>(
        &mut self,
        dir: &str,
        archive: &'static str,
        fallback: F,
    ) -> Result<Chosen<Self::KvRo, Self::Block, F>, StartError> {
        if self.args().flag(dir) && self.args().flag(archive) {
            return Err(StartError::Usage(alloc::format!(
                "--{dir} and --{archive} both name the store: give one of them"
            )));
        }
        let file = alloc::string::String::from(self.args().raw(archive).unwrap_or_default());
        if let Some(dev) = self.archive(archive)? {
            return Ok(Chosen::Archive { dev, name: archive, file });
        }
        Ok(match self.kv_ro(dir)? {
            Some(given) => Chosen::Given(given),
            None => Chosen::Fallback(fallback),
        })
    }

    /// The store `--name DIR` if given, else `fallback`, as one type.
    fn kv_ro_or<F: KvRo>(&mut self, name: &str, fallback: F) -> Result<Or<Self::KvRo, F>, StartError> {
        Ok(match self.kv_ro(name)? {
            Some(given) => Either::Left(given),
            None => Either::Right(fallback),
        })
    }
}
