//! Opening a device: format a blank one, refuse a foreign one, recover the newest commit.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use morgana::block::{Block, BlockError};

use crate::format::{
    Commit, FIRST_DATA, Header, HeaderError, MAGIC, MAX_PAGES, MIN_PAGES, PAGE, PAGE_U64, RING, VERSION,
};
use crate::pager::{Fail, Pager};

/// Why a device could not be opened as a store. Nothing was written to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// The sector size does not divide the 4096-byte page.
    SectorSize(u32),
    /// The device is smaller than the smallest store.
    TooSmall {
        /// Bytes on the device.
        bytes: u64,
    },
    /// The device holds data that is not a store (the first non-zero byte's offset).
    Foreign {
        /// Offset of the first non-zero byte.
        offset: u64,
    },
    /// A store of another format version.
    Version(u32),
    /// The store's header (page 0) fails its checksum.
    HeaderDamaged,
    /// The device is smaller than the store written on it.
    Shrunk {
        /// Pages the store has.
        store: u64,
        /// Pages the device has.
        device: u64,
    },
    /// No commit record can be read and the ring is not blank: corruption, not a torn write.
    CommitsDamaged,
    /// The device is blank but read-only, so it cannot be formatted.
    BlankReadOnly,
    /// The device failed.
    Io(BlockError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SectorSize(s) => write!(f, "{s}-byte sectors do not divide the store's 4096-byte pages"),
            Self::TooSmall { bytes } => write!(
                f,
                "the device has {bytes} bytes; a store needs at least {} (use a larger image)",
                MIN_PAGES * PAGE_U64
            ),
            Self::Foreign { offset } => write!(
                f,
                "the device holds other data (non-zero byte at offset {offset}): not a morgana-store \
                 image, refusing to format it (zero the device to use it)"
            ),
            Self::Version(v) => {
                write!(f, "the device holds morgana-store format version {v}; this build reads {VERSION}")
            }
            Self::HeaderDamaged => {
                f.write_str("the store's header (page 0) fails its checksum: the device is damaged")
            }
            Self::Shrunk { store, device } => {
                write!(
                    f,
                    "the store has {store} pages but the device only {device}: was the image truncated?"
                )
            }
            Self::CommitsDamaged => {
                f.write_str("no commit record of the store is readable: the device is damaged")
            }
            Self::BlankReadOnly => {
                f.write_str("the device is blank and read-only, so no store can be made on it")
            }
            Self::Io(e) => write!(f, "cannot read the store: {e}"),
        }
    }
}

impl core::error::Error for OpenError {}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The device was blank and has been formatted.
    pub formatted: bool,
    /// The commit being written at the last power cut was torn and rolled back.
    pub torn_tail: bool,
    /// The commit the store opened at.
    pub commit: u64,
    /// Header and commit-record copies that failed their checksum while another copy was
    /// intact.
    pub damaged_records: u32,
    /// Pages of the committed tree that failed their checksum (what is below them is
    /// unreadable and reported as corrupt).
    pub damaged: Vec<u64>,
    /// Pages of the newest commit that did not read back whole and were rebuilt from its
    /// parity (a write the power cut short, or damage since): nothing was lost, and the next
    /// commit writes them afresh.
    pub repaired: Vec<u64>,
}

impl From<Fail> for OpenError {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Io(c) => OpenError::Io(BlockError::Io(c)),
            _ => OpenError::CommitsDamaged,
        }
    }
}

async fn read<B: Block>(dev: &mut B, page: u64, buf: &mut [u8]) -> Result<(), OpenError> {
    let per_page = PAGE_U64 / u64::from(dev.info().sector_size);
    dev.read(page * per_page, buf).await.map_err(OpenError::Io)
}

/// Whether a header page is what a header write cut short leaves: a prefix of the magic, the
/// other fields, zeros, and perhaps the checksum.
fn torn_format(page0: &[u8]) -> bool {
    // Sector by sector a write lands whole, in part (a prefix) or not at all: the magic may stop
    // short (then nothing follows it in that sector), the fields end at byte 36, the checksum
    // is in the last sector.
    let magic = page0[..8].iter().zip(MAGIC).take_while(|(a, b)| *a == b).count();
    (magic == 8 || page0[magic..36].iter().all(|b| *b == 0)) && page0[36..PAGE - 4].iter().all(|b| *b == 0)
}

/// The offset of the first non-zero byte on the device from page `from`, if any.
async fn first_nonzero<B: Block>(dev: &mut B, pages: u64, from: u64) -> Result<Option<u64>, OpenError> {
    const STEP: u64 = 16;
    let ss = dev.info().sector_size as usize;
    let mut buf = vec![0u8; STEP as usize * PAGE];
    let mut page = from;
    while page < pages {
        let n = STEP.min(pages - page);
        let b = &mut buf[..n as usize * PAGE];
        // Word by word: this reads the whole device once, and a byte loop over a large disk
        // is slow where instructions are (bare metal under an emulating hypervisor: 32 MiB
        // took a minute).
        let nonzero = |b: &[u8]| {
            let w =
                b.chunks_exact(8).position(|w| u64::from_ne_bytes(w.try_into().unwrap_or_default()) != 0)?;
            Some(w * 8 + b[w * 8..].iter().position(|x| *x != 0).unwrap_or(0))
        };
        read(dev, page, b).await?;
        let mut at = 0;
        while let Some(i) = nonzero(&b[at..]).map(|i| at + i) {
            // The sector is read once more before the device is refused: a bit flipped on the
            // way, or a read served from another sector, must not make a blank disk foreign
            // for good. Non-zero twice is data.
            let start = i / ss * ss;
            let sector = &mut b[start..start + ss];
            dev.read((page * PAGE_U64 + start as u64) / ss as u64, sector).await.map_err(OpenError::Io)?;
            if let Some(j) = nonzero(sector) {
                return Ok(Some(page * PAGE_U64 + (start + j) as u64));
            }
            at = start + ss;
        }
        page += n;
    }
    Ok(None)
}

/// Open (or format) the store on `dev`.
pub async fn open<B: Block>(
    mut dev: B,
    nonce: u64,
    cache_bytes: usize,
) -> Result<(Pager<B>, OpenReport), OpenError> {
    let info = dev.info();
    let ss = info.sector_size;
    if ss == 0 || !(PAGE as u32).is_multiple_of(ss) {
        return Err(OpenError::SectorSize(ss));
    }
    let pages = (info.size_bytes() / PAGE_U64).min(MAX_PAGES);
    if pages < MIN_PAGES {
        return Err(OpenError::TooSmall { bytes: info.size_bytes() });
    }
    let mut report = OpenReport::default();
    let mut page0 = vec![0u8; PAGE];
    read(&mut dev, 0, &mut page0).await?;
    let mut backup = vec![0u8; PAGE];
    let header = match Header::decode(&page0) {
        Ok(h) if h.pages > pages => return Err(OpenError::Shrunk { store: h.pages, device: pages }),
        Ok(h) => {
            read(&mut dev, h.pages - 1, &mut backup).await?;
            if Header::decode(&backup) != Ok(h) {
                report.damaged_records += 1;
            }
            h
        }
        Err(HeaderError::Version(v)) => return Err(OpenError::Version(v)),
        Err(HeaderError::PageSize(_)) => return Err(OpenError::Version(0)),
        Err(e) => {
            read(&mut dev, pages - 1, &mut backup).await?;
            match Header::decode(&backup) {
                // Page 0 is damaged but the copy in the last page is whole.
                Ok(h) if h.pages == pages => {
                    report.damaged_records += 1;
                    h
                }
                _ => {
                    let blank = |p: &[u8]| torn_format(p) || p.iter().all(|b| *b == 0);
                    if !(blank(&page0) && blank(&backup)) {
                        // Once more before refusing (as the zero check below does).
                        read(&mut dev, 0, &mut page0).await?;
                        read(&mut dev, pages - 1, &mut backup).await?;
                    }
                    if !(blank(&page0) && blank(&backup)) {
                        let offset = page0.iter().position(|b| *b != 0).unwrap_or(0) as u64;
                        return Err(match e {
                            HeaderError::Damaged => OpenError::HeaderDamaged,
                            _ if page0.iter().all(|b| *b == 0) => {
                                OpenError::Foreign { offset: (pages - 1) * PAGE_U64 }
                            }
                            _ => OpenError::Foreign { offset },
                        });
                    }
                    // Blank, or blank but for header writes the power cut short: format, if
                    // nothing else on the device is non-zero.
                    if let Some(offset) = first_nonzero(&mut dev, pages - 1, 1).await? {
                        return Err(if page0.iter().all(|b| *b == 0) {
                            OpenError::Foreign { offset }
                        } else {
                            OpenError::HeaderDamaged
                        });
                    }
                    if info.read_only {
                        return Err(OpenError::BlankReadOnly);
                    }
                    let h = Header { pages, nonce };
                    // The copy first: page 0 whole means both are.
                    dev.write((pages - 1) * (PAGE_U64 / u64::from(ss)), &h.encode())
                        .await
                        .map_err(OpenError::Io)?;
                    dev.flush().await.map_err(OpenError::Io)?;
                    dev.write(0, &h.encode()).await.map_err(OpenError::Io)?;
                    dev.flush().await.map_err(OpenError::Io)?;
                    report.formatted = true;
                    h
                }
            }
        }
    };
    let mut ring = vec![0u8; 2 * RING as usize * PAGE];
    read(&mut dev, 1, &mut ring).await?;
    let record = |ring: &[u8], page: usize| {
        let c = Commit::decode(&ring[page * PAGE..(page + 1) * PAGE], header.nonce)?;
        // A record read from another slot (a misdirected read) is not this slot's.
        (Commit::slot(c.seq) == 1 + (page & !1) as u64).then_some(c)
    };
    // A copy that does not decode may be a read that went wrong: read the ring once more and
    // take whichever read of each copy is whole.
    let mut copies: Vec<Option<Commit>> = (0..2 * RING as usize).map(|i| record(&ring, i)).collect();
    if copies
        .iter()
        .enumerate()
        .any(|(i, c)| c.is_none() && ring[i * PAGE..(i + 1) * PAGE].iter().any(|b| *b != 0))
    {
        let mut again = vec![0u8; ring.len()];
        read(&mut dev, 1, &mut again).await?;
        for (i, c) in copies.iter_mut().enumerate() {
            if c.is_none() {
                *c = record(&again, i);
            }
        }
        // A page that read non-zero once and zero the second time was a fault on the way: it
        // is blank, and a blank slot is no torn commit.
        for (page, second) in ring.chunks_mut(PAGE).zip(again.chunks(PAGE)) {
            if second.iter().all(|b| *b == 0) {
                page.fill(0);
            }
        }
    }
    // Each slot: its record (from either copy) and whether it holds anything at all.
    let mut slots: Vec<(Option<Commit>, bool)> = Vec::new();
    for (i, pair) in ring.chunks(2 * PAGE).enumerate() {
        let r = match (&copies[2 * i], &copies[2 * i + 1]) {
            (Some(x), Some(y)) => Some(if y.seq > x.seq { y.clone() } else { x.clone() }),
            (Some(x), None) | (None, Some(x)) => Some(x.clone()),
            (None, None) => None,
        };
        slots.push((r, pair.iter().any(|x| *x != 0)));
    }
    let newest = slots.iter().filter_map(|(r, _)| r.clone()).max_by_key(|c| c.seq);
    let slot_of = |seq: u64| ((Commit::slot(seq) - 1) / 2) as usize;
    let commit = match newest {
        Some(c) => {
            let next = &slots[slot_of(c.seq + 1)];
            report.torn_tail = next.0.is_none() && next.1;
            for i in 0..RING as usize {
                let is_tail = i == slot_of(c.seq + 1);
                if slots[i].0.is_some() && !is_tail {
                    report.damaged_records +=
                        copies[2 * i..2 * i + 2].iter().filter(|c| c.is_none()).count() as u32;
                }
            }
            c
        }
        None => {
            // Blank but for the first commit, perhaps torn: a store with nothing committed yet.
            let first = slot_of(1);
            if slots.iter().enumerate().any(|(i, (_, used))| *used && i != first) {
                return Err(OpenError::CommitsDamaged);
            }
            report.torn_tail = slots[first].1;
            Commit::empty()
        }
    };
    let mut pager = Pager::new(dev, header, &commit, cache_bytes);
    let mut tip = pager.check_tip(&commit).await?;
    let mut commit = commit;
    if tip.torn {
        // More of the newest commit's pages failed than its parity can rebuild: the power went
        // before its flush completed, so it was never acknowledged. Its record proves that its
        // parent's flush did complete: the parent is whole and is the store (if its own pages
        // fail, that is damage, reported by the walk below).
        report.torn_tail = true;
        let parent = commit.parent;
        commit = match slots.iter().filter_map(|(r, _)| r.as_ref()).find(|c| c.seq == parent) {
            Some(c) => c.clone(),
            None if parent == 0 => Commit::empty(),
            None => return Err(OpenError::CommitsDamaged),
        };
        pager = Pager::new(pager.into_dev(), header, &commit, cache_bytes);
        tip = pager.check_tip(&commit).await?;
    }
    let walk = pager.walk().await?;
    // The parity stays until the next commit is durable.
    for g in &commit.groups {
        if (FIRST_DATA..header.pages).contains(&g.parity.page) && pager.map.mark(g.parity.page) {
            pager.parity.push(g.parity.page);
        }
    }
    report.damaged_records += tip.bad_parity;
    report.repaired = tip.repaired;
    report.commit = commit.seq;
    report.damaged = walk.damaged;
    if tip.torn {
        // The acknowledged parent failed where its parity could not help: damage, reported.
        pager.rehome.clear();
    }
    Ok((pager, report))
}
