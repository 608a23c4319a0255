//! The devices found at boot: virtio-mmio windows from the command line, virtio-pci on bus 0.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use virtio_drivers::transport::DeviceType;

use crate::block::VirtioBlock;
use crate::cmdline::MmioDevice;
use crate::irq::Irqs;
use crate::net::VirtioNet;
use crate::sys::virtio::{self, BlkQueue, NetQueues};

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
        found.extend(virtio::probe_pci(&mut errors));
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
                DeviceType::Network => match NetQueues::new(f.transport) {
                    Ok(q) => out.nets.push_back(VirtioNet::new(q, line)),
                    Err(e) => errors.push(format!("{location}: virtio-net: {e}")),
                },
                _ => match BlkQueue::new(f.transport) {
                    Ok(q) => out.blocks.push_back(VirtioBlock::new(q, line)),
                    Err(e) => errors.push(format!("{location}: virtio-blk: {e}")),
                },
            }
            log::debug!("{location}: {kind:?} on interrupt line {}", f.gsi);
        }
        (out, errors)
    }
}
