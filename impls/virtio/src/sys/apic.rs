//! Local APIC (timer, end of interrupt) and IOAPIC (device lines), in xAPIC mode.
//!
//! Interrupt handlers only record what fired, in atomics, and mask the line; the park path reads
//! them with interrupts off ([`take_pending`]) and wakes the tasks. The IOAPIC's index/data
//! registers are touched by the handler (mask) and by the park path (unmask) only with interrupts
//! off, so the two never interleave.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::cpu::{cpuid, rdmsr, wrmsr};
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

/// Enable the local APIC; returns whether the TSC-deadline timer is available.
pub fn init() -> bool {
    let base = rdmsr(IA32_APIC_BASE);
    LAPIC_BASE.store(base & 0xf_ffff_f000, Ordering::Relaxed);
    map(base & 0xf_ffff_f000, 0x1000, true);
    for (ioapic, _) in IOAPICS {
        map(ioapic, 0x20, true);
    }
    if base & (1 << 11) == 0 {
        wrmsr(IA32_APIC_BASE, base | (1 << 11));
    }
    mmio_write(lapic(LAPIC_SVR), 0x100 | u32::from(SPURIOUS_VECTOR));
    APIC_ID.store(mmio_read(lapic(LAPIC_ID)) >> 24, Ordering::Relaxed);
    let deadline = cpuid(1, 0)[2] & (1 << 24) != 0;
    TSC_DEADLINE.store(deadline, Ordering::Relaxed);
    let mode = if deadline { 0b10 << 17 } else { 0 };
    mmio_write(lapic(LAPIC_LVT_TIMER), mode | u32::from(TIMER_VECTOR));
    if !deadline {
        mmio_write(lapic(LAPIC_TIMER_DIVIDE), 0b1011); // divide by 1
    }
    deadline
}

/// Arm the TSC-deadline timer for TSC value `tsc`.
pub fn arm_deadline(tsc: u64) {
    wrmsr(IA32_TSC_DEADLINE, tsc.max(1));
}

/// Arm the one-shot timer for `ticks` of the APIC timer clock.
pub fn arm_oneshot(ticks: u64) {
    let ticks = u32::try_from(ticks).unwrap_or(u32::MAX).max(1);
    mmio_write(lapic(LAPIC_TIMER_INIT), ticks);
}

/// Start the one-shot timer from its maximum count (for calibration).
pub fn oneshot_start_max() {
    mmio_write(lapic(LAPIC_TIMER_INIT), u32::MAX);
}

/// Ticks left on the one-shot timer.
pub fn oneshot_remaining() -> u32 {
    mmio_read(lapic(LAPIC_TIMER_CURRENT))
}

/// Stop the timer, whichever mode it is in.
pub fn disarm() {
    if TSC_DEADLINE.load(Ordering::Relaxed) {
        wrmsr(IA32_TSC_DEADLINE, 0);
    } else {
        mmio_write(lapic(LAPIC_TIMER_INIT), 0);
    }
}

fn ioapic_for(gsi: u32) -> Option<(u64, u32)> {
    IOAPICS.iter().rev().find(|(_, first)| gsi >= *first).map(|&(base, first)| (base, gsi - first))
}

fn ioapic_write(base: u64, reg: u32, value: u32) {
    mmio_write(base, reg);
    mmio_write(base + 0x10, value);
}

fn ioapic_read(base: u64, reg: u32) -> u32 {
    mmio_write(base, reg);
    mmio_read(base + 0x10)
}

/// Route `gsi` (level-triggered, active high: how QEMU drives virtio lines) to its vector on this
/// CPU, unmasked. Call with interrupts off.
pub fn route(gsi: u32) -> bool {
    let Some((base, pin)) = ioapic_for(gsi).filter(|_| gsi < u32::from(GSIS)) else { return false };
    let pins = (ioapic_read(base, 1) >> 16 & 0xff) + 1;
    if pin >= pins {
        return false;
    }
    let vector = u32::from(IRQ_BASE) + gsi;
    super::idt::enable_irq(vector as u8);
    ioapic_write(base, 0x11 + 2 * pin, APIC_ID.load(Ordering::Relaxed) << 24);
    ioapic_write(base, 0x10 + 2 * pin, vector | 1 << 15);
    true
}

fn set_masked(gsi: u32, masked: bool) {
    if let Some((base, pin)) = ioapic_for(gsi) {
        let low = ioapic_read(base, 0x10 + 2 * pin);
        let low = if masked { low | 1 << 16 } else { low & !(1 << 16) };
        ioapic_write(base, 0x10 + 2 * pin, low);
    }
}

/// Let `gsi` interrupt again once its device has been acknowledged. Call with interrupts off.
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
    mmio_write(lapic(LAPIC_EOI), 0);
}
