//! Tree nodes: how a page holds sorted entries.
//!
//! A node page is a 24-byte header (magic, level, entry count, its own page address, the commit
//! that wrote it) followed by packed entries and zeros. A leaf entry is `key_len u16, val_len u16,
//! key, val`; a branch entry is `key_len u16, key, child Ptr` where the child holds the keys from
//! this entry's key (the first entry's key stands for "everything below the next").

use alloc::vec::Vec;

use crate::format::{FRESH, NODE_MAGIC, PAGE, Ptr, le64};
use crate::leaf::Entries;

/// Bytes of a node page before its entries.
pub const HEADER: usize = 24;
/// Bytes a node's entries may take.
pub const CAPACITY: usize = PAGE - HEADER;

/// One tree node, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Level 0: keys and their values.
    Leaf(Entries),
    /// Level 1 and up: separator keys and the child below each.
    Branch {
        /// Height above the leaves.
        level: u8,
        /// Separators, sorted; each child holds keys from its separator to the next one.
        kids: Vec<(Vec<u8>, Ptr)>,
    },
}

impl Node {
    /// Bytes the entries take when encoded.
    pub fn used(&self) -> usize {
        match self {
            Node::Leaf(e) => e.used(),
            Node::Branch { kids, .. } => kids.iter().map(|(k, _)| 2 + k.len() + Ptr::LEN).sum(),
        }
    }

    /// The RAM this node takes decoded: its entries' bytes, their vectors and the allocator's
    /// overhead on each (16 bytes a block, as glibc's and most allocators' headers are); a
    /// leaf's entries are two blocks.
    pub fn ram(&self) -> usize {
        const BLOCK: usize = 16;
        const VEC: usize = core::mem::size_of::<Vec<u8>>();
        let entries = match self {
            Node::Leaf(e) => 2 * BLOCK + e.ram(),
            Node::Branch { kids, .. } => kids.iter().map(|(k, _)| VEC + Ptr::LEN + BLOCK + k.len()).sum(),
        };
        64 + entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            Node::Leaf(e) => e.len(),
            Node::Branch { kids, .. } => kids.len(),
        }
    }

    /// Height above the leaves.
    pub fn level(&self) -> u8 {
        match self {
            Node::Leaf(_) => 0,
            Node::Branch { level, .. } => *level,
        }
    }

    /// Append the page image of this node at `page`, written by commit `seq`, to `out`;
    /// `fresh(child)` says which children the same commit wrote (their pointers carry
    /// [`FRESH`]).
    pub fn encode(&self, out: &mut Vec<u8>, page: u64, seq: u64, fresh: impl Fn(u64) -> bool) {
        let start = out.len();
        let p = out;
        p.extend_from_slice(&NODE_MAGIC);
        p.push(self.level());
        p.push(0);
        p.extend_from_slice(&(self.len() as u16).to_le_bytes());
        p.extend_from_slice(&page.to_le_bytes());
        p.extend_from_slice(&seq.to_le_bytes());
        match self {
            Node::Leaf(e) => {
                for (kl, vl, kv) in e.packed() {
                    p.extend_from_slice(&kl.to_le_bytes());
                    p.extend_from_slice(&vl.to_le_bytes());
                    p.extend_from_slice(kv);
                }
            }
            Node::Branch { kids, .. } => {
                for (k, ptr) in kids {
                    p.extend_from_slice(&(k.len() as u16).to_le_bytes());
                    p.extend_from_slice(k);
                    let mut b = [0u8; Ptr::LEN];
                    let flag = if fresh(ptr.page) { FRESH } else { 0 };
                    Ptr { page: ptr.page | flag, crc: ptr.crc }.encode(&mut b);
                    p.extend_from_slice(&b);
                }
            }
        }
        debug_assert!(p.len() - start <= PAGE, "a node outgrew its page");
        p.resize(start + PAGE, 0);
    }

    /// Parse a page that passed its checksum; `None` if it is not a node of `page` (a checksum
    /// collision or a bug, never trusted).
    pub fn decode(p: Vec<u8>, page: u64) -> Option<Node> {
        if p.len() != PAGE || p[..4] != NODE_MAGIC || le64(&p[8..16]) != page {
            return None;
        }
        if p[4] == 0 {
            // A leaf keeps the page it was read into as the buffer of its entries.
            let count = u16::from_le_bytes([p[6], p[7]]) as usize;
            return Entries::from_page(p, HEADER, count).map(Node::Leaf);
        }
        Some(Self::decode_fresh(&p, page)?.0)
    }

    /// [`decode`](Self::decode), and for a branch which children the commit that wrote it also
    /// wrote.
    pub fn decode_fresh(p: &[u8], page: u64) -> Option<(Node, Vec<bool>)> {
        if p.len() != PAGE || p[..4] != NODE_MAGIC || le64(&p[8..16]) != page {
            return None;
        }
        let level = p[4];
        let count = u16::from_le_bytes([p[6], p[7]]) as usize;
        let mut at = HEADER;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = p.get(at..at.checked_add(n)?)?;
            at += n;
            Some(s)
        };
        let u16_at = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]) as usize;
        if level == 0 {
            let e = Entries::from_page(p.to_vec(), HEADER, count)?;
            Some((Node::Leaf(e), Vec::new()))
        } else {
            let mut kids = Vec::with_capacity(count);
            let mut fresh = Vec::with_capacity(count);
            for _ in 0..count {
                let kl = u16_at(take(2)?);
                let k = take(kl)?.to_vec();
                let ptr = Ptr::decode(take(Ptr::LEN)?);
                fresh.push(ptr.page & FRESH != 0);
                kids.push((k, Ptr { page: ptr.page & !FRESH, crc: ptr.crc }));
            }
            Some((Node::Branch { level, kids }, fresh))
        }
    }

    /// Split an overfull node in two by bytes; the right half and its first key.
    pub fn split(&mut self) -> (Vec<u8>, Node) {
        let half = self.used() / 2;
        match self {
            Node::Leaf(e) => {
                let at = split_point(e.iter().map(|(k, v)| 4 + k.len() + v.len()), half);
                let right = e.split_off(at);
                (right.key(0).to_vec(), Node::Leaf(right))
            }
            Node::Branch { level, kids } => {
                let at = split_point(kids.iter().map(|(k, _)| 2 + k.len() + Ptr::LEN), half);
                let right = kids.split_off(at);
                (right[0].0.clone(), Node::Branch { level: *level, kids: right })
            }
        }
    }
}

/// The index that keeps at most `half` bytes on the left, and at least one entry on each side.
fn split_point(sizes: impl ExactSizeIterator<Item = usize>, half: usize) -> usize {
    let n = sizes.len();
    let mut sum = 0;
    let mut at = 0;
    for s in sizes {
        if sum + s > half {
            break;
        }
        sum += s;
        at += 1;
    }
    at.clamp(1, n - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn nodes_round_trip_and_split_within_a_page() {
        let leaf = Node::Leaf((0..60u8).map(|i| (vec![i; 20], vec![i; 40])).collect());
        let empty = Node::Leaf(Entries::new());
        let mut img = Vec::new();
        empty.encode(&mut img, 9, 1, |_| false);
        assert_eq!(Node::decode(img, 9).as_ref(), Some(&empty));
        let mut img = Vec::new();
        leaf.encode(&mut img, 77, 3, |_| false);
        assert_eq!(Node::decode(img.clone(), 77).as_ref(), Some(&leaf));
        assert_eq!(Node::decode_fresh(&img, 77).map(|(n, _)| n).as_ref(), Some(&leaf));
        assert_eq!(Node::decode(img, 78), None, "a node read from another page is refused");
        let branch = Node::Branch {
            level: 2,
            kids: vec![(vec![], Ptr { page: 5, crc: 9 }), (vec![1], Ptr { page: 6, crc: 1 })],
        };
        let mut img = Vec::new();
        branch.encode(&mut img, 4, 1, |p| p == 6);
        assert_eq!(Node::decode_fresh(&img, 4), Some((branch, vec![false, true])));
        let mut big = Node::Leaf((0..5u8).map(|i| (vec![i; 500], vec![i; 520])).collect());
        let (sep, right) = big.split();
        assert!(big.used() <= CAPACITY && right.used() <= CAPACITY);
        assert_eq!(sep, vec![big.len() as u8; 500]);
    }
}
