//! Clock hardware: KVM's pvclock page, CPUID frequency leaves, the PIT and the CMOS clock.

use core::cell::UnsafeCell;
use core::sync::atomic::{Ordering, fence};

use super::cpu::{cpuid, inb, outb, rdtsc, wrmsr};
use crate::time::{Pvclock, RtcTime, Scale, rtc_field, rtc_hour};

/// `pvclock_vcpu_time_info`, written by the hypervisor.
#[repr(C, align(64))]
struct PvclockPage {
    version: u32,
    _pad0: u32,
    tsc_timestamp: u64,
    system_time: u64,
    tsc_to_system_mul: u32,
    tsc_shift: i8,
    flags: u8,
    _pad: [u8; 2],
}

struct PvclockCell(UnsafeCell<PvclockPage>);

// SAFETY: one CPU; the hypervisor writes the page and this module only reads it with volatile
// loads under the version protocol.
unsafe impl Sync for PvclockCell {}

static PVCLOCK: PvclockCell = PvclockCell(UnsafeCell::new(PvclockPage {
    version: 0,
    _pad0: 0,
    tsc_timestamp: 0,
    system_time: 0,
    tsc_to_system_mul: 0,
    tsc_shift: 0,
    flags: 0,
    _pad: [0; 2],
}));

const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;
const KVM_FEATURE_CLOCKSOURCE2: u32 = 1 << 3;

/// The hypervisor's CPUID signature and highest hypervisor leaf, if there is one.
fn hypervisor() -> Option<([u8; 12], u32)> {
    if cpuid(1, 0)[2] & (1 << 31) == 0 {
        return None;
    }
    let [max, b, c, d] = cpuid(0x4000_0000, 0);
    let mut sig = [0u8; 12];
    sig[..4].copy_from_slice(&b.to_le_bytes());
    sig[4..8].copy_from_slice(&c.to_le_bytes());
    sig[8..].copy_from_slice(&d.to_le_bytes());
    Some((sig, max))
}

/// Turn on KVM's pvclock if this is KVM and it offers one; its first reading.
pub fn pvclock_enable() -> Option<Pvclock> {
    let (sig, _) = hypervisor()?;
    if &sig != b"KVMKVMKVM\0\0\0" || cpuid(0x4000_0001, 0)[0] & KVM_FEATURE_CLOCKSOURCE2 == 0 {
        return None;
    }
    // Identity-mapped: the static's address is its physical address. Bit 0 enables updates.
    // SAFETY: KVM advertised the MSR (checked above); the hypervisor will write
    // `pvclock_vcpu_time_info` into `PVCLOCK`, a static of exactly that layout that Rust code
    // only reads with volatile loads (`pvclock_read`).
    unsafe { wrmsr(MSR_KVM_SYSTEM_TIME_NEW, PVCLOCK.0.get() as u64 | 1) };
    let first = pvclock_read();
    (first.scale.hz() != 0).then_some(first)
}

/// A consistent copy of the pvclock page (the version is odd while the host updates it).
pub fn pvclock_read() -> Pvclock {
    let p = PVCLOCK.0.get();
    loop {
        // SAFETY: `p` points to a live static; the hypervisor may write it concurrently, which is
        // why every field is read with a volatile load and the version checked around them.
        let (v1, tsc_timestamp, system_time, mul, shift) = unsafe {
            let v1 = core::ptr::read_volatile(&raw const (*p).version);
            fence(Ordering::Acquire);
            let t = core::ptr::read_volatile(&raw const (*p).tsc_timestamp);
            let s = core::ptr::read_volatile(&raw const (*p).system_time);
            let m = core::ptr::read_volatile(&raw const (*p).tsc_to_system_mul);
            let sh = core::ptr::read_volatile(&raw const (*p).tsc_shift);
            (v1, t, s, m, sh)
        };
        fence(Ordering::Acquire);
        // SAFETY: as above.
        let v2 = unsafe { core::ptr::read_volatile(&raw const (*p).version) };
        if v1 == v2 && v1 & 1 == 0 {
            return Pvclock { tsc_timestamp, system_time, scale: Scale::from_pvclock(mul, shift) };
        }
        core::hint::spin_loop();
    }
}

/// TSC frequency from CPUID leaf 0x15 (crystal ratio), 0x16 (base MHz) or the hypervisor's
/// 0x40000010 (kHz).
pub fn tsc_hz_from_cpuid() -> Option<u64> {
    let max = cpuid(0, 0)[0];
    if max >= 0x15 {
        let [den, num, crystal, _] = cpuid(0x15, 0);
        if den != 0 && num != 0 && crystal != 0 {
            return Some(u64::from(crystal) * u64::from(num) / u64::from(den));
        }
    }
    if max >= 0x16 {
        let mhz = cpuid(0x16, 0)[0] & 0xffff;
        if mhz != 0 {
            return Some(u64::from(mhz) * 1_000_000);
        }
    }
    if let Some((_, hmax)) = hypervisor()
        && hmax >= 0x4000_0010
    {
        let khz = cpuid(0x4000_0010, 0)[0];
        if khz != 0 {
            return Some(u64::from(khz) * 1000);
        }
    }
    None
}

/// PIT input clock.
const PIT_HZ: u64 = 1_193_182;

/// Measure the TSC against PIT channel 0 over 10 ms. Channel 0 is read back through its latch
/// command, which works on `microvm` too (it has a PIT but no port 0x61 for channel 2's gate).
pub fn tsc_hz_from_pit() -> u64 {
    const WINDOW: u32 = (PIT_HZ / 100) as u32;
    fn count() -> u16 {
        // SAFETY: the PIT's command and channel 0 data ports; the PIT does no DMA.
        unsafe {
            outb(0x43, 0x00); // latch channel 0
            let lo = inb(0x40);
            let hi = inb(0x40);
            u16::from_le_bytes([lo, hi])
        }
    }
    // Channel 0, lo/hi byte, mode 2 (rate generator), binary, period 65536; its interrupt line
    // stays masked in the IOAPIC.
    // SAFETY: as in `count`.
    unsafe {
        outb(0x43, 0b0011_0100);
        outb(0x40, 0);
        outb(0x40, 0);
    }
    let mut last = count();
    let start = rdtsc();
    let mut elapsed = 0u32;
    // Bounded in case there is no PIT (the count then never moves).
    let mut spins = 0u32;
    while elapsed < WINDOW && spins < 10_000_000 {
        let c = count();
        elapsed += u32::from(last.wrapping_sub(c));
        last = c;
        spins += 1;
    }
    let ticks = rdtsc() - start;
    if elapsed == 0 {
        return 1_000_000_000; // no PIT: assume 1 GHz rather than divide by zero
    }
    ticks * PIT_HZ / u64::from(elapsed)
}

/// Read the CMOS real-time clock (UTC), waiting out an update in progress; `None` without one.
pub fn rtc_read() -> Option<RtcTime> {
    fn reg(r: u8) -> u8 {
        // SAFETY: the CMOS index and data ports; reading the clock registers has no memory
        // effects (bit 7 of the index, NMI disable, stays clear).
        unsafe {
            outb(0x70, r & 0x7f);
            inb(0x71)
        }
    }
    // An absent RTC reads as all ones (and would look forever busy).
    let b = reg(0x0b);
    if b == 0xff {
        return None;
    }
    // An update takes under 2 ms; each read is at least a microsecond (a VM exit).
    for _ in 0..2000 {
        if reg(0x0a) & 0x80 == 0 {
            break;
        }
    }
    let (binary, h24) = (b & 0x04 != 0, b & 0x02 != 0);
    let century = rtc_field(reg(0x32), binary);
    let year = rtc_field(reg(0x09), binary);
    let year = if (19..=30).contains(&century) { century * 100 + year } else { 2000 + year };
    Some(RtcTime {
        year,
        month: rtc_field(reg(0x08), binary),
        day: rtc_field(reg(0x07), binary),
        hour: rtc_hour(reg(0x04), binary, h24),
        minute: rtc_field(reg(0x02), binary),
        second: rtc_field(reg(0x00), binary),
    })
}
