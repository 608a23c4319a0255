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

mod protocol;
#[cfg(test)]
mod tests;

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

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
                    if let Err(e) = protocol::serve(&for_thread, conn)
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
