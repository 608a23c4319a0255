//! Checking the newest commit at open, and rebuilding one lost page per group from its parity.
//!
//! A commit is one flush (see "Commit" in the crate docs): its record may be durable while some
//! of its pages are not, if the power went before the flush completed. Recovery therefore reads
//! every page the newest commit wrote, level by level from the root (a pointer says whether the
//! commit that wrote a node also wrote the child), then the value chunks its leaves name. A
//! group of pages (one tree level, or the chunks) in which one page fails is rebuilt from the
//! group's parity page; a group in which more fail means the commit did not land, and it is
//! rolled back.

use alloc::vec;
use alloc::vec::Vec;

use morgana::block::Block;

use crate::format::{CHUNKS, Commit, Ptr, crc};
use crate::node::Node;
use crate::pager::{Fail, Pager, Rehome, xor};

/// What checking the newest commit found.
#[derive(Debug, Default)]
pub struct Tip {
    /// The commit did not land whole: fall back to its parent.
    pub torn: bool,
    /// Pages that failed and were rebuilt from parity.
    pub repaired: Vec<u64>,
    /// Parity pages that failed their checksum (they were not needed, or the commit is torn).
    pub bad_parity: u32,
}

/// A page the newest commit wrote, and the key that leads to it (for chunks: their entry's).
struct Fresh {
    ptr: Ptr,
    key: Vec<u8>,
}

impl<B: Block> Pager<B> {
    /// Check every page commit `c` wrote; rebuild what can be rebuilt (into
    /// [`Pager::repaired`], with [`Pager::rehome`] saying what the next commit must rewrite).
    pub async fn check_tip(&mut self, c: &Commit) -> Result<Tip, Fail> {
        let mut tip = Tip::default();
        let mut parity = Vec::new();
        for g in &c.groups {
            match self.read_checked(g.parity).await {
                Ok(img) => parity.push((g.level, g.count, Some(img))),
                Err(Fail::Corrupt(_)) => {
                    tip.bad_parity += 1;
                    parity.push((g.level, g.count, None));
                }
                Err(e) => return Err(e),
            }
        }
        let group = |level: u8| parity.iter().find(|(l, _, _)| *l == level);
        let mut layer: Vec<Fresh> = match c.root {
            Some(ptr) if c.root_fresh => vec![Fresh { ptr, key: Vec::new() }],
            _ => Vec::new(),
        };
        let mut level = parity.iter().filter(|(l, _, _)| *l != CHUNKS).map(|(l, _, _)| *l).max();
        let mut chunks = Vec::new();
        while !layer.is_empty() {
            let Some(l) = level else { return Ok(torn(tip)) };
            let Some(images) = self.rebuild(&layer, group(l), &mut tip).await? else { return Ok(torn(tip)) };
            let mut next = Vec::new();
            for (f, img) in layer.iter().zip(&images) {
                let Some((node, fresh)) = Node::decode_fresh(img, f.ptr.page) else { return Ok(torn(tip)) };
                if node.level() != l {
                    return Ok(torn(tip));
                }
                if self.repaired.contains_key(&f.ptr.page) {
                    self.rehome.push(Rehome::Node(first_key(&node)));
                }
                match &node {
                    Node::Branch { kids, .. } => next.extend(
                        kids.iter()
                            .zip(fresh)
                            .filter(|(_, fresh)| *fresh)
                            .map(|((k, p), _)| Fresh { ptr: *p, key: k.clone() }),
                    ),
                    Node::Leaf(entries) => {
                        for (k, v) in entries.iter() {
                            let (Some(ptr), Some(seq)) =
                                (crate::keys::chunk_ptr(v), crate::keys::chunk_seq(v))
                            else {
                                continue;
                            };
                            if seq == c.seq {
                                chunks.push(Fresh { ptr, key: k.to_vec() });
                            }
                        }
                    }
                }
            }
            layer = next;
            level = l.checked_sub(1);
        }
        if !chunks.is_empty() || group(CHUNKS).is_some() {
            if self.rebuild(&chunks, group(CHUNKS), &mut tip).await?.is_none() {
                return Ok(torn(tip));
            }
            for f in &chunks {
                if self.repaired.contains_key(&f.ptr.page) {
                    self.rehome.push(Rehome::Chunk(f.key.clone()));
                }
            }
        }
        Ok(tip)
    }

    /// Read the pages of one group; rebuild one that fails from the parity. `None` if the group
    /// is not whole and cannot be made so.
    async fn rebuild(
        &mut self,
        pages: &[Fresh],
        group: Option<&(u8, u32, Option<Vec<u8>>)>,
        tip: &mut Tip,
    ) -> Result<Option<Vec<Vec<u8>>>, Fail> {
        let Some((_, count, parity)) = group else { return Ok(None) };
        if *count as usize != pages.len() {
            return Ok(None);
        }
        let mut images = Vec::with_capacity(pages.len());
        let mut bad = Vec::new();
        for (i, f) in pages.iter().enumerate() {
            match self.read_checked(f.ptr).await {
                Ok(img) => images.push(img),
                Err(Fail::Corrupt(_)) => {
                    bad.push(i);
                    images.push(Vec::new());
                }
                Err(e) => return Err(e),
            }
        }
        match (bad.as_slice(), parity) {
            ([], _) => Ok(Some(images)),
            ([i], Some(parity)) => {
                let mut img = parity.clone();
                for (j, other) in images.iter().enumerate() {
                    if j != *i {
                        xor(&mut img, other);
                    }
                }
                if crc(&img) != pages[*i].ptr.crc {
                    return Ok(None);
                }
                self.repaired.insert(pages[*i].ptr.page, img.clone());
                tip.repaired.push(pages[*i].ptr.page);
                images[*i] = img;
                Ok(Some(images))
            }
            _ => Ok(None),
        }
    }

    /// Write afresh what recovery rebuilt: copy each rebuilt node (and the path to it) and each
    /// rebuilt chunk to new pages in the open transaction, so that once it commits nothing
    /// depends on the damaged pages or on the parity that rebuilt them.
    pub async fn rehome_repaired(&mut self, reserve: u64) -> Result<(), Fail> {
        for r in core::mem::take(&mut self.rehome) {
            match r {
                Rehome::Node(key) => self.touch(&key, reserve).await?,
                Rehome::Chunk(key) => {
                    let Some(entry) = self.get(&key).await? else { continue };
                    let Some(ptr) = crate::keys::chunk_ptr(&entry) else { continue };
                    let img = self.read_checked(ptr).await?;
                    let fresh = self.write_chunk(&img, reserve).await?;
                    self.insert(&key, fresh, reserve).await?;
                    self.free(ptr.page);
                }
            }
        }
        Ok(())
    }
}

fn torn(mut tip: Tip) -> Tip {
    tip.torn = true;
    tip
}

/// A key inside `node`'s range: its first.
fn first_key(node: &Node) -> Vec<u8> {
    match node {
        Node::Leaf(e) => e.iter().next().map(|(k, _)| k.to_vec()).unwrap_or_default(),
        Node::Branch { kids, .. } => kids.first().map(|(k, _)| k.clone()).unwrap_or_default(),
    }
}
