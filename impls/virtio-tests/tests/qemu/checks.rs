//! Checks of what a boot printed: timing of `hello` lines on both clocks, wall and monotonic
//! time, one-line refusals.

use std::time::Duration;

use morgana_qemu::{Boot, guest_time};

/// `count` hello lines, `interval` apart on the guest clock (each pair, within 25%) and on the
/// host's (first to last, within 25%: a host starved by other work delays single lines).
pub fn check_hello(b: &Boot, count: usize, interval: Duration) -> Result<(), String> {
    b.expect_status(0)?;
    let hellos = b.find("INFO  hello: hello");
    if hellos.len() != count {
        return Err(format!("{} hello lines, expected {count}", hellos.len()));
    }
    let want = interval.as_secs_f64();
    for pair in hellos.windows(2) {
        let guest =
            guest_time(&pair[1].1).zip(guest_time(&pair[0].1)).map(|(a, b)| a - b).ok_or("no timestamp")?;
        if (guest - want).abs() > want * 0.25 {
            return Err(format!("hello lines {guest:.3}s apart on the guest clock, expected {want:.3}s"));
        }
    }
    if let (Some(first), Some(last)) = (hellos.first(), hellos.last()) {
        let host = (last.0 - first.0).as_secs_f64();
        let span = want * (count - 1) as f64;
        if (host - span).abs() > span * 0.25 {
            return Err(format!(
                "first to last hello took {host:.3}s on the host clock, expected {span:.3}s"
            ));
        }
    }
    Ok(())
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// POSIX seconds of an RFC 3339 UTC time `2026-01-01T00:00:03.000Z` (seconds precision).
fn rfc3339_secs(s: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    if s.len() < 20 || &s[4..5] != "-" || &s[10..11] != "T" {
        return None;
    }
    let days = days_from_civil(n(0..4)?, n(5..7)?, n(8..10)?);
    Some(days * 86_400 + n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?)
}

fn host_unix_secs() -> Result<u64, String> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|e| e.to_string())
}

/// `clock --count N`: N lines, wall time near the host's, monotonic time one second apart.
pub fn check_clock(b: &Boot, count: usize) -> Result<(), String> {
    b.expect_status(0)?;
    let lines = b.find("(monotonic: ");
    if lines.len() != count {
        return Err(format!("{} clock lines, expected {count}", lines.len()));
    }
    let host = host_unix_secs()? as i64;
    for (i, (_, line)) in lines.iter().enumerate() {
        let text = line.split("clock: ").nth(1).ok_or_else(|| format!("unreadable: {line}"))?;
        let wall = rfc3339_secs(text).ok_or_else(|| format!("not RFC 3339: {line}"))?;
        if (wall - host).abs() > 30 {
            return Err(format!("guest wall clock {text} is {}s off the host's", wall - host));
        }
        let mono: f64 = text
            .split("(monotonic: ")
            .nth(1)
            .and_then(|m| m.split('s').next())
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| format!("no monotonic time: {line}"))?;
        if (mono - i as f64).abs() > 0.25 {
            return Err(format!("tick {i} at {mono}s monotonic, expected {i}s"));
        }
    }
    Ok(())
}

/// The conformance image's `--check clock` line: wall clock near the host's, a 200 ms sleep.
pub fn check_conformance_clock(b: &Boot) -> Result<(), String> {
    b.expect_status(0)?;
    let line = b.find("clock: unix ").first().map(|(_, l)| l.clone()).ok_or("no clock line")?;
    let nums: Vec<u64> = line
        .split("clock: unix ")
        .nth(1)
        .unwrap_or("")
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let [unix, mono, wall] = nums[..] else { return Err(format!("unreadable: {line}")) };
    let host = host_unix_secs()?;
    if unix.abs_diff(host) > 10 {
        return Err(format!("guest wall clock {unix} is {}s off the host's", unix.abs_diff(host)));
    }
    if !(200..300).contains(&mono) || !(200..300).contains(&wall) {
        return Err(format!("a 200 ms sleep took {mono} ms monotonic, {wall} ms wall"));
    }
    Ok(())
}

/// Exactly one console line, starting with `want`.
pub fn only_line(b: &Boot, want: &str) -> Result<(), String> {
    if b.lines.len() == 1 && b.lines[0].1.starts_with(want) {
        Ok(())
    } else {
        Err(format!("expected only: {want}..."))
    }
}

/// A line on stderr (xtask's own) starting with `want`.
pub fn on_stderr(b: &Boot, want: &str) -> Result<(), String> {
    if b.stderr.lines().any(|l| l.starts_with(want)) {
        Ok(())
    } else {
        Err(format!("no '{want}...' on stderr: {}", b.stderr))
    }
}

/// A crash's backtrace, symbolized: after the panic or exception line, `backtrace: #N 0x...`
/// lines, and under them (or under the exception's, for the faulting function) each of
/// `callers`, innermost first, named with a line of the conformance image's source.
pub fn check_backtrace(b: &Boot, callers: &[&str]) -> Result<(), String> {
    if b.find("backtrace: #0 0x").is_empty() {
        return Err("no 'backtrace: #0 0x...' line".into());
    }
    let crash = |l: &str| l.starts_with("panicked at ") || l.starts_with("CPU exception ");
    let mut from = b.lines.iter().position(|(_, l)| crash(l)).ok_or("no panic or exception line")?;
    for caller in callers {
        let names = |l: &str| {
            let Some((name, at)) = l.strip_prefix("    ").and_then(|l| l.split_once(" at ")) else {
                return false;
            };
            (name == *caller || name.ends_with(&format!("::{caller}")))
                && at.starts_with("impls/virtio/examples/conformance.rs:")
        };
        match b.lines[from..].iter().position(|(_, l)| names(l)) {
            Some(i) => from += i + 1,
            None => {
                return Err(format!(
                    "no '    ...{caller} at impls/virtio/examples/conformance.rs:LINE' under the crash (in this order: {callers:?})"
                ));
            }
        }
    }
    Ok(())
}
