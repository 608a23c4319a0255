//! The log line, written without `core::fmt`'s padding machinery.
//!
//! Under a hypervisor that emulates the kernel's instructions one by one, formatting a log line
//! through `core::fmt` (padding, nested `Display`s, a `write_str` per piece) costs more than a
//! millisecond; this writes the same bytes as [`morgana_rt::LogLine`] into a byte buffer with a
//! few digit loops (checked against it in the tests).

use core::fmt::{self, Write};

use morgana::Instant;

/// Where a line is assembled: raw bytes for the fixed parts, `fmt::Write` for the message.
pub trait Sink: Write {
    /// Append ASCII `bytes`.
    fn ascii(&mut self, bytes: &[u8]);
}

/// Write `[    1.000123] INFO  target: message` (no newline), exactly as `LogLine` displays it.
pub fn write_log_line<S: Sink>(w: &mut S, at: Instant, record: &log::Record<'_>) -> fmt::Result {
    let ns = at.as_nanos();
    // "[" + seconds (at least 5 wide, up to 20 digits) + "." + 6 digits.
    let mut head = [b' '; 28];
    head[0] = b'[';
    let secs = ns / 1_000_000_000;
    let (n, width) = (digits(secs), digits(secs).max(5));
    put_digits(&mut head[1 + width - n..1 + width], secs);
    head[1 + width] = b'.';
    put_digits(&mut head[2 + width..8 + width], (ns % 1_000_000_000) / 1_000);
    w.ascii(&head[..8 + width]);
    w.ascii(match record.level() {
        log::Level::Error => b"] ERROR ",
        log::Level::Warn => b"] WARN  ",
        log::Level::Info => b"] INFO  ",
        log::Level::Debug => b"] DEBUG ",
        log::Level::Trace => b"] TRACE ",
    });
    w.write_str(record.target())?;
    w.ascii(b": ");
    match record.args().as_str() {
        Some(s) => w.write_str(s),
        None => w.write_fmt(*record.args()),
    }
}

/// Decimal digits in `n`.
fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// The last `out.len()` decimal digits of `n` (zero-padded), into `out`.
fn put_digits(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::String;
    use morgana_rt::LogLine;

    struct Text(String);

    impl Write for Text {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.push_str(s);
            Ok(())
        }
    }

    impl Sink for Text {
        fn ascii(&mut self, bytes: &[u8]) {
            self.0.push_str(core::str::from_utf8(bytes).unwrap());
        }
    }

    #[test]
    fn the_same_bytes_as_log_line() {
        let times =
            [0, 1, 999, 1_000_000_000, 1_250_000_000, 99_999_999_999_999, 123_456_789_012_345, u64::MAX];
        let levels =
            [log::Level::Error, log::Level::Warn, log::Level::Info, log::Level::Debug, log::Level::Trace];
        for ns in times {
            for level in levels {
                let n = 42;
                for args in [format_args!("hello"), format_args!("n = {n:>4}!")] {
                    let record =
                        log::Record::builder().level(level).target("morgana_virtio::run").args(args).build();
                    let at = Instant::from_nanos(ns);
                    let mut fast = Text(String::new());
                    write_log_line(&mut fast, at, &record).unwrap();
                    assert_eq!(fast.0, format!("{}", LogLine { at, record: &record }));
                }
            }
        }
    }
}
