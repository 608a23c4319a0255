//! The log line, written without `core::fmt`'s padding machinery.
//!
//! Under a hypervisor that emulates the kernel's instructions one by one, formatting a log line
//! through `core::fmt` (padding, nested `Display`s) costs more than a millisecond; this writes
//! the same bytes as [`morgana_rt::LogLine`] with a few digit loops (checked against it in the
//! tests).

use core::fmt::{self, Write};

use morgana::Instant;

/// Write `[    1.000123] INFO  target: message` (no newline), exactly as `LogLine` displays it.
pub fn write_log_line<W: Write>(w: &mut W, at: Instant, record: &log::Record<'_>) -> fmt::Result {
    let ns = at.as_nanos();
    let mut digits = [0u8; 20];
    w.write_char('[')?;
    let secs = decimal(ns / 1_000_000_000, 5, b' ', &mut digits);
    w.write_str(secs)?;
    w.write_char('.')?;
    let micros = decimal((ns % 1_000_000_000) / 1_000, 6, b'0', &mut digits);
    w.write_str(micros)?;
    w.write_str(match record.level() {
        log::Level::Error => "] ERROR ",
        log::Level::Warn => "] WARN  ",
        log::Level::Info => "] INFO  ",
        log::Level::Debug => "] DEBUG ",
        log::Level::Trace => "] TRACE ",
    })?;
    w.write_str(record.target())?;
    w.write_str(": ")?;
    match record.args().as_str() {
        Some(s) => w.write_str(s),
        None => w.write_fmt(*record.args()),
    }
}

/// `n` in decimal, right-aligned to `width` with `pad` (more digits if it needs them).
fn decimal(mut n: u64, width: usize, pad: u8, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while buf.len() - at < width {
        at -= 1;
        buf[at] = pad;
    }
    // Only ASCII digits and the pad byte were written.
    core::str::from_utf8(&buf[at..]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::String;
    use morgana_rt::LogLine;

    #[test]
    fn the_same_bytes_as_log_line() {
        let times = [0, 1, 999, 1_250_000_000, 99_999_999_999_999, 123_456_789_012_345, u64::MAX];
        let levels =
            [log::Level::Error, log::Level::Warn, log::Level::Info, log::Level::Debug, log::Level::Trace];
        for ns in times {
            for level in levels {
                let n = 42;
                for args in [format_args!("hello"), format_args!("n = {n:>4}!")] {
                    let record =
                        log::Record::builder().level(level).target("morgana_virtio::run").args(args).build();
                    let at = Instant::from_nanos(ns);
                    let mut fast = String::new();
                    write_log_line(&mut fast, at, &record).unwrap();
                    assert_eq!(fast, format!("{}", LogLine { at, record: &record }));
                }
            }
        }
    }
}
