//! The devices found at boot: virtio-mmio windows from the command line, virtio-pci on bus 0.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::{
    BarInfo, Command, ConfigurationAccess, DeviceFunction, MemoryBarType, PciRoot,
};
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};

use crate::cmdline::MmioDevice;
use crate::irq::{IrqLine, Irqs};
use crate::pci::{BAR_WINDOW, BarAllocator, q35_gsi};
use crate::sys::virtio::{self, AnyTransport, Found, KernelHal, PortCam};

/// A virtio-net interface on this kernel ([`morgana::Net`]).
pub type VirtioNet = morgana_virtio_drivers::VirtioNet<KernelHal, AnyTransport, IrqLine>;
/// A frame received by a [`VirtioNet`].
pub type VirtioRx<'a> = morgana_virtio_drivers::VirtioRx<'a, KernelHal, AnyTransport>;
/// Room to send a frame on a [`VirtioNet`].
pub type VirtioTx<'a> = morgana_virtio_drivers::VirtioTx<'a, KernelHal, AnyTransport>;
/// A virtio-blk disk on this kernel ([`morgana::Block`]).
pub type VirtioBlock = morgana_virtio_drivers::VirtioBlock<KernelHal, AnyTransport, IrqLine>;

/// Network interfaces and disks, in discovery order (command line first, then PCI slots).
#[derive(Default)]
pub struct Devices {
    nets: VecDeque<VirtioNet>,
    blocks: VecDeque<VirtioBlock>,
}

impl Devices {
    /// Take the next network interface.
    pub fn net(&mut self) -> Option<VirtioNet> {
        self.nets.pop_front()
    }

    /// Take the next disk.
    pub fn block(&mut self) -> Option<VirtioBlock> {
        self.blocks.pop_front()
    }

    /// Network interfaces not taken yet.
    pub fn nets(&self) -> usize {
        self.nets.len()
    }

    /// Disks not taken yet.
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Open every virtio-net and virtio-blk device; problems with single devices are returned as
    /// messages (the others still work).
    pub(crate) fn discover(mmio: &[MmioDevice], irqs: &Irqs) -> (Self, Vec<String>) {
        let mut errors = Vec::new();
        let mut found = Vec::new();
        let mut seen: Vec<u64> = Vec::new();
        for dev in mmio {
            if seen.contains(&dev.base) {
                continue;
            }
            seen.push(dev.base);
            match virtio::probe_mmio(dev) {
                Ok(Some(f)) => found.push(f),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        found.extend(probe_pci(&mut errors));
        let mut out = Self::default();
        for f in found {
            let kind = f.device_type();
            if !matches!(kind, DeviceType::Network | DeviceType::Block) {
                continue;
            }
            let line = match irqs.line(f.gsi) {
                Ok(l) => l,
                Err(e) => {
                    errors.push(format!("{}: {e}", f.location));
                    continue;
                }
            };
            let location = f.location;
            match kind {
                DeviceType::Network => match VirtioNet::new(f.transport, line) {
                    Ok(n) => {
                        let o = n.offloads();
                        log::debug!(
                            "{location}: virtio-net offloads: checksum {}, TSO {}, receive super-frames {}",
                            yes(o.checksum),
                            yes(o.tso),
                            yes(o.rx_super_frames)
                        );
                        out.nets.push_back(n)
                    }
                    Err(virtio_drivers::Error::Unsupported) => errors.push(format!(
                        "{location}: virtio-net: the device has no MAC address (VIRTIO_NET_F_MAC)"
                    )),
                    Err(e) => errors.push(format!("{location}: virtio-net: {e}")),
                },
                _ => match VirtioBlock::new(f.transport, line) {
                    Ok(b) => {
                        if let Some(note) = b.missing() {
                            errors.push(format!("{location}: virtio-blk {note}"));
                        }
                        out.blocks.push_back(b)
                    }
                    Err(e) => errors.push(format!("{location}: virtio-blk: {e}")),
                },
            }
            log::debug!("{location}: {kind:?} on interrupt line {}", f.gsi);
        }
        (out, errors)
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Every virtio-pci device on bus 0, with memory BARs assigned (the firmware may leave them at 0)
/// and bus mastering on. Messages for devices that could not be opened go to `errors`.
fn probe_pci(errors: &mut Vec<String>) -> Vec<Found> {
    if !PortCam::present() {
        return Vec::new();
    }
    let mut root = PciRoot::new(PortCam);
    let all: Vec<_> = root.enumerate_bus(0).collect();
    // Keep clear of every BAR the firmware placed in the window.
    let mut alloc = BarAllocator::new(BAR_WINDOW.0, BAR_WINDOW.1);
    for (df, _) in &all {
        for bar in root.bars(*df).into_iter().flatten().flatten() {
            if let BarInfo::Memory { address, size, .. } = bar
                && address != 0
            {
                alloc.reserve(address, address.saturating_add(size));
            }
        }
    }
    let mut found = Vec::new();
    for (df, info) in all {
        if virtio_device_type(&info).is_none() {
            continue;
        }
        let location = format!("pci {df}");
        if let Err(e) = assign_bars(&mut root, df, &mut alloc) {
            errors.push(format!("{location}: {e}"));
            continue;
        }
        for bar in root.bars(df).into_iter().flatten().flatten() {
            if let BarInfo::Memory { address, size, .. } = bar
                && !virtio::map_window(address, size)
            {
                log::warn!("{location}: BAR at {address:#x} ({size} bytes) is outside the device area");
            }
        }
        root.set_command(df, Command::MEMORY_SPACE | Command::BUS_MASTER);
        let pin = (PortCam.read_word(df, 0x3c) >> 8) as u8;
        let Some(gsi) = q35_gsi(df.device, pin) else {
            errors.push(format!("{location}: no interrupt pin"));
            continue;
        };
        match PciTransport::new::<KernelHal, _>(&mut root, df) {
            Ok(t) => found.push(Found { transport: t.into(), gsi, location }),
            Err(e) => errors.push(format!("{location}: {e}")),
        }
    }
    found
}

/// Give every memory BAR that is unassigned (or above the identity-mapped 4 GiB) an address.
fn assign_bars(
    root: &mut PciRoot<PortCam>,
    df: DeviceFunction,
    alloc: &mut BarAllocator,
) -> Result<(), String> {
    let bars = root.bars(df).map_err(|e| format!("reading BARs: {e}"))?;
    for (index, bar) in bars.iter().enumerate() {
        let Some(BarInfo::Memory { address_type, address, size, .. }) = bar else { continue };
        if *address != 0 && address.saturating_add(*size) <= 1 << 32 {
            continue;
        }
        let at = alloc.alloc(*size).ok_or_else(|| format!("no room for a {size}-byte BAR"))?;
        match address_type {
            MemoryBarType::Width64 => root.set_bar_64(df, index as u8, at),
            _ => root.set_bar_32(df, index as u8, at as u32),
        }
        log::debug!("pci {df}: BAR{index} ({size} bytes) placed at {at:#x}");
    }
    Ok(())
}
