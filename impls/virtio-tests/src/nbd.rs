//! A small NBD server that models a disk with a volatile write cache, so that a test can cut
//! the power under QEMU's virtio-blk for real: QEMU is the NBD client, and the guest's
//! `VIRTIO_BLK_T_FLUSH` reaches this server as `NBD_CMD_FLUSH` (it advertises
//! `NBD_FLAG_SEND_FLUSH`, and QEMU's default cache mode shows the guest a write cache).
//!
//! It holds the durable image and the writes since the last flush. Reads see every write; a
//! flush makes the pending writes durable. At a cut ([`Server::cut`] now, or [`Server::cut_at`]
//! a given write or the next flush) it stops answering (the
//! guest's next request never completes, so nothing after the cut is acknowledged), and the
//! surviving image is the durable one plus, as the [`Cut`] asks, a seeded subset of the pending
//! writes in a seeded order, the last one applied possibly torn (only some of its 512-byte
//! sectors).
//!
//! Protocol: the fixed newstyle handshake (`NBD_OPT_GO`, `NBD_OPT_INFO`, `NBD_OPT_EXPORT_NAME`,
//! `NBD_OPT_ABORT`; other options are answered `NBD_REP_ERR_UNSUP`, which QEMU takes as "not
//! offered"), then simple replies to `READ`, `WRITE`, `FLUSH` and `DISC`, one export, one
//! client at a time (the listener takes the next one when it leaves).

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_NO_ZEROES: u16 = 2;
const FLAG_C_NO_ZEROES: u32 = 2;
const FLAG_HAS_FLAGS: u16 = 1;
const FLAG_SEND_FLUSH: u16 = 4;

const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;
const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
const REP_ERR_INVALID: u32 = (1 << 31) + 3;
const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;
const INFO_EXPORT: u16 = 0;

const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const EIO: u32 = 5;
const EINVAL: u32 = 22;

/// The sector a write tears at.
pub const SECTOR: usize = 512;

/// What survives a [`Server::cut`] of the writes since the last flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// None of them.
    DropAll,
    /// A seeded subset (not empty when any are pending), applied in a seeded order.
    Subset {
        /// The seed of the choice and the order.
        seed: u64,
        /// Whether the last one applied keeps only some of its sectors (when it has several).
        tear: bool,
    },
}

/// When an armed cut falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// As the `n`-th write from now arrives (it is pending then, and may survive or tear as
    /// the others): in the middle of what the guest writes before a flush.
    Write(u64),
    /// As the next flush arrives, before it completes: everything the guest wrote since the
    /// last one is pending.
    Flush,
}

/// What a cut did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutReport {
    /// Writes pending since the last flush.
    pub pending: usize,
    /// How many of them reached the surviving image (the torn one included).
    pub kept: usize,
    /// Sectors of the torn write kept, of its sectors, if one tore.
    pub torn: Option<(usize, usize)>,
    /// What the client had asked until the cut.
    pub counts: Counts,
    /// The surviving image.
    pub image: Vec<u8>,
}

/// Counts of what the client asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `NBD_CMD_READ`s.
    pub reads: u64,
    /// `NBD_CMD_WRITE`s.
    pub writes: u64,
    /// `NBD_CMD_FLUSH`es.
    pub flushes: u64,
}

#[derive(Debug)]
struct Disk {
    /// As of the last flush.
    durable: Vec<u8>,
    /// Every write applied: what reads see.
    current: Vec<u8>,
    /// The writes since the last flush, in arrival order.
    pending: Vec<(usize, Vec<u8>)>,
    counts: Counts,
    /// Set by a cut: no request is answered from then on.
    cut: bool,
    /// A cut due at the write count or flush given.
    armed: Option<(Option<u64>, Cut)>,
    /// What the armed cut did, once it has.
    report: Option<CutReport>,
}

#[derive(Debug)]
struct Shared {
    disk: Mutex<Disk>,
    export: String,
    stop: AtomicBool,
    /// The client being served, to shut its socket down when the server stops.
    client: Mutex<Option<UnixStream>>,
}

/// A running server on a Unix socket; stopped on drop.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    socket: PathBuf,
    acceptor: Option<JoinHandle<()>>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Disk> {
    shared.disk.lock().unwrap_or_else(|p| p.into_inner())
}

impl Server {
    /// Serve `image` (a whole number of sectors) as export `export` on a new socket at `socket`.
    pub fn start(socket: &Path, export: &str, image: Vec<u8>) -> io::Result<Self> {
        if !image.len().is_multiple_of(SECTOR) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the image is not whole sectors"));
        }
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)?;
        let disk = Disk {
            durable: image.clone(),
            current: image,
            pending: Vec::new(),
            counts: Counts::default(),
            cut: false,
            armed: None,
            report: None,
        };
        let shared = Arc::new(Shared {
            disk: Mutex::new(disk),
            export: export.to_string(),
            stop: AtomicBool::new(false),
            client: Mutex::new(None),
        });
        let for_thread = shared.clone();
        let acceptor = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if for_thread.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    *for_thread.client.lock().unwrap_or_else(|p| p.into_inner()) = conn.try_clone().ok();
                    // One client at a time: QEMU opens one connection per drive.
                    if let Err(e) = serve(&for_thread, conn)
                        && e.kind() != io::ErrorKind::UnexpectedEof
                    {
                        eprintln!("nbd server: {e}");
                    }
                }
            }
        });
        Ok(Self { shared, socket: socket.to_path_buf(), acceptor: Some(acceptor) })
    }

    /// The URL QEMU opens (`nbd+unix:///EXPORT?socket=PATH`).
    pub fn url(&self) -> String {
        format!("nbd+unix:///{}?socket={}", self.shared.export, self.socket.display())
    }

    /// What the client asked so far.
    pub fn counts(&self) -> Counts {
        lock(&self.shared).counts
    }

    /// The image as reads see it now (every write applied).
    pub fn current(&self) -> Vec<u8> {
        lock(&self.shared).current.clone()
    }

    /// Cut the power now: answer nothing from now on, and return what survives (see [`Cut`]).
    pub fn cut(&self, how: Cut) -> CutReport {
        cut(&mut lock(&self.shared), how)
    }

    /// Cut the power when `at` comes; [`Server::wait_cut`] tells what it did.
    pub fn cut_at(&self, at: At, how: Cut) {
        let mut disk = lock(&self.shared);
        let due = match at {
            At::Write(n) => Some(disk.counts.writes + n.max(1)),
            At::Flush => None,
        };
        disk.armed = Some((due, how));
    }

    /// What the cut armed by [`Server::cut_at`] did, once it has happened (waiting up to
    /// `timeout`).
    pub fn wait_cut(&self, timeout: std::time::Duration) -> Option<CutReport> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(report) = lock(&self.shared).report.take() {
                return Some(report);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// The cut: no answer from now on; the surviving image (see [`Cut`]).
fn cut(disk: &mut Disk, how: Cut) -> CutReport {
    disk.cut = true;
    let mut image = disk.durable.clone();
    let pending = disk.pending.len();
    let (mut kept, mut torn) = (0, None);
    if let Cut::Subset { seed, tear } = how {
        let mut rng = SplitMix(seed);
        let mut order: Vec<usize> = (0..pending).filter(|_| rng.next().is_multiple_of(2)).collect();
        if order.is_empty() && pending > 0 {
            order.push((rng.next() % pending as u64) as usize);
        }
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        kept = order.len();
        for (n, &i) in order.iter().enumerate() {
            let (offset, data) = &disk.pending[i];
            let sectors = data.len() / SECTOR;
            if tear && n + 1 == order.len() && sectors > 1 {
                // Some of its sectors, not all, not none: a write torn by the cut.
                let mut keep: Vec<bool> = (0..sectors).map(|_| rng.next().is_multiple_of(2)).collect();
                let count = keep.iter().filter(|k| **k).count();
                if count == 0 || count == sectors {
                    keep[(rng.next() % sectors as u64) as usize] ^= true;
                }
                for (s, _) in keep.iter().enumerate().filter(|(_, k)| **k) {
                    let at = offset + s * SECTOR;
                    image[at..at + SECTOR].copy_from_slice(&data[s * SECTOR..(s + 1) * SECTOR]);
                }
                torn = Some((keep.iter().filter(|k| **k).count(), sectors));
            } else {
                image[*offset..offset + data.len()].copy_from_slice(data);
            }
        }
    }
    CutReport { pending, kept, torn, counts: disk.counts, image }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor; a client still connected is answered nothing more (it is gone or
        // cut), and its thread ends when it closes.
        lock(&self.shared).cut = true;
        if let Some(client) = self.shared.client.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = client.shutdown(std::net::Shutdown::Both);
        }
        let _ = UnixStream::connect(&self.socket);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// SplitMix64: the same choices for the same seed everywhere.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn read_u16(r: &mut impl Read) -> io::Result<u16> {
    let mut b = [0; 2];
    r.read_exact(&mut b)?;
    Ok(u16::from_be_bytes(b))
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

fn bad(what: &str) -> io::Error {
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
fn serve(shared: &Shared, mut conn: UnixStream) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The client side of the fixed newstyle handshake and of simple requests: enough to drive
    /// the server here (QEMU drives it in the QEMU suite).
    struct Client(UnixStream);

    /// An export's size and transmission flags, or the type of the error reply to its option.
    type Export = Result<(u64, u16), u32>;

    impl Client {
        /// Handshake, an option the server does not know, then `NBD_OPT_GO` for `export`: the
        /// export's size and flags, or the error reply's type.
        fn connect(socket: &Path, export: &str) -> io::Result<(Self, Export)> {
            let mut s = UnixStream::connect(socket)?;
            assert_eq!((read_u64(&mut s)?, read_u64(&mut s)?), (NBDMAGIC, IHAVEOPT));
            assert_eq!(read_u16(&mut s)? & FLAG_FIXED_NEWSTYLE, FLAG_FIXED_NEWSTYLE);
            s.write_all(&(1u32 | FLAG_C_NO_ZEROES).to_be_bytes())?;
            let mut c = Self(s);
            c.option(8, &[])?; // NBD_OPT_STRUCTURED_REPLY
            assert_eq!(c.reply(8)?.0, REP_ERR_UNSUP);
            let mut go = (export.len() as u32).to_be_bytes().to_vec();
            go.extend_from_slice(export.as_bytes());
            go.extend_from_slice(&0u16.to_be_bytes());
            c.option(OPT_GO, &go)?;
            let (kind, info) = c.reply(OPT_GO)?;
            if kind != REP_INFO {
                return Ok((c, Err(kind)));
            }
            assert_eq!(c.reply(OPT_GO)?.0, REP_ACK);
            let size = u64::from_be_bytes(info[2..10].try_into().unwrap());
            Ok((c, Ok((size, u16::from_be_bytes([info[10], info[11]])))))
        }

        fn option(&mut self, option: u32, data: &[u8]) -> io::Result<()> {
            let mut out = IHAVEOPT.to_be_bytes().to_vec();
            out.extend_from_slice(&option.to_be_bytes());
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            out.extend_from_slice(data);
            self.0.write_all(&out)
        }

        fn reply(&mut self, option: u32) -> io::Result<(u32, Vec<u8>)> {
            assert_eq!((read_u64(&mut self.0)?, read_u32(&mut self.0)?), (REPLY_MAGIC, option));
            let kind = read_u32(&mut self.0)?;
            let mut data = vec![0; read_u32(&mut self.0)? as usize];
            self.0.read_exact(&mut data)?;
            Ok((kind, data))
        }

        /// One request; its error and, for a read of `len` bytes, the data.
        fn request(&mut self, kind: u16, offset: u64, len: usize, data: &[u8]) -> io::Result<(u32, Vec<u8>)> {
            let mut out = REQUEST_MAGIC.to_be_bytes().to_vec();
            out.extend_from_slice(&0u16.to_be_bytes());
            out.extend_from_slice(&kind.to_be_bytes());
            out.extend_from_slice(&7u64.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.extend_from_slice(data);
            self.0.write_all(&out)?;
            assert_eq!(read_u32(&mut self.0)?, SIMPLE_REPLY_MAGIC);
            let error = read_u32(&mut self.0)?;
            assert_eq!(read_u64(&mut self.0)?, 7, "the request's handle");
            let mut back = vec![0; if kind == CMD_READ && error == 0 { len } else { 0 }];
            self.0.read_exact(&mut back)?;
            Ok((error, back))
        }
    }

    fn socket(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("morgana-nbd-{tag}-{}.sock", std::process::id()))
    }

    #[test]
    fn flushed_writes_survive_a_cut_and_pending_ones_as_the_cut_says() {
        let path = socket("cut");
        let server = Server::start(&path, "disk", vec![0; 8 * SECTOR]).unwrap();
        let (mut c, export) = Client::connect(&path, "disk").unwrap();
        assert_eq!(export, Ok((8 * SECTOR as u64, FLAG_HAS_FLAGS | FLAG_SEND_FLUSH)));
        assert_eq!(c.request(CMD_WRITE, 0, SECTOR, &[0xaa; SECTOR]).unwrap().0, 0);
        assert_eq!(c.request(CMD_FLUSH, 0, 0, &[]).unwrap().0, 0);
        assert_eq!(c.request(CMD_WRITE, 2 * SECTOR as u64, 4 * SECTOR, &[0xbb; 4 * SECTOR]).unwrap().0, 0);
        // Reads see the pending write.
        assert_eq!(
            c.request(CMD_READ, 2 * SECTOR as u64, 4 * SECTOR, &[]).unwrap(),
            (0, vec![0xbb; 4 * SECTOR])
        );
        assert_eq!(c.request(CMD_READ, 8 * SECTOR as u64, SECTOR, &[]).unwrap().0, EINVAL, "past the end");
        assert_eq!(server.counts(), Counts { reads: 1, writes: 2, flushes: 1 });

        let lost = server.cut(Cut::DropAll);
        let mut want = vec![0; 8 * SECTOR];
        want[..SECTOR].fill(0xaa);
        assert_eq!((lost.pending, lost.kept, lost.torn), (1, 0, None));
        assert!(lost.image == want, "only the flushed write survives");

        let torn = server.cut(Cut::Subset { seed: 3, tear: true });
        let (kept, of) = torn.torn.expect("a 4-sector write tears");
        assert!((torn.kept, of) == (1, 4) && (1..4).contains(&kept), "{:?}", torn.torn);
        let sectors: Vec<u8> = torn.image.chunks(SECTOR).map(|s| s[0]).collect();
        assert_eq!(sectors[..2], [0xaa, 0]);
        assert_eq!(sectors[2..6].iter().filter(|&&b| b == 0xbb).count(), kept, "{sectors:?}");
        assert!(sectors[2..].iter().all(|&b| b == 0 || b == 0xbb));

        // Cut: nothing is answered any more.
        c.0.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        assert!(c.request(CMD_READ, 0, SECTOR, &[]).is_err(), "a request answered after the cut");
    }

    #[test]
    fn a_cut_armed_at_the_flush_keeps_the_writes_before_it_pending() {
        let path = socket("armed");
        let server = Server::start(&path, "disk", vec![0; 4 * SECTOR]).unwrap();
        let (mut c, _) = Client::connect(&path, "disk").unwrap();
        server.cut_at(At::Flush, Cut::DropAll);
        c.request(CMD_WRITE, 0, SECTOR, &[1; SECTOR]).unwrap();
        let mut flush = REQUEST_MAGIC.to_be_bytes().to_vec();
        flush.extend_from_slice(&[0, 0, 0, 3]);
        flush.extend_from_slice(&[0; 20]);
        c.0.write_all(&flush).unwrap();
        let report = server.wait_cut(Duration::from_secs(5)).expect("the flush cuts");
        assert_eq!((report.pending, report.counts.flushes), (1, 0));
        assert!(report.image.iter().all(|&b| b == 0));
    }

    #[test]
    fn an_unknown_export_is_refused() {
        let path = socket("unknown");
        let _server = Server::start(&path, "disk", vec![0; SECTOR]).unwrap();
        let (_, export) = Client::connect(&path, "other").unwrap();
        assert_eq!(export, Err(REP_ERR_UNKNOWN));
    }
}
