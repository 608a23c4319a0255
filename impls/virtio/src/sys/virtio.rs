//! virtio-drivers glue: the DMA HAL and transport discovery (virtio-mmio from the command line,
//! virtio-pci through ports 0xcf8/0xcfc). The drivers themselves are `morgana-virtio-drivers`,
//! generic over the HAL and transport found here.

use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::format;
use alloc::string::String;
use core::ptr::NonNull;

use virtio_drivers::transport::mmio::{MmioError, MmioTransport, VirtIOHeader};
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
use virtio_drivers::transport::{DeviceType, SomeTransport, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

use super::cpu::{inl, outl, without_interrupts};
use crate::cmdline::MmioDevice;

/// DMA through the identity map: a heap allocation's address is its physical address.
pub struct KernelHal;

fn dma_layout(pages: usize) -> Option<Layout> {
    Layout::from_size_align(pages.checked_mul(PAGE_SIZE)?, PAGE_SIZE).ok()
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned, exclusively owned heap memory whose virtual
// and physical addresses are equal (identity map); `share` returns a buffer's own address for the
// same reason; MMIO addresses are mapped one to one.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Some(layout) = dma_layout(pages).filter(|l| l.size() > 0) else {
            return (0, NonNull::dangling());
        };
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        match NonNull::new(ptr) {
            Some(p) => (p.as_ptr() as PhysAddr, p),
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        match dma_layout(pages) {
            // SAFETY: the caller passes back what `dma_alloc` returned for `pages`.
            Some(layout) => unsafe { dealloc(vaddr.as_ptr(), layout) },
            None => return -1,
        }
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// The transports this kernel drives.
pub type AnyTransport = SomeTransport<'static>;

/// A virtio device found at boot.
pub struct Found {
    /// Its transport, ready for a driver.
    pub transport: AnyTransport,
    /// The GSI it interrupts on.
    pub gsi: u32,
    /// Where it is, for messages (`mmio@0xfeb00e00`, `pci 00:02.0`).
    pub location: String,
}

impl Found {
    /// What kind of device it is.
    pub fn device_type(&self) -> DeviceType {
        self.transport.device_type()
    }
}

/// The lowest address a virtio-mmio window may have: the top gigabyte below 4 GiB, where
/// hypervisors put device windows and no RAM lives.
const MMIO_FLOOR: u64 = 0xc000_0000;

/// Open the virtio-mmio device a command-line word announced; `None` for an empty slot.
/// `Err` for a window outside the device area.
pub fn probe_mmio(dev: &MmioDevice) -> Result<Option<Found>, String> {
    let end = dev.base.saturating_add(dev.size);
    if dev.base < MMIO_FLOOR || end > 1 << 32 || dev.size < 0x100 || !dev.base.is_multiple_of(4) {
        return Err(format!(
            "virtio_mmio.device={}@{:#x}:{}: the window must lie between {MMIO_FLOOR:#x} and 4 GiB",
            dev.size, dev.base, dev.irq
        ));
    }
    let Some(header) = NonNull::new(dev.base as *mut VirtIOHeader) else { return Ok(None) };
    map_window(dev.base, dev.size);
    // SAFETY: the hypervisor announced a virtio-mmio window here; it lies in the identity-mapped,
    // uncached device area (checked above) where no Rust object lives, and `crate::devices`
    // probes each announced window once, so this transport is its only user.
    match unsafe { MmioTransport::new(header, dev.size as usize) } {
        Ok(t) => {
            Ok(Some(Found { transport: t.into(), gsi: dev.irq, location: format!("mmio@{:#x}", dev.base) }))
        }
        // An empty slot has device ID 0.
        Err(MmioError::InvalidDeviceID(_)) => Ok(None),
        Err(e) => Err(format!("virtio-mmio window at {:#x}: {e}", dev.base)),
    }
}

/// Map a device window `[start, start + len)` uncached; `false` (nothing mapped) if it reaches
/// above 4 GiB or into RAM the kernel uses (the image, the heap).
pub fn map_window(start: u64, len: u64) -> bool {
    let end = start.saturating_add(len);
    if end > 1 << 32 || start < super::pvh::kernel_end() || super::heap::overlaps(start, end) {
        return false;
    }
    // SAFETY: task context (device discovery); a window a device decodes, outside the image
    // and the heap (checked), mapped uncached.
    unsafe { super::paging::map(start, len, true) }
}

/// PCI configuration space through the legacy I/O ports 0xcf8/0xcfc.
pub struct PortCam;

fn config_address(df: DeviceFunction, offset: u8) -> u32 {
    0x8000_0000
        | u32::from(df.bus) << 16
        | u32::from(df.device) << 11
        | u32::from(df.function) << 8
        | u32::from(offset & 0xfc)
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        // SAFETY: the PCI configuration ports; a read has no memory effects. Interrupts are
        // masked so that the address and data accesses stay a pair.
        without_interrupts(|| unsafe {
            outl(0xcf8, config_address(df, offset));
            inl(0xcfc)
        })
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        // SAFETY: the PCI configuration ports. A write can move a BAR or turn on bus mastering:
        // only `crate::devices` writes, and it places BARs in the device window (`BAR_WINDOW`,
        // no RAM there) and enables DMA only for virtio devices, whose buffers the drivers own.
        without_interrupts(|| unsafe {
            outl(0xcf8, config_address(df, offset));
            outl(0xcfc, data);
        })
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}

impl PortCam {
    /// Whether a host bridge answers on the configuration ports (none on microvm).
    pub fn present() -> bool {
        let id = PortCam.read_word(DeviceFunction { bus: 0, device: 0, function: 0 }, 0);
        id != 0xffff_ffff && id != 0
    }
}
