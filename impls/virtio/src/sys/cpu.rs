//! Single instructions: port I/O, MSRs, CPUID, the TSC, RDRAND/RDSEED, interrupts on and off.

use core::arch::asm;

/// Write a byte to an I/O port.
///
/// # Safety
///
/// The port must belong to a device this kernel drives (serial, PIT, CMOS, isa-debug-exit, PCI
/// configuration), and the write must not make a device touch memory that Rust code owns (a
/// PCI configuration write can move a BAR or enable DMA: only the PCI code does those).
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the instruction itself touches no memory; what the device does is the caller's
    // contract above.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) }
}

/// Write `bytes` to an I/O port, one after the other, with one `rep outsb` (under a hypervisor:
/// one exit for all of them).
///
/// # Safety
///
/// As for [`outb`].
pub unsafe fn outsb(port: u16, bytes: &[u8]) {
    // SAFETY: `rep outsb` reads `rcx` bytes from `rsi` upward (the direction flag is clear, as
    // the ABI guarantees): exactly the slice. The device's side is the caller's contract.
    unsafe {
        asm!("rep outsb", in("dx") port, inout("rsi") bytes.as_ptr() => _, inout("rcx") bytes.len() => _,
             options(readonly, nostack, preserves_flags))
    }
}

/// Read a byte from an I/O port.
///
/// # Safety
///
/// As for [`outb`] (a read can have side effects on the device too).
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags)) }
    value
}

/// Write a 32-bit word to an I/O port.
///
/// # Safety
///
/// As for [`outb`].
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags)) }
}

/// Read a 32-bit word from an I/O port.
///
/// # Safety
///
/// As for [`outb`].
pub unsafe fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: as for `outb`.
    unsafe { asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack, preserves_flags)) }
    value
}

/// Read a model-specific register. Safe: a read has no memory effects, and an MSR the CPU does
/// not have raises a general-protection fault, which the exception handler reports.
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reading an MSR writes only the two output registers (or faults, see above).
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    u64::from(hi) << 32 | u64::from(lo)
}

/// Write a model-specific register.
///
/// # Safety
///
/// The MSR must be one CPUID (or the hypervisor's signature) advertised, and the value's effects
/// on memory are the caller's to account for: the pvclock MSR makes the hypervisor write into
/// the physical address given, the APIC base MSR moves the local APIC's registers.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: per the contract above.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    }
}

/// CPUID leaf `leaf`, sub-leaf `sub`: `[eax, ebx, ecx, edx]`.
pub fn cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    let (eax, ebx, ecx, edx): (u32, u32, u32, u32);
    // SAFETY: CPUID is available on every x86_64 CPU and only reads; rbx is reserved by LLVM, so
    // it is saved in a scratch register around the instruction.
    unsafe {
        asm!("mov {tmp:r}, rbx", "cpuid", "xchg {tmp:r}, rbx", tmp = out(reg) ebx,
             inout("eax") leaf => eax, inout("ecx") sub => ecx, out("edx") edx,
             options(nomem, nostack, preserves_flags))
    }
    [eax, ebx, ecx, edx]
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the counter (CR4.TSD is clear: user and kernel may read it).
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    u64::from(hi) << 32 | u64::from(lo)
}

/// One RDRAND draw, `None` if the hardware had no entropy ready. Callers check CPUID first (on
/// a CPU without it the instruction is an invalid-opcode fault, which is reported).
pub fn rdrand64() -> Option<u64> {
    let (value, ok): (u64, u8);
    // SAFETY: the instruction only writes registers (or faults, see above).
    unsafe {
        asm!("rdrand {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack))
    }
    (ok != 0).then_some(value)
}

/// One RDSEED draw, `None` if none was ready. Callers check CPUID first, as for [`rdrand64`].
pub fn rdseed64() -> Option<u64> {
    let (value, ok): (u64, u8);
    // SAFETY: the instruction only writes registers (or faults, see `rdrand64`).
    unsafe {
        asm!("rdseed {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack))
    }
    (ok != 0).then_some(value)
}

/// Run `f` with interrupts masked, then restore the interrupt flag as it was (so it nests, and
/// is harmless in an interrupt handler, where they are masked already).
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let flags: u64;
    // SAFETY: reads RFLAGS through the stack (push, pop), then masks interrupts, which never
    // breaks memory safety.
    unsafe { asm!("pushfq", "pop {}", "cli", out(reg) flags, options(nomem)) }
    let r = f();
    if flags & (1 << 9) != 0 {
        sti();
    }
    r
}

/// Mask interrupts.
pub fn cli() {
    // SAFETY: masking interrupts never breaks memory safety; the park path unmasks them.
    unsafe { asm!("cli", options(nomem, nostack)) }
}

/// Unmask interrupts.
pub fn sti() {
    // SAFETY: the IDT is loaded before the first `sti`, so every vector has a handler.
    unsafe { asm!("sti", options(nomem, nostack)) }
}

/// Unmask interrupts and halt until one arrives. `sti` delays interrupts by one instruction,
/// so an interrupt that became pending after the caller's last check wakes the `hlt` instead of
/// being taken before it and sleeping through.
pub fn sti_hlt() {
    // SAFETY: as for `sti`; `hlt` waits for an interrupt.
    unsafe { asm!("sti", "hlt", options(nomem, nostack)) }
}

/// Stop this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: with interrupts masked `hlt` never returns except for an NMI, after which we
        // halt again.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// An address the page tables leave unmapped (above the identity-mapped 4 GiB).
pub const UNMAPPED: u64 = 0x10_0000_0000;

/// Read [`UNMAPPED`]: a page fault (vector 14) that the exception handler reports. For tests of
/// the exception path (`int3` is not usable: nested KVM fails to emulate it).
pub fn read_unmapped() {
    // SAFETY: the address is not mapped, so the load faults before touching memory, and the
    // page-fault handler never returns.
    unsafe {
        asm!("mov {tmp}, qword ptr [{addr}]", addr = in(reg) UNMAPPED, tmp = out(reg) _, options(nostack, readonly))
    }
}
