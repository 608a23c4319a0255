//! The arguments this target reads for an app's devices, and those it refuses: pure, so that
//! `--help` on bare metal is tested on the host.

use alloc::vec::Vec;

use morgana_args::ArgSpec;
use morgana_target::{Device, Refused, Specs};

/// `--block FILE`: the disk is attached by the hypervisor; the kernel reads the name only so
/// that `cargo xtask run APP --target virtio -- --block FILE` reads as on a host.
pub const BLOCK_ARGS: &[ArgSpec] = &[ArgSpec::value(
    "block",
    "FILE",
    "disk image: cargo xtask run attaches FILE as the virtio-blk disk (the kernel takes the first disk found)",
)];

/// `--net` is the hypervisor's choice on this target, not the kernel's.
const NET: Refused = Refused {
    spec: ArgSpec::value("net", "socket|tap:IFNAME", ""),
    why: "the NIC is the hypervisor's on bare metal",
    instead: "give cargo xtask run --net user|tap:IF before the --",
};

/// What the kernel reads for `devices`: the stack's addressing for a stack or a NIC, the disk
/// name for a disk. Stores and files are refused (there are no directories or files here),
/// each with what to do instead, and so is `--net`.
pub fn specs(devices: &[Device]) -> Specs {
    let mut out = Specs::default();
    let read = |specs: &[ArgSpec], out: &mut Vec<ArgSpec>| {
        for s in specs {
            if !out.iter().any(|o| o.name == s.name) {
                out.push(*s);
            }
        }
    };
    for d in devices {
        match d {
            Device::TcpStack | Device::Net => {
                read(morgana_tcpip::ARGS, &mut out.read);
                if !out.refused.contains(&NET) {
                    out.refused.push(NET);
                }
            }
            Device::Block => read(BLOCK_ARGS, &mut out.read),
            Device::Archive(s) => read(&[ArgSpec::value(s.name, "FILE", s.help)], &mut out.read),
            Device::KvRo(s) | Device::KvRw(s) => out.refused.push(Refused {
                spec: ArgSpec::value(s.name, "DIR", s.help),
                why: "bare metal has no directories to read",
                instead: s.instead,
            }),
            Device::File(s) => out.refused.push(Refused {
                spec: ArgSpec::value(s.name, "FILE", s.help),
                why: "bare metal has no files to read",
                instead: s.instead,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use morgana_args::{Args, COMMON};
    use morgana_target::Store;

    fn usage(devices: &[Device]) -> alloc::string::String {
        let s = specs(devices);
        Args::usage("app", &[COMMON, &s.read])
    }

    #[test]
    fn help_lists_only_what_the_kernel_reads() {
        let echo = usage(&[Device::TcpStack]);
        for absent in ["--net", "socket", "--block", "--kv", "--tap-no-offload", "--block-size"] {
            assert!(!echo.contains(absent), "{absent} in:\n{echo}");
        }
        for present in ["--ipv4 ADDR/PREFIX", "--dhcp", "--dns-server", "--ipv6", "--log", "--help"] {
            assert!(echo.contains(present), "{present} missing:\n{echo}");
        }
        let hello = usage(&[]);
        assert!(!hello.contains("--ipv4") && hello.contains("--log"), "{hello}");
        let block = usage(&[Device::Block]);
        assert!(block.contains("--block FILE") && !block.contains("--block-size"), "{block}");
        let site = usage(&[Device::Archive(Store::new("block", "a tar image as the site", ""))]);
        assert!(site.contains("--block FILE") && site.contains("a tar image as the site"), "{site}");
    }

    #[test]
    fn stores_files_and_net_are_refused_with_what_to_do() {
        let kv = Store::new("kv", "a directory", "drop --kv to check the compiled-in store");
        let s = specs(&[Device::TcpStack, Device::Net, Device::KvRo(kv)]);
        let names: Vec<_> = s.refused.iter().map(|r| r.spec.name).collect();
        assert_eq!(names, ["net", "kv"]);
        assert_eq!(s.refused[1].instead, "drop --kv to check the compiled-in store");
        assert!(!usage(&[Device::KvRo(kv)]).contains("--kv"));
    }
}
