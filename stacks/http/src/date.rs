//! HTTP dates (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.

use core::fmt;

/// POSIX time formatted as an IMF-fixdate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpDate(pub u64);

impl HttpDate {
    /// The formatted date, 29 ASCII bytes (built by hand: it goes into every response head).
    pub fn to_bytes(self) -> [u8; 29] {
        const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
        const MONTHS: [&[u8; 3]; 12] =
            [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
        let days = self.0 / 86_400;
        let rem = self.0 % 86_400;
        let (y, m, d) = civil_from_days(days);
        let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
        let two = |out: &mut [u8; 29], at: usize, v: u64| {
            out[at] = b'0' + (v / 10 % 10) as u8;
            out[at + 1] = b'0' + (v % 10) as u8;
        };
        out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
        two(&mut out, 5, d);
        out[8..11].copy_from_slice(MONTHS[(m - 1) as usize]);
        // Years past 9999 do not fit the format; they print as 9999 rather than break it.
        let y = y.min(9999);
        two(&mut out, 12, y / 100);
        two(&mut out, 14, y % 100);
        two(&mut out, 17, rem / 3600);
        two(&mut out, 20, rem / 60 % 60);
        two(&mut out, 23, rem % 60);
        out
    }
}

impl fmt::Display for HttpDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        f.write_str(core::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn formats_known_dates() {
        assert_eq!(HttpDate(784_111_777).to_string(), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(HttpDate(0).to_string(), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(HttpDate(1_767_225_600).to_string(), "Thu, 01 Jan 2026 00:00:00 GMT");
        assert_eq!(HttpDate(951_782_400).to_string(), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(HttpDate(4_102_444_799).to_string(), "Thu, 31 Dec 2099 23:59:59 GMT");
        assert_eq!(HttpDate(u64::MAX / 2).to_string().len(), 29);
    }
}
