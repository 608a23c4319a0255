//! The NBD wire protocol as this server speaks it: the fixed newstyle handshake and the
//! transmission phase with simple replies, over the disk model in the parent module.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use super::{Shared, cut, lock};

pub(super) const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
pub(super) const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
pub(super) const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
pub(super) const REQUEST_MAGIC: u32 = 0x2560_9513;
pub(super) const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

pub(super) const FLAG_FIXED_NEWSTYLE: u16 = 1;
pub(super) const FLAG_NO_ZEROES: u16 = 2;
pub(super) const FLAG_C_NO_ZEROES: u32 = 2;
pub(super) const FLAG_HAS_FLAGS: u16 = 1;
pub(super) const FLAG_SEND_FLUSH: u16 = 4;

pub(super) const OPT_EXPORT_NAME: u32 = 1;
pub(super) const OPT_ABORT: u32 = 2;
pub(super) const OPT_INFO: u32 = 6;
pub(super) const OPT_GO: u32 = 7;
pub(super) const REP_ACK: u32 = 1;
pub(super) const REP_INFO: u32 = 3;
pub(super) const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
pub(super) const REP_ERR_INVALID: u32 = (1 << 31) + 3;
pub(super) const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;
pub(super) const INFO_EXPORT: u16 = 0;

pub(super) const CMD_READ: u16 = 0;
pub(super) const CMD_WRITE: u16 = 1;
pub(super) const CMD_DISC: u16 = 2;
pub(super) const CMD_FLUSH: u16 = 3;
pub(super) const EIO: u32 = 5;
pub(super) const EINVAL: u32 = 22;

pub(super) fn read_u16(r: &mut impl Read) -> io::Result<u16> {
    let mut b = [0; 2];
    r.read_exact(&mut b)?;
    Ok(u16::from_be_bytes(b))
}

pub(super) fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

pub(super) fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

pub(super) fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// An option's reply: magic, option, type, length, data.
fn option_reply(w: &mut impl Write, option: u32, kind: u32, data: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(20 + data.len());
    out.extend_from_slice(&REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    w.write_all(&out)
}

/// The handshake, then the transmission phase until `DISC` or the client leaves.
pub(super) fn serve(shared: &Shared, mut conn: UnixStream) -> io::Result<()> {
    let mut hello = Vec::new();
    hello.extend_from_slice(&NBDMAGIC.to_be_bytes());
    hello.extend_from_slice(&IHAVEOPT.to_be_bytes());
    hello.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    conn.write_all(&hello)?;
    let client_flags = read_u32(&mut conn)?;
    let size = lock(shared).current.len() as u64;
    let tx_flags = FLAG_HAS_FLAGS | FLAG_SEND_FLUSH;
    loop {
        if read_u64(&mut conn)? != IHAVEOPT {
            return Err(bad("an option without IHAVEOPT"));
        }
        let option = read_u32(&mut conn)?;
        let len = read_u32(&mut conn)? as usize;
        if len > 4096 {
            return Err(bad("an option longer than 4 KiB"));
        }
        let mut data = vec![0; len];
        conn.read_exact(&mut data)?;
        match option {
            OPT_EXPORT_NAME => {
                if data != shared.export.as_bytes() {
                    return Err(bad("NBD_OPT_EXPORT_NAME of an unknown export"));
                }
                let mut out = size.to_be_bytes().to_vec();
                out.extend_from_slice(&tx_flags.to_be_bytes());
                if client_flags & FLAG_C_NO_ZEROES == 0 {
                    out.extend_from_slice(&[0; 124]);
                }
                conn.write_all(&out)?;
                break;
            }
            OPT_INFO | OPT_GO => {
                let name_len = data.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
                let name = name_len.and_then(|n| data.get(4..4 + n));
                match name {
                    None => option_reply(&mut conn, option, REP_ERR_INVALID, b"")?,
                    Some(name) if name != shared.export.as_bytes() => {
                        option_reply(&mut conn, option, REP_ERR_UNKNOWN, b"no such export")?
                    }
                    Some(_) => {
                        let mut info = INFO_EXPORT.to_be_bytes().to_vec();
                        info.extend_from_slice(&size.to_be_bytes());
                        info.extend_from_slice(&tx_flags.to_be_bytes());
                        option_reply(&mut conn, option, REP_INFO, &info)?;
                        option_reply(&mut conn, option, REP_ACK, b"")?;
                        if option == OPT_GO {
                            break;
                        }
                    }
                }
            }
            OPT_ABORT => {
                let _ = option_reply(&mut conn, option, REP_ACK, b"");
                return Ok(());
            }
            _ => option_reply(&mut conn, option, REP_ERR_UNSUP, b"")?,
        }
    }
    transmission(shared, conn)
}

fn transmission(shared: &Shared, mut conn: UnixStream) -> io::Result<()> {
    loop {
        if read_u32(&mut conn)? != REQUEST_MAGIC {
            return Err(bad("a request without its magic"));
        }
        let _flags = read_u16(&mut conn)?;
        let kind = read_u16(&mut conn)?;
        let handle = read_u64(&mut conn)?;
        let offset = read_u64(&mut conn)? as usize;
        let len = read_u32(&mut conn)? as usize;
        let mut data = Vec::new();
        if kind == CMD_WRITE {
            data = vec![0; len];
            conn.read_exact(&mut data)?;
        }
        if kind == CMD_DISC {
            return Ok(());
        }
        let mut disk = lock(shared);
        if disk.cut {
            // Powered off: the request never completes. Keep reading until the client goes.
            continue;
        }
        let in_range = offset.checked_add(len).is_some_and(|end| end <= disk.current.len());
        let (error, payload) = match kind {
            CMD_READ if in_range => {
                disk.counts.reads += 1;
                (0, disk.current[offset..offset + len].to_vec())
            }
            CMD_WRITE if in_range => {
                disk.counts.writes += 1;
                disk.current[offset..offset + len].copy_from_slice(&data);
                disk.pending.push((offset, data));
                if let Some((Some(due), how)) = disk.armed
                    && disk.counts.writes >= due
                {
                    disk.armed = None;
                    disk.report = Some(cut(&mut disk, how));
                    continue;
                }
                (0, Vec::new())
            }
            CMD_FLUSH => {
                if let Some((None, how)) = disk.armed {
                    disk.armed = None;
                    disk.report = Some(cut(&mut disk, how));
                    continue;
                }
                disk.counts.flushes += 1;
                let pending = std::mem::take(&mut disk.pending);
                for (at, data) in pending {
                    disk.durable[at..at + data.len()].copy_from_slice(&data);
                }
                (0, Vec::new())
            }
            CMD_READ | CMD_WRITE => (EINVAL, Vec::new()),
            _ => (EIO, Vec::new()),
        };
        drop(disk);
        let mut out = Vec::with_capacity(16 + payload.len());
        out.extend_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
        out.extend_from_slice(&error.to_be_bytes());
        out.extend_from_slice(&handle.to_be_bytes());
        out.extend_from_slice(&payload);
        conn.write_all(&out)?;
    }
}
