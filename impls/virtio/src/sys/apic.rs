//! Local APIC (timer, end of interrupt) and IOAPIC (device lines), in xAPIC mode.
//!
//! Interrupt handlers only record what fired, in atomics, and mask the line; the park path reads
//! them with interrupts off ([`take_pending`]) and wakes the tasks. The IOAPIC's index/data
//! registers are only touched with interrupts masked (`without_interrupts`), so a handler's
//! mask never falls between the park path's index and data writes.
//!
//! The registers are reached through [`lapic_read`]/[`lapic_write`] and the IOAPIC pair, whose
//! addresses are fixed here: a register of the LAPIC's or an IOAPIC's window, where no Rust
//! object lives. Before [`init`] maps the windows an access faults, and the fault is reported.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::cpu::{cpuid, rdmsr, without_interrupts, wrmsr};
use super::paging::map;
use super::{mmio_read, mmio_write};

/// Vector of GSI 0; GSI `g` interrupts on `IRQ_BASE + g`.
pub const IRQ_BASE: u8 = 32;
/// GSIs with a vector (two IOAPICs of 24 pins, as on microvm with `ioapic2`).
pub const GSIS: u8 = 48;
/// The local timer's vector.
pub const TIMER_VECTOR: u8 = IRQ_BASE + GSIS;
/// The spurious-interrupt vector (no EOI).
pub const SPURIOUS_VECTOR: u8 = 0xff;

const LAPIC_DEFAULT: u64 = 0xfee0_0000;
const IA32_APIC_BASE: u32 = 0x1b;
const IA32_TSC_DEADLINE: u32 = 0x6e0;
const LAPIC_ID: u64 = 0x20;
const LAPIC_EOI: u64 = 0xb0;
const LAPIC_SVR: u64 = 0xf0;
const LAPIC_LVT_TIMER: u64 = 0x320;
const LAPIC_TIMER_INIT: u64 = 0x380;
const LAPIC_TIMER_CURRENT: u64 = 0x390;
const LAPIC_TIMER_DIVIDE: u64 = 0x3e0;

/// IOAPICs: (base, first GSI). The second exists on microvm with `ioapic2=on`.
const IOAPICS: [(u64, u32); 2] = [(0xfec0_0000, 0), (0xfec1_0000, 24)];

static LAPIC_BASE: AtomicU64 = AtomicU64::new(LAPIC_DEFAULT);
static TSC_DEADLINE: AtomicBool = AtomicBool::new(false);
static APIC_ID: AtomicU32 = AtomicU32::new(0);
/// Bit `g`: GSI `g` fired and is masked until the park path hands it to its device.
static PENDING: AtomicU64 = AtomicU64::new(0);
/// The local timer fired since the last park.
static TIMER_FIRED: AtomicBool = AtomicBool::new(false);

fn lapic(reg: u64) -> u64 {
    LAPIC_BASE.load(Ordering::Relaxed) + reg
}

/// Read local APIC register `reg` (an offset from the table above).
fn lapic_read(reg: u64) -> u32 {
    // SAFETY: a register of the LAPIC's window (see the module documentation); reads of these
    // registers have no effect on memory.
    unsafe { mmio_read(lapic(reg)) }
}

/// Write local APIC register `reg`.
fn lapic_write(reg: u64, value: u32) {
    // SAFETY: a register of the LAPIC's window (see the module documentation); the LAPIC does
    // no DMA, so a write only changes timer and interrupt delivery.
    unsafe { mmio_write(lapic(reg), value) }
}

/// Enable the local APIC and map the IOAPICs; returns whether the TSC-deadline timer is
/// available.
pub fn init() -> bool {
    let msr = rdmsr(IA32_APIC_BASE);
    let window = msr & 0xf_ffff_f000;
    LAPIC_BASE.store(window, Ordering::Relaxed);
    // SAFETY: boot, task context; the LAPIC's and IOAPICs' register windows, device memory
    // where no RAM lives, mapped uncached.
    unsafe {
        map(window, 0x1000, true);
        for (ioapic, _) in IOAPICS {
            map(ioapic, 0x20, true);
        }
    }
    if msr & (1 << 11) == 0 {
        // SAFETY: the APIC base MSR exists on every x86_64 CPU; setting the global enable bit
        // keeps the window where it is (the base bits are written back unchanged).
        unsafe { wrmsr(IA32_APIC_BASE, msr | (1 << 11)) };
    }
    lapic_write(LAPIC_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    APIC_ID.store(lapic_read(LAPIC_ID) >> 24, Ordering::Relaxed);
    let deadline = cpuid(1, 0)[2] & (1 << 24) != 0;
    TSC_DEADLINE.store(deadline, Ordering::Relaxed);
    let mode = if deadline { 0b10 << 17 } else { 0 };
    lapic_write(LAPIC_LVT_TIMER, mode | u32::from(TIMER_VECTOR));
    if !deadline {
        lapic_write(LAPIC_TIMER_DIVIDE, 0b1011); // divide by 1
    }
    deadline
}

/// Write the TSC-deadline MSR (0 disarms), only if CPUID advertised the mode.
fn write_deadline(tsc: u64) {
    if TSC_DEADLINE.load(Ordering::Relaxed) {
        // SAFETY: CPUID advertised TSC-deadline mode (`init`); the MSR only arms the timer.
        unsafe { wrmsr(IA32_TSC_DEADLINE, tsc) };
    }
}

/// Arm the TSC-deadline timer for TSC value `tsc`.
pub fn arm_deadline(tsc: u64) {
    write_deadline(tsc.max(1));
}

/// Arm the one-shot timer for `ticks` of the APIC timer clock.
pub fn arm_oneshot(ticks: u64) {
    let ticks = u32::try_from(ticks).unwrap_or(u32::MAX).max(1);
    lapic_write(LAPIC_TIMER_INIT, ticks);
}

/// Start the one-shot timer from its maximum count (for calibration).
pub fn oneshot_start_max() {
    lapic_write(LAPIC_TIMER_INIT, u32::MAX);
}

/// Ticks left on the one-shot timer.
pub fn oneshot_remaining() -> u32 {
    lapic_read(LAPIC_TIMER_CURRENT)
}

/// Stop the timer, whichever mode it is in.
pub fn disarm() {
    if TSC_DEADLINE.load(Ordering::Relaxed) {
        write_deadline(0);
    } else {
        lapic_write(LAPIC_TIMER_INIT, 0);
    }
}

/// The IOAPIC serving `gsi` (one of [`IOAPICS`]) and its pin there.
fn ioapic_for(gsi: u32) -> Option<(usize, u32)> {
    IOAPICS.iter().rposition(|(_, first)| gsi >= *first).map(|i| (i, gsi - IOAPICS[i].1))
}

/// Write register `reg` of IOAPIC `which` (index, then data), with interrupts masked so that
/// a handler's access cannot fall between the two.
fn ioapic_write(which: usize, reg: u32, value: u32) {
    let base = IOAPICS[which].0;
    // SAFETY: the index and data registers of an IOAPIC's window (see the module
    // documentation); the IOAPIC does no DMA.
    without_interrupts(|| unsafe {
        mmio_write(base, reg);
        mmio_write(base + 0x10, value);
    })
}

/// Read register `reg` of IOAPIC `which` (see [`ioapic_write`]).
fn ioapic_read(which: usize, reg: u32) -> u32 {
    let base = IOAPICS[which].0;
    // SAFETY: as for `ioapic_write`; reads have no memory effects.
    without_interrupts(|| unsafe {
        mmio_write(base, reg);
        mmio_read(base + 0x10)
    })
}

/// Route `gsi` (level-triggered, active high: how QEMU drives virtio lines) to its vector on this
/// CPU, unmasked.
pub fn route(gsi: u32) -> bool {
    let Some((io, pin)) = ioapic_for(gsi).filter(|_| gsi < u32::from(GSIS)) else { return false };
    let pins = (ioapic_read(io, 1) >> 16 & 0xff) + 1;
    if pin >= pins {
        return false;
    }
    let vector = u32::from(IRQ_BASE) + gsi;
    super::idt::enable_irq(vector as u8);
    without_interrupts(|| {
        ioapic_write(io, 0x11 + 2 * pin, APIC_ID.load(Ordering::Relaxed) << 24);
        ioapic_write(io, 0x10 + 2 * pin, vector | 1 << 15);
    });
    true
}

fn set_masked(gsi: u32, masked: bool) {
    if let Some((io, pin)) = ioapic_for(gsi) {
        without_interrupts(|| {
            let low = ioapic_read(io, 0x10 + 2 * pin);
            let low = if masked { low | 1 << 16 } else { low & !(1 << 16) };
            ioapic_write(io, 0x10 + 2 * pin, low);
        })
    }
}

/// Let `gsi` interrupt again once its device has been acknowledged.
pub fn unmask(gsi: u32) {
    set_masked(gsi, false);
}

/// GSIs that fired since the last call (bit `g` for GSI `g`), and whether the timer did.
/// Call with interrupts off.
pub fn take_pending() -> (u64, bool) {
    (PENDING.swap(0, Ordering::AcqRel), TIMER_FIRED.swap(false, Ordering::AcqRel))
}

/// Whether anything fired that the park path has not taken yet.
pub fn any_pending() -> bool {
    PENDING.load(Ordering::Acquire) != 0 || TIMER_FIRED.load(Ordering::Acquire)
}

/// Called from the interrupt stubs with the vector: record, mask a device line, acknowledge.
pub extern "C" fn on_interrupt(vector: u64) {
    let vector = vector as u8;
    if vector == TIMER_VECTOR {
        TIMER_FIRED.store(true, Ordering::Release);
    } else if let Some(gsi) = vector.checked_sub(IRQ_BASE).filter(|g| *g < GSIS) {
        // Level-triggered: the line stays up until the device is acknowledged in task context.
        set_masked(u32::from(gsi), true);
        PENDING.fetch_or(1 << gsi, Ordering::AcqRel);
    }
    lapic_write(LAPIC_EOI, 0);
}
