//! Everything that needs `unsafe`: instructions, physical memory, the IDT, interrupt
//! controllers, the allocator and the virtio glue. The rest of the crate is safe code over the
//! small API these modules export.

pub mod apic;
pub mod boot;
pub mod clock;
pub mod cpu;
#[cfg(feature = "getrandom")]
mod entropy;
pub mod heap;
pub mod idt;
pub mod paging;
pub mod pvh;
pub mod serial;
pub mod virtio;

/// Read a 32-bit MMIO register at physical address `addr`.
///
/// Only for the fixed platform devices (LAPIC, IOAPIC), mapped uncached by `apic::init`.
fn mmio_read(addr: u64) -> u32 {
    // SAFETY: callers pass the LAPIC/IOAPIC register addresses, which are identity-mapped device
    // registers with no Rust object living there.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Write a 32-bit MMIO register at physical address `addr` (see [`mmio_read`]).
fn mmio_write(addr: u64, value: u32) {
    // SAFETY: as for `mmio_read`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// Exit QEMU through the isa-debug-exit device at port 0xf4: QEMU's status becomes
/// `(status << 1) | 1`. Without that device (another hypervisor), the CPU halts.
pub fn exit(status: u8) -> ! {
    serial::flush();
    cpu::outl(0xf4, u32::from(status));
    cpu::halt_forever()
}
