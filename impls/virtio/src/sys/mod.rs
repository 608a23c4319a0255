//! Everything that needs `unsafe`: instructions, physical memory, the IDT, interrupt
//! controllers, the allocator and the virtio glue. The rest of the crate is safe code over the
//! small API these modules export.

pub mod apic;
pub mod backtrace;
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
/// # Safety
///
/// `addr` must be a 4-byte-aligned register of a device window (the LAPIC, an IOAPIC), where no
/// Rust object lives; reading it must have no effect on memory Rust code owns. An address not
/// mapped yet faults, and the fault is reported.
unsafe fn mmio_read(addr: u64) -> u32 {
    // SAFETY: per the contract above.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Write a 32-bit MMIO register at physical address `addr`.
///
/// # Safety
///
/// As for [`mmio_read`], for a write.
unsafe fn mmio_write(addr: u64, value: u32) {
    // SAFETY: per the contract of `mmio_read`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// Exit QEMU through the isa-debug-exit device at port 0xf4: QEMU's status becomes
/// `(status << 1) | 1`. Without that device (another hypervisor), the CPU halts.
pub fn exit(status: u8) -> ! {
    serial::flush();
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit, which stops the machine (or nothing answers
    // there): no memory effects.
    unsafe { cpu::outl(0xf4, u32::from(status)) };
    cpu::halt_forever()
}
