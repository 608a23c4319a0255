//! One log line format for every target.

use core::fmt;

use morgana::Instant;

/// A log record stamped with monotonic time: `[    1.000123] INFO hello: hello`.
pub struct LogLine<'a> {
    /// When it was logged.
    pub at: Instant,
    /// The record.
    pub record: &'a log::Record<'a>,
}

impl fmt::Display for LogLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.at.as_nanos();
        write!(
            f,
            "[{:5}.{:06}] {:<5} {}: {}",
            ns / 1_000_000_000,
            (ns % 1_000_000_000) / 1_000,
            self.record.level(),
            self.record.target(),
            self.record.args()
        )
    }
}
