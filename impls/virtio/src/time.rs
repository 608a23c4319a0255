//! Time: the TSC scaled to nanoseconds, KVM's pvclock, and the CMOS real-time clock.
//!
//! The monotonic clock counts from the kernel's first instruction, so the app's start time is the
//! guest's own boot time. Under KVM the pvclock page gives the scale (and keeps it right if the
//! host changes it); otherwise the TSC frequency comes from CPUID or a PIT calibration. Wall time
//! is read once from the CMOS clock, on first use.

use core::time::Duration;

/// Ticks-to-nanoseconds scale: `ns = ticks * mul >> 32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    mul: u64,
}

impl Scale {
    /// The scale of a counter running at `hz` (at least 1 kHz).
    pub const fn from_hz(hz: u64) -> Self {
        let hz = if hz < 1000 { 1000 } else { hz };
        Self { mul: ((1_000_000_000u128 << 32) / hz as u128) as u64 }
    }

    /// pvclock's `tsc_to_system_mul` and `tsc_shift`: `ns = (ticks << shift) * mul >> 32`.
    pub const fn from_pvclock(mul: u32, shift: i8) -> Self {
        let mul = mul as u64;
        let mul = if shift >= 0 { mul << shift as u32 } else { mul >> (-(shift as i32)) as u32 };
        Self { mul }
    }

    /// Nanoseconds in `ticks`.
    pub const fn ns(self, ticks: u64) -> u64 {
        let ns = (ticks as u128 * self.mul as u128) >> 32;
        if ns > u64::MAX as u128 { u64::MAX } else { ns as u64 }
    }

    /// Ticks in `ns` nanoseconds (rounded up, so a deadline is never early).
    pub const fn ticks(self, ns: u64) -> u64 {
        if self.mul == 0 {
            return u64::MAX;
        }
        let t = ((ns as u128) << 32).div_ceil(self.mul as u128);
        if t > u64::MAX as u128 { u64::MAX } else { t as u64 }
    }

    /// The counter frequency this scale describes.
    pub const fn hz(self) -> u64 {
        if self.mul == 0 { 0 } else { ((1_000_000_000u128 << 32) / self.mul as u128) as u64 }
    }
}

/// A pvclock reading: `system_time` (ns) at `tsc_timestamp`, and the scale from there on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pvclock {
    /// TSC when `system_time` was taken.
    pub tsc_timestamp: u64,
    /// Host nanoseconds at `tsc_timestamp`.
    pub system_time: u64,
    /// TSC scale.
    pub scale: Scale,
}

impl Pvclock {
    /// Host nanoseconds at TSC value `tsc`.
    pub fn ns_at(&self, tsc: u64) -> u64 {
        match tsc.checked_sub(self.tsc_timestamp) {
            Some(d) => self.system_time.saturating_add(self.scale.ns(d)),
            None => self.system_time.saturating_sub(self.scale.ns(self.tsc_timestamp - tsc)),
        }
    }

    /// The TSC value at host nanoseconds `ns`.
    pub fn tsc_at(&self, ns: u64) -> u64 {
        match ns.checked_sub(self.system_time) {
            Some(d) => self.tsc_timestamp.saturating_add(self.scale.ticks(d)),
            None => self.tsc_timestamp.saturating_sub(self.scale.ticks(self.system_time - ns)),
        }
    }
}

/// A CMOS clock reading, already decoded from BCD and 12-hour form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcTime {
    /// Full year, e.g. 2026.
    pub year: u32,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59.
    pub second: u32,
}

impl RtcTime {
    /// Seconds since 1970-01-01T00:00:00Z (the CMOS clock of a VM runs in UTC).
    pub fn unix(&self) -> Option<Duration> {
        if !(1..=12).contains(&self.month) || !(1..=31).contains(&self.day) || self.year < 1970 {
            return None;
        }
        // Howard Hinnant's days_from_civil.
        let (y, m, d) = (i64::from(self.year), i64::from(self.month), i64::from(self.day));
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        u64::try_from(secs).ok().map(Duration::from_secs)
    }
}

/// Decode a CMOS register value: BCD unless status register B says binary.
pub fn rtc_field(raw: u8, binary: bool) -> u32 {
    if binary { u32::from(raw) } else { u32::from(raw & 0x0f) + u32::from(raw >> 4) * 10 }
}

/// Decode the CMOS hour register (BCD or binary, 12- or 24-hour).
pub fn rtc_hour(raw: u8, binary: bool, h24: bool) -> u32 {
    let pm = raw & 0x80 != 0;
    let h = rtc_field(raw & 0x7f, binary);
    match (h24, pm) {
        (true, _) => h,
        (false, false) => h % 12,
        (false, true) => h % 12 + 12,
    }
}

#[cfg(target_os = "none")]
pub use kernel::KernelTime;

#[cfg(target_os = "none")]
mod kernel {
    use core::sync::atomic::{AtomicU64, Ordering};
    use core::time::Duration;

    use morgana::Instant;
    use morgana_rt::TimeSource;

    use super::{Pvclock, Scale};
    use crate::sys;

    /// Latest reading handed out: `now` never goes backwards.
    static LAST_NS: AtomicU64 = AtomicU64::new(0);
    /// POSIX nanoseconds at the origin, plus one (0 = not read yet).
    static UNIX_AT_ORIGIN: AtomicU64 = AtomicU64::new(0);

    /// Where the TSC's meaning comes from.
    #[derive(Debug, Clone, Copy)]
    enum Source {
        /// KVM's paravirtual clock page, re-read on every call.
        Pvclock,
        /// A TSC of known frequency.
        Tsc(Scale),
    }

    /// The kernel's clock: monotonic nanoseconds since the first instruction.
    #[derive(Debug, Clone, Copy)]
    pub struct KernelTime {
        source: Source,
        /// Raw reading (pvclock ns or TSC ticks) at the first instruction.
        origin: u64,
    }

    impl KernelTime {
        /// Pick the best clock: pvclock under KVM, else the TSC with a frequency from CPUID or a
        /// PIT calibration. Also returns a one-line description for the boot log.
        pub fn init() -> (Self, &'static str) {
            let boot_tsc = sys::boot::boot_tsc();
            if let Some(pv) = sys::clock::pvclock_enable() {
                return (Self { source: Source::Pvclock, origin: pv.ns_at(boot_tsc) }, "kvm-pvclock");
            }
            let (hz, how) = match sys::clock::tsc_hz_from_cpuid() {
                Some(hz) => (hz, "tsc (cpuid frequency)"),
                None => (sys::clock::tsc_hz_from_pit(), "tsc (pit-calibrated)"),
            };
            (Self { source: Source::Tsc(Scale::from_hz(hz)), origin: boot_tsc }, how)
        }

        fn raw_ns(&self, tsc: u64) -> u64 {
            match self.source {
                Source::Pvclock => sys::clock::pvclock_read().ns_at(tsc).saturating_sub(self.origin),
                Source::Tsc(scale) => scale.ns(tsc.saturating_sub(self.origin)),
            }
        }

        /// Nanoseconds since the first instruction at TSC value `tsc`.
        pub fn at_tsc(&self, tsc: u64) -> Instant {
            Instant::from_nanos(self.raw_ns(tsc))
        }

        /// The TSC value at which this clock reads `at` (for the TSC-deadline timer).
        pub fn tsc_at(&self, at: Instant) -> u64 {
            match self.source {
                Source::Pvclock => {
                    let pv: Pvclock = sys::clock::pvclock_read();
                    pv.tsc_at(at.as_nanos().saturating_add(self.origin))
                }
                Source::Tsc(scale) => self.origin.saturating_add(scale.ticks(at.as_nanos())),
            }
        }
    }

    impl TimeSource for KernelTime {
        fn now(&self) -> Instant {
            let ns = self.raw_ns(sys::cpu::rdtsc());
            let prev = LAST_NS.fetch_max(ns, Ordering::Relaxed);
            Instant::from_nanos(ns.max(prev))
        }

        fn now_unix(&self) -> Duration {
            let mut at_origin = UNIX_AT_ORIGIN.load(Ordering::Relaxed);
            if at_origin == 0 {
                let since_origin = self.now().as_nanos();
                let unix = match sys::clock::rtc_read().and_then(|t| t.unix()) {
                    Some(u) => u,
                    None => {
                        log::warn!("no CMOS real-time clock: wall-clock time counts from 1970-01-01");
                        Duration::ZERO
                    }
                };
                let unix_ns = u64::try_from(unix.as_nanos()).unwrap_or(u64::MAX);
                at_origin = unix_ns.saturating_sub(since_origin).saturating_add(1);
                UNIX_AT_ORIGIN.store(at_origin, Ordering::Relaxed);
            }
            Duration::from_nanos((at_origin - 1).saturating_add(self.now().as_nanos()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_round_trips() {
        let s = Scale::from_hz(2_500_000_000);
        assert!(s.ns(2_500_000_000).abs_diff(1_000_000_000) <= 1);
        assert!(s.ticks(1_000_000) >= 2_500_000 && s.ticks(1_000_000) <= 2_500_001);
        assert!(s.hz().abs_diff(2_500_000_000) < 10);
        let slow = Scale::from_hz(1_193_182);
        assert!(slow.ns(1_193_182).abs_diff(1_000_000_000) <= 1);
        assert_eq!(Scale::from_hz(u64::MAX).ticks(u64::MAX), u64::MAX);
    }

    #[test]
    fn pvclock_matches_its_definition() {
        // A 2 GHz TSC as KVM describes it: shift 1, mul = 2^30 (half a nanosecond per tick).
        let pv = Pvclock { tsc_timestamp: 1_000, system_time: 5_000, scale: Scale::from_pvclock(1 << 30, 1) };
        assert_eq!(pv.ns_at(1_000 + 2_000_000_000), 5_000 + 1_000_000_000);
        assert_eq!(pv.ns_at(0), 5_000 - 500);
        assert_eq!(pv.tsc_at(5_000 + 1_000_000_000), 1_000 + 2_000_000_000);
        let down = Scale::from_pvclock(1 << 31, -1); // a 4 GHz counter
        assert_eq!(down.ns(8_000), 2_000);
    }

    #[test]
    fn rtc_converts_to_posix_time() {
        let t = RtcTime { year: 2026, month: 1, day: 1, hour: 0, minute: 0, second: 0 };
        assert_eq!(t.unix(), Some(Duration::from_secs(1_767_225_600)));
        let t = RtcTime { year: 2000, month: 2, day: 29, hour: 12, minute: 34, second: 56 };
        assert_eq!(t.unix(), Some(Duration::from_secs(951_827_696)));
        assert_eq!(RtcTime { month: 13, ..t }.unix(), None);
        assert_eq!(rtc_field(0x59, false), 59);
        assert_eq!(rtc_field(59, true), 59);
        assert_eq!(rtc_hour(0x12 | 0x80, false, false), 12);
        assert_eq!(rtc_hour(0x12, false, false), 0);
        assert_eq!(rtc_hour(0x01 | 0x80, false, false), 13);
        assert_eq!(rtc_hour(0x23, false, true), 23);
    }
}
