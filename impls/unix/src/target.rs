//! The hosted target as a [`Target`]: the devices an app asks for, from the process's arguments.

use std::future::Future;
use std::io::Write as _;

use morgana_args::{ArgSpec, Args};
use morgana_rt::Stalled;
use morgana_target::{Device, Specs, StartError, Target};

use crate::block::FileBlock;
use crate::kv::DirKv;
use crate::run::{Runtime, UnixPlatform, raise_open_files_limit};
use crate::tap::TapNet;
use crate::time::SystemTime;
use crate::wiring::{self, BLOCK_ARGS, NET_ARGS, UnixStack};

/// The hosted Linux target: a process with host sockets or a TAP device, files, directories,
/// the system clocks and the OS RNG. [`crate::run`] starts it.
pub struct Unix {
    rt: Runtime,
    args: Args,
    counters: morgana_target::Counters,
}

/// Append `specs` to `out`, skipping names already there (a stack and a NIC share `--net`).
fn add(out: &mut Vec<ArgSpec>, specs: &[ArgSpec]) {
    for s in specs {
        if !out.iter().any(|o| o.name == s.name) {
            out.push(*s);
        }
    }
}

impl Target for Unix {
    const NAME: &'static str = "unix";
    type Boot = ();
    type Platform = UnixPlatform;
    type TcpStack = UnixStack;
    type Net = TapNet;
    type Block = FileBlock;
    type KvRo = DirKv;
    type KvRw = DirKv;

    fn specs(devices: &[Device]) -> Specs {
        let mut read = Vec::new();
        for d in devices {
            match d {
                Device::TcpStack | Device::Net => {
                    add(&mut read, NET_ARGS);
                    add(&mut read, morgana_tcpip::ARGS);
                }
                Device::Block => add(&mut read, BLOCK_ARGS),
                Device::KvRo(s) | Device::KvRw(s) => add(&mut read, &[ArgSpec::value(s.name, "DIR", s.help)]),
                Device::File(s) | Device::Archive(s) => {
                    add(&mut read, &[ArgSpec::value(s.name, "FILE", s.help)])
                }
            }
        }
        Specs { read, refused: Vec::new() }
    }

    fn print_usage(text: &str) {
        print!("{text}");
        let _ = std::io::stdout().flush();
    }

    fn print_error(line: std::fmt::Arguments<'_>) {
        eprintln!("{line}");
    }

    fn start(_: (), args: Args, level: log::LevelFilter) -> Result<Self, StartError> {
        let time = SystemTime::new();
        crate::logger::init(time, level);
        raise_open_files_limit();
        let rt = Runtime::with_time(time)
            .map_err(|e| StartError::Device(format!("cannot create the event loop (epoll): {e}")))?;
        Ok(Self { rt, args, counters: morgana_target::Counters::default() })
    }

    fn args(&self) -> &Args {
        &self.args
    }

    fn platform(&self) -> UnixPlatform {
        self.rt.platform()
    }

    /// Host sockets (`--net socket`, the default) or `morgana-tcpip` on a TAP device (`--net
    /// tap:IFNAME`): see [`wiring::stack`].
    fn tcp_stack(&mut self) -> Result<UnixStack, StartError> {
        let stack = wiring::stack(&self.rt.platform(), &self.args)?;
        // Host sockets are the kernel's TCP (`ss -s`, `nstat` count it); a TAP has our stack.
        if let morgana::Either::Right(s) = &stack {
            self.counters.add_tcpip(s);
        }
        Ok(stack)
    }

    fn counters(&self) -> &morgana_target::Counters {
        &self.counters
    }

    /// SIGUSR1 asks for the counters; SIGTERM and SIGINT stop the program after printing them.
    fn stats_requests(&mut self) -> Option<Box<dyn morgana_target::StatsRequests>> {
        match crate::signal::Signals::new() {
            Ok(s) => Some(Box::new(s)),
            Err(e) => {
                log::warn!("cannot watch for SIGUSR1 (the counters on demand): {e}");
                None
            }
        }
    }

    /// The TAP device `--net tap:IFNAME`; host sockets have none, and say so.
    fn net(&mut self) -> Result<TapNet, StartError> {
        wiring::net(&self.args)
    }

    /// `--ipv4`/`--dhcp`/... as given: with none, IPv6 only (a TAP's network is the user's to
    /// address).
    fn tcpip_config(&self) -> Result<morgana_tcpip::Config, StartError> {
        Ok(morgana_tcpip::Config::from_args(&self.args)?)
    }

    fn block(&mut self) -> Result<FileBlock, StartError> {
        wiring::block(&self.args)
    }

    fn kv_ro(&mut self, name: &str) -> Result<Option<DirKv>, StartError> {
        wiring::kv_opt(&self.args, name)
    }

    fn kv_rw(&mut self, name: &str) -> Result<DirKv, StartError> {
        wiring::kv(&self.args, name)
    }

    fn file(&mut self, name: &str) -> Result<Option<Vec<u8>>, StartError> {
        wiring::file_opt(&self.args, name)
    }

    /// The file `--NAME FILE`, opened read-only as a block device.
    fn archive(&mut self, name: &str) -> Result<Option<FileBlock>, StartError> {
        wiring::archive_opt(&self.args, name)
    }

    /// The open-files limit ([`crate::open_files_limit`]): a descriptor per connection, and a
    /// few for the listeners, epoll, stdio and files.
    fn connection_limit(&self) -> Option<u64> {
        crate::open_files_limit()
    }

    fn block_on<F: Future>(mut self, app: F) -> Result<F::Output, Stalled> {
        self.rt.block_on(app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use morgana_target::Store;

    fn names(devices: &[Device]) -> Vec<&'static str> {
        Unix::specs(devices).read.iter().map(|s| s.name).collect()
    }

    #[test]
    fn each_device_brings_its_arguments_once() {
        assert!(names(&[]).is_empty());
        let net = names(&[Device::TcpStack, Device::Net]);
        assert_eq!(net.iter().filter(|n| **n == "net").count(), 1);
        for n in ["net", "tap-no-offload", "ipv4", "dhcp", "dns-server", "ipv6"] {
            assert!(net.contains(&n), "{n} in {net:?}");
        }
        assert_eq!(names(&[Device::Block]), ["block", "block-size", "block-read-only"]);
        let site = Store::new("block", "a tar image", "");
        assert_eq!(names(&[Device::Archive(site)]), ["block"], "an archive is a file, no sizes");
        let certs = Store::new("certs", "certificates", "");
        assert_eq!(
            names(&[Device::KvRo(certs), Device::File(Store::new("ca", "a CA", ""))]),
            ["certs", "ca"]
        );
    }
}
