//! The on-disk format: page size, the header page, commit records and checksums.
//!
//! Everything here is plain byte layout; the crate docs describe it for readers of an image.

use alloc::vec::Vec;

#[cfg(any(test, target_os = "none"))]
use crc::{CRC_32_ISCSI, Crc, Table};

/// Bytes per page: the unit of allocation, of a tree node and of a value chunk.
pub const PAGE: usize = 4096;
/// Page size as a u64, for offsets.
pub const PAGE_U64: u64 = PAGE as u64;
/// Commit-record slots after the header page; each slot is two pages holding the same record.
pub const RING: u64 = 32;
/// The first page that holds nodes or value chunks.
pub const FIRST_DATA: u64 = 1 + 2 * RING;
/// The smallest device the store formats: the header, the ring and 64 data pages.
pub const MIN_PAGES: u64 = FIRST_DATA + 64;
/// The largest device version 1 addresses (pages are u64 on disk; the in-RAM free map limits the
/// practical size, see the crate docs).
pub const MAX_PAGES: u64 = 1 << 32;
/// Magic at the start of the header page.
pub const MAGIC: [u8; 8] = *b"MGNSTORE";
/// Magic at the start of a commit record.
pub const COMMIT_MAGIC: [u8; 8] = *b"MGNSCOMT";
/// Magic at the start of a tree node.
pub const NODE_MAGIC: [u8; 4] = *b"MGSN";
/// The format version this build writes and reads.
pub const VERSION: u32 = 2;
/// "No page" in a pointer.
pub const NONE: u64 = u64::MAX;

// Slicing by 16: a 16 KiB table, several times faster than a byte at a time.
#[cfg(any(test, target_os = "none"))]
const CRC32C: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);

/// CRC-32C of `bytes`.
#[cfg(target_os = "none")]
pub fn crc(bytes: &[u8]) -> u32 {
    CRC32C.checksum(bytes)
}

/// CRC-32C of `bytes`: in hardware where the CPU has it (every page read and written is
/// checksummed, so this is a good part of a batch's time).
#[cfg(not(target_os = "none"))]
pub fn crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// A page address and the CRC-32C its contents must have: every pointer on disk is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ptr {
    /// Page index on the device.
    pub page: u64,
    /// CRC-32C of the whole page.
    pub crc: u32,
}

impl Ptr {
    /// The encoded size.
    pub const LEN: usize = 12;

    /// Little-endian page then CRC.
    pub fn encode(self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.page.to_le_bytes());
        out[8..12].copy_from_slice(&self.crc.to_le_bytes());
    }

    /// The inverse of [`encode`](Self::encode).
    pub fn decode(b: &[u8]) -> Self {
        Self { page: le64(&b[..8]), crc: le32(&b[8..12]) }
    }
}

/// A little-endian u64 from 8 bytes.
pub fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// A little-endian u32 from 4 bytes.
pub fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// The header page (page 0, and a copy in the store's last page), written once when the device
/// is formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Pages the store uses (the device may be larger).
    pub pages: u64,
    /// A number drawn at format time that every commit record repeats, so records left by an
    /// earlier format of the same device are never taken for this one's.
    pub nonce: u64,
}

/// Why page 0 is not a header this build can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Not the magic: some other data.
    Foreign,
    /// The magic, but a checksum that does not match.
    Damaged,
    /// Another version of the format.
    Version(u32),
    /// Another page size.
    PageSize(u32),
}

impl Header {
    /// The page image.
    pub fn encode(&self) -> [u8; PAGE] {
        let mut p = [0u8; PAGE];
        p[..8].copy_from_slice(&MAGIC);
        p[8..12].copy_from_slice(&VERSION.to_le_bytes());
        p[12..16].copy_from_slice(&(PAGE as u32).to_le_bytes());
        p[16..24].copy_from_slice(&self.pages.to_le_bytes());
        p[24..28].copy_from_slice(&(RING as u32).to_le_bytes());
        p[28..36].copy_from_slice(&self.nonce.to_le_bytes());
        let c = crc(&p[..PAGE - 4]);
        p[PAGE - 4..].copy_from_slice(&c.to_le_bytes());
        p
    }

    /// Parse page 0.
    pub fn decode(p: &[u8]) -> Result<Self, HeaderError> {
        if p[..8] != MAGIC {
            return Err(HeaderError::Foreign);
        }
        if crc(&p[..PAGE - 4]) != le32(&p[PAGE - 4..]) {
            return Err(HeaderError::Damaged);
        }
        let version = le32(&p[8..12]);
        if version != VERSION {
            return Err(HeaderError::Version(version));
        }
        let page = le32(&p[12..16]);
        if page as usize != PAGE || le32(&p[24..28]) as u64 != RING {
            return Err(HeaderError::PageSize(page));
        }
        let pages = le64(&p[16..24]);
        if !(MIN_PAGES..=MAX_PAGES).contains(&pages) {
            return Err(HeaderError::Damaged);
        }
        Ok(Self { pages, nonce: le64(&p[28..36]) })
    }
}

/// The `level` of the parity group that covers value chunks.
pub const CHUNKS: u8 = u8::MAX;
/// Parity groups a record holds at most: one per tree level and one for value chunks.
pub const MAX_GROUPS: usize = 32;
/// In an encoded child pointer, the bit that says the child was written by the same commit as
/// the node that points at it.
pub const FRESH: u64 = 1 << 63;

/// The pages one commit wrote at one tree level (or its value chunks), and the page holding
/// their XOR: any one of them that does not read back whole can be rebuilt from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// Tree level (0 for leaves), or [`CHUNKS`].
    pub level: u8,
    /// Pages in the group.
    pub count: u32,
    /// The parity page.
    pub parity: Ptr,
}

impl Group {
    const LEN: usize = 20;
}

/// A commit record: the root of the tree as of one durable commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Commit number, from 1; the record lives in ring slot `seq % RING`.
    pub seq: u64,
    /// The commit this one was made on (what recovery falls back to if this one is torn).
    pub parent: u64,
    /// The root node, if the store holds anything.
    pub root: Option<Ptr>,
    /// Whether this commit wrote the root (and so the pages below it that are marked fresh).
    pub root_fresh: bool,
    /// Where the allocator's sweep resumes.
    pub cursor: u64,
    /// Parity of the pages this commit wrote, by tree level and for value chunks.
    pub groups: Vec<Group>,
}

impl Commit {
    /// The state of a blank store.
    pub fn empty() -> Self {
        Self { seq: 0, parent: 0, root: None, root_fresh: false, cursor: FIRST_DATA, groups: Vec::new() }
    }

    /// The first of the two pages that hold the record of commit `seq`.
    pub fn slot(seq: u64) -> u64 {
        1 + 2 * (seq % RING)
    }

    /// The page image (the CRC covers the whole page, so a tear anywhere is seen).
    pub fn encode(&self, nonce: u64) -> [u8; PAGE] {
        let mut p = [0u8; PAGE];
        p[..8].copy_from_slice(&COMMIT_MAGIC);
        p[8..16].copy_from_slice(&nonce.to_le_bytes());
        p[16..24].copy_from_slice(&self.seq.to_le_bytes());
        let root = self.root.unwrap_or(Ptr { page: NONE, crc: 0 });
        root.encode(&mut p[24..36]);
        p[36..44].copy_from_slice(&self.cursor.to_le_bytes());
        p[44..52].copy_from_slice(&self.parent.to_le_bytes());
        p[52] = self.groups.len() as u8;
        p[53] = self.root_fresh as u8;
        for (i, g) in self.groups.iter().take(MAX_GROUPS).enumerate() {
            let at = 56 + i * Group::LEN;
            p[at] = g.level;
            p[at + 4..at + 8].copy_from_slice(&g.count.to_le_bytes());
            g.parity.encode(&mut p[at + 8..at + 20]);
        }
        let c = crc(&p[..PAGE - 4]);
        p[PAGE - 4..].copy_from_slice(&c.to_le_bytes());
        p
    }

    /// Parse a ring slot: `None` if it is not a whole record of this format.
    pub fn decode(p: &[u8], nonce: u64) -> Option<Self> {
        if p[..8] != COMMIT_MAGIC || le64(&p[8..16]) != nonce || crc(&p[..PAGE - 4]) != le32(&p[PAGE - 4..]) {
            return None;
        }
        let root = Ptr::decode(&p[24..36]);
        let n = p[52] as usize;
        if n > MAX_GROUPS {
            return None;
        }
        let groups = (0..n)
            .map(|i| {
                let at = 56 + i * Group::LEN;
                Group {
                    level: p[at],
                    count: le32(&p[at + 4..at + 8]),
                    parity: Ptr::decode(&p[at + 8..at + 20]),
                }
            })
            .collect();
        Some(Self {
            seq: le64(&p[16..24]),
            root: (root.page != NONE).then_some(root),
            root_fresh: p[53] == 1,
            cursor: le64(&p[36..44]),
            parent: le64(&p[44..52]),
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hardware_crc_is_the_table_crc() {
        let data: alloc::vec::Vec<u8> = (0..9000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 4095, 4096, 9000] {
            assert_eq!(crc(&data[..len]), CRC32C.checksum(&data[..len]), "length {len}");
        }
        assert_eq!(crc(b"123456789"), 0xe306_9283, "the CRC-32C check value");
    }

    #[test]
    fn header_and_commit_round_trip_and_reject_damage() {
        let h = Header { pages: 1000, nonce: 7 };
        let mut img = h.encode();
        assert_eq!(Header::decode(&img), Ok(h));
        img[17] ^= 1;
        assert_eq!(Header::decode(&img), Err(HeaderError::Damaged));
        assert_eq!(Header::decode(&[0u8; PAGE]), Err(HeaderError::Foreign));

        let c = Commit {
            seq: 9,
            parent: 8,
            root: Some(Ptr { page: 40, crc: 0xdead }),
            root_fresh: true,
            cursor: 41,
            groups: alloc::vec![
                Group { level: 0, count: 3, parity: Ptr { page: 70, crc: 5 } },
                Group { level: CHUNKS, count: 1, parity: Ptr { page: 71, crc: 6 } },
            ],
        };
        let mut img = c.encode(7);
        assert_eq!(Commit::decode(&img, 7), Some(c.clone()));
        assert_eq!(Commit::decode(&img, 8), None, "a record of another format is not ours");
        img[PAGE / 2] = 1;
        assert_eq!(Commit::decode(&img, 7), None, "a tear in the tail is seen");
    }
}
