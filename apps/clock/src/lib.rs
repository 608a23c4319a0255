//! `clock`: the speaking clock (mirage-skeleton device-usage/clock).
//!
//! Once a second it says the wall-clock time (POSIX time as RFC 3339, UTC) and the time elapsed
//! on the monotonic clock since it started, for `--count` seconds (0: forever). Ticks are
//! scheduled from the start time, so they do not drift.
#![no_std]
#![forbid(unsafe_code)]

use core::convert::Infallible;
use core::fmt;

use morgana::{Clock, Duration, Platform, WallClock};
use morgana_args::{ArgError, ArgSpec, Args};

/// `--count N`.
pub const ARGS: &[ArgSpec] =
    &[ArgSpec::value("count", "N", "how many seconds to speak for (0: forever)").default("10")];

/// How long the clock speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Ticks to say; 0 for no end.
    pub count: u64,
}

impl Config {
    /// Read the configuration from the runtime arguments.
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        Ok(Self { count: args.get("count")? })
    }
}

/// POSIX time printed as RFC 3339 in UTC with milliseconds: `2026-01-01T00:00:03.000Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339(pub Duration);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let (days, rem) = (secs / 86_400, secs % 86_400);
        // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm, proleptic Gregorian).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            self.0.subsec_millis()
        )
    }
}

/// Speak the time once a second, `config.count` times.
pub async fn start<P: Platform>(platform: P, config: Config) -> Result<(), Infallible> {
    let clock = platform.clock();
    let started = clock.now();
    let mut tick = 0u64;
    loop {
        let elapsed = clock.now() - started;
        log::info!(
            "{} (monotonic: {}.{:03}s since start)",
            Rfc3339(clock.now_unix()),
            elapsed.as_secs(),
            elapsed.subsec_millis()
        );
        tick += 1;
        if config.count != 0 && tick >= config.count {
            return Ok(());
        }
        clock.sleep_until(started + Duration::from_secs(tick)).await;
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn dates_print_as_rfc3339() {
        let at = |s: u64, ms: u64| Rfc3339(Duration::from_secs(s) + Duration::from_millis(ms)).to_string();
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_767_225_600 + 3 * 3600 + 4 * 60 + 5, 678), "2026-01-01T03:04:05.678Z");
        assert_eq!(at(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z", "2100 is not a leap year");
    }
}
