//! The default TCP/IP stack on bare metal: `morgana-tcpip` over the first virtio-net interface.

use morgana_args::Args;
use morgana_target::StartError;
use morgana_tcpip::{Config, Ipv4Mode};

use crate::devices::{Devices, VirtioNet};
use crate::run::VirtioPlatform;

/// The stack [`stack`] returns: an app takes it as its `S: TcpStack` (also `UdpStack` and
/// `Resolver`).
pub type VirtioStack = morgana_tcpip::Stack;

/// Take the first virtio-net interface from `devices` and run `morgana-tcpip` on it: what
/// [`Target::tcp_stack`](morgana_target::Target::tcp_stack) gives an app here (Mirage's
/// `generic_stackv4v6`).
///
/// Configured by the shared arguments: `--ipv4 ADDR/PREFIX` with `--ipv4-gateway ADDR` for a
/// static address, `--dhcp`, `--dns-server ADDR`, and `--ipv6`/`--ipv6-gateway`. With neither
/// `--ipv4` nor `--dhcp` it asks DHCP, which is what QEMU's user networking (and most hypervisor
/// networks) answer: a guest there gets 10.0.2.15/24 via 10.0.2.2 with no argument at all. The
/// seed for sequence numbers and ports comes from the CPU's RNG; the stack's runner is spawned
/// here and drives the interface for the rest of the run.
///
/// No interface is a [`StartError::Device`] that says how to attach one.
pub fn stack(
    platform: &VirtioPlatform,
    devices: &mut Devices,
    args: &Args,
) -> Result<VirtioStack, StartError> {
    let config = tcpip_config(args)?;
    Ok(morgana_tcpip::spawn(platform, net(devices)?, config))
}

/// Take the first virtio-net interface from `devices`, for an app that runs its own stack on it
/// (as `ping` does); none is a [`StartError::Device`] that says how to attach one.
pub fn net(devices: &mut Devices) -> Result<VirtioNet, StartError> {
    devices.net().ok_or_else(|| {
        StartError::Device(
            "no virtio-net interface: start QEMU with a NIC (cargo xtask run APP --target virtio --net user, or --net tap:IF)"
                .into(),
        )
    })
}

/// The stack's configuration from its arguments ([`morgana_tcpip::ARGS`]), as [`stack`] reads
/// it: DHCP unless `--ipv4` or `--dhcp` says otherwise.
pub fn tcpip_config(args: &Args) -> Result<Config, StartError> {
    let mut config = Config::from_args(args)?;
    if config.ipv4 == Ipv4Mode::None {
        log::debug!("no --ipv4: asking DHCP for an address");
        config = config.dhcp();
    }
    Ok(config)
}
