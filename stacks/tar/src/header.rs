//! One 512-byte tar header, and the extended headers (pax, GNU long names) that amend the next
//! one. Every field is checked; nothing here panics on any input.

use alloc::string::String;
use alloc::vec::Vec;

/// Bytes in a tar record (a header, or a block of member data).
pub(crate) const RECORD: u64 = 512;

/// Why a header could not be read, without where (the caller knows the offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bad {
    /// The stored checksum does not match the header's bytes.
    Checksum,
    /// A numeric field holds something that is not a number (the field's name).
    Field(&'static str),
    /// A pax extended header is not a list of `LEN KEY=VALUE\n` records.
    Pax,
}

/// What kind of member a header introduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    /// A regular file (`0`, NUL, or `7` contiguous).
    File,
    /// A hard link to an earlier member (`1`).
    HardLink,
    /// A directory (`5`, or GNU's `D` dump directory).
    Directory,
    /// A pax extended header for the next member (`x`).
    PaxLocal,
    /// A pax global header (`g`): read past, its records ignored.
    PaxGlobal,
    /// A GNU long name for the next member (`L`).
    GnuLongName,
    /// A GNU long link name for the next member (`K`).
    GnuLongLink,
    /// A GNU sparse file (`S`) or multi-volume continuation (`M`): data this store cannot map.
    Unsupported(&'static str),
    /// Anything else (symbolic links, devices, FIFOs, volume labels, vendor types): not a value,
    /// its data (if any) skipped.
    Other(u8),
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// The name as stored (ustar prefix joined), raw bytes.
    pub name: Vec<u8>,
    /// The link target of a hard link, raw bytes.
    pub link: Vec<u8>,
    /// Bytes of data that follow the header.
    pub size: u64,
    /// Modification time, ns since the POSIX epoch (0 before it).
    pub mtime_ns: u64,
    pub kind: Type,
}

/// Whether a record is all zeros (the end-of-archive marker).
pub(crate) fn is_zero(record: &[u8]) -> bool {
    record.iter().all(|b| *b == 0)
}

/// Bytes of `field` up to its first NUL.
fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

/// A numeric field: octal digits (leading spaces or zeros, ended by a space or NUL, or filling
/// the field), or GNU's base-256 (the top bit of the first byte set) for values that do not
/// fit. `None` when it is neither, or too large for 64 bits; a negative base-256 value is
/// `Some(None)`.
fn number(field: &[u8]) -> Option<Option<u64>> {
    let first = *field.first()?;
    if first & 0x80 != 0 {
        if first & 0x40 != 0 {
            return Some(None);
        }
        let mut v: u64 = u64::from(first & 0x3f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(Some(v));
    }
    let mut rest = field;
    while let [b' ', tail @ ..] = rest {
        rest = tail;
    }
    let mut v: u64 = 0;
    while let [d @ b'0'..=b'7', tail @ ..] = rest {
        v = v.checked_mul(8)?.checked_add(u64::from(d - b'0'))?;
        rest = tail;
    }
    // After the digits only terminators may follow; an empty field reads as zero.
    rest.iter().all(|b| *b == 0 || *b == b' ').then_some(Some(v))
}

/// Parse the header `r` (a whole record that is not all zeros).
pub(crate) fn parse(r: &[u8; RECORD as usize]) -> Result<Header, Bad> {
    let stored = number(&r[148..156]).flatten().ok_or(Bad::Checksum)?;
    let unsigned: u64 =
        r.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u64::from(*b) }).sum();
    // Some old tars summed signed bytes: accept either, as GNU tar does.
    let signed: i64 = r
        .iter()
        .enumerate()
        .map(|(i, b)| if (148..156).contains(&i) { 32 } else { i64::from(*b as i8) })
        .sum();
    if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
        return Err(Bad::Checksum);
    }
    let size = number(&r[124..136]).ok_or(Bad::Field("size"))?.ok_or(Bad::Field("size"))?;
    let mtime_ns = match number(&r[136..148]).ok_or(Bad::Field("mtime"))? {
        Some(s) => s.saturating_mul(1_000_000_000),
        None => 0,
    };
    let kind = match r[156] {
        b'0' | 0 | b'7' => Type::File,
        b'1' => Type::HardLink,
        b'5' | b'D' => Type::Directory,
        b'x' => Type::PaxLocal,
        b'g' => Type::PaxGlobal,
        b'L' => Type::GnuLongName,
        b'K' => Type::GnuLongLink,
        b'S' => Type::Unsupported("a GNU sparse file"),
        b'M' => Type::Unsupported("a multi-volume continuation"),
        t => Type::Other(t),
    };
    let mut name = Vec::new();
    // POSIX ustar ("ustar\0" "00") keeps the start of a long name in the prefix field; the old
    // GNU format ("ustar  \0") keeps times there instead.
    if &r[257..263] == b"ustar\0" {
        let prefix = cstr(&r[345..500]);
        if !prefix.is_empty() {
            name.extend_from_slice(prefix);
            name.push(b'/');
        }
    }
    name.extend_from_slice(cstr(&r[0..100]));
    let link = cstr(&r[157..257]).to_vec();
    Ok(Header { name, link, size, mtime_ns, kind })
}

/// What a pax extended header says about the next member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Pax {
    pub path: Option<Vec<u8>>,
    pub linkpath: Option<Vec<u8>>,
    pub size: Option<u64>,
    pub mtime_ns: Option<u64>,
    /// A `GNU.sparse.*` record: the member is a sparse file.
    pub sparse: bool,
}

/// A pax time: seconds, optionally negative and with a fraction (`1700000000.25`), as ns since
/// the epoch (0 before it).
fn pax_time(v: &[u8]) -> Option<u64> {
    let (negative, v) = match v {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, v),
    };
    let (whole, frac) = match v.iter().position(|b| *b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &[][..]),
    };
    if whole.is_empty() || !whole.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let mut secs: u64 = 0;
    for d in whole {
        secs = secs.saturating_mul(10).saturating_add(u64::from(d - b'0'));
    }
    let mut ns: u64 = 0;
    for (i, d) in frac.iter().take(9).enumerate() {
        ns += u64::from(d - b'0') * 10u64.pow(8 - i as u32);
    }
    Some(if negative { 0 } else { secs.saturating_mul(1_000_000_000).saturating_add(ns) })
}

fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// Parse the records `LEN KEY=VALUE\n` of a pax header into `into` (later records win).
pub(crate) fn pax(mut data: &[u8], into: &mut Pax) -> Result<(), Bad> {
    // GNU tar pads the data with NULs to the record; they are not records.
    while !data.is_empty() && data[0] != 0 {
        let space = data.iter().position(|b| *b == b' ').ok_or(Bad::Pax)?;
        let len = usize::try_from(decimal(&data[..space]).ok_or(Bad::Pax)?).map_err(|_| Bad::Pax)?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(Bad::Pax);
        }
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|b| *b == b'=').ok_or(Bad::Pax)?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" => into.path = Some(value.to_vec()),
            b"linkpath" => into.linkpath = Some(value.to_vec()),
            b"size" => into.size = Some(decimal(value).ok_or(Bad::Pax)?),
            b"mtime" => into.mtime_ns = Some(pax_time(value).ok_or(Bad::Pax)?),
            k if k.starts_with(b"GNU.sparse.") => into.sparse = true,
            _ => {}
        }
        data = &data[len..];
    }
    Ok(())
}

/// A name as text, for a one-line message: lossy, control characters as `?`, cut at 200
/// bytes.
pub(crate) fn shown(name: &[u8]) -> String {
    let cut = &name[..name.len().min(200)];
    let mut s: String =
        String::from_utf8_lossy(cut).chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    if cut.len() < name.len() {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_every_spelling() {
        assert_eq!(number(b"0000644\0"), Some(Some(0o644)));
        assert_eq!(number(b"    644 "), Some(Some(0o644)));
        assert_eq!(number(b"00000001750\0"), Some(Some(1000)));
        assert_eq!(number(b"77777777777 "), Some(Some(0o77777777777)));
        assert_eq!(number(b"\0\0\0\0\0\0\0\0"), Some(Some(0)));
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]), Some(Some(2 << 32)));
        assert_eq!(number(&[0xff; 12]), Some(None), "negative base-256");
        assert_eq!(number(b"12a4\0\0\0\0"), None);
        assert_eq!(number(b"0008\0"), None, "8 is not octal");
        assert_eq!(number(b"12 3\0"), None, "digits after the terminator");
        assert_eq!(number(&[0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None, "beyond 64 bits");
        assert_eq!(number(b"7777777777777777777777\0"), None, "octal beyond 64 bits");
    }

    #[test]
    fn pax_records() {
        let mut p = Pax::default();
        pax(b"30 mtime=1700000000.123456789\n20 path=a/long/name\n11 size=42\n\0\0\0", &mut p).unwrap();
        assert_eq!(p.path.as_deref(), Some(&b"a/long/name"[..]));
        assert_eq!(p.size, Some(42));
        assert_eq!(p.mtime_ns, Some(1_700_000_000_123_456_789));
        for bad in
            [&b"8 path=x\n"[..], b"99 path=x\n", b"x path=x\n", b"11 pathx\n\n", b"12 size=4x\n", b"3 \n"]
        {
            assert_eq!(pax(bad, &mut Pax::default()), Err(Bad::Pax), "{}", shown(bad));
        }
        assert_eq!(pax_time(b"-5.5"), Some(0));
        assert_eq!(pax_time(b"."), None);
    }
}
