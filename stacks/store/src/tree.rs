//! The copy-on-write B+tree: lookups, ordered seeks, inserts and deletes.
//!
//! Nodes split by bytes when they outgrow a page. A node that falls under a quarter of a page
//! is merged into a neighbour when the two fit in three quarters (so an insert does not split
//! them again at once), and a root left with one child gives way to it: a tree that shrinks
//! gives its pages back and its height falls.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;

use morgana::block::Block;

use crate::format::Ptr;
use crate::leaf::Entries;
use crate::node::{CAPACITY, Node};
use crate::pager::{Fail, Pager};

/// Where a key goes in the open transaction: the dirty branches down to it, with the child taken
/// in each, and the dirty leaf.
pub struct Place {
    path: Vec<(u64, usize)>,
    leaf: u64,
}

/// What the tree holds at and just after a key, as far as the key's leaf and the branches above
/// it show.
pub enum Around<'a> {
    /// The key is bound: its value.
    Here(&'a [u8]),
    /// Not bound; the next key, in the same leaf.
    Next(&'a [u8]),
    /// Not bound, and the next key is in a later leaf: every key there is at least this one.
    After(&'a [u8]),
    /// Not bound, and no key follows it.
    End,
}

fn child_index(kids: &[(Vec<u8>, Ptr)], key: &[u8]) -> usize {
    kids.partition_point(|(k, _)| k.as_slice() <= key).saturating_sub(1)
}

/// A placeholder checksum for a dirty child: commit fills in the real one.
fn dirty_ptr(page: u64) -> Ptr {
    Ptr { page, crc: 0 }
}

impl<B: Block> Pager<B> {
    /// The value stored under exactly `key`.
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Fail> {
        let Some(mut ptr) = self.root else { return Ok(None) };
        loop {
            let node = self.node(ptr).await?;
            match &*node {
                Node::Branch { kids, .. } => ptr = kids[child_index(kids, key)].1,
                Node::Leaf(e) => return Ok(e.search(key).ok().map(|i| e.val(i).to_vec())),
            }
        }
    }

    /// The value under exactly `key` (`Ok`), or else the first key after it (`Err`, `None` at the
    /// end): one descent, without copying the value of an entry that is not the one asked for.
    pub async fn get_or_next(&mut self, key: &[u8]) -> Result<Result<Vec<u8>, Option<Vec<u8>>>, Fail> {
        let Some(mut ptr) = self.root else { return Ok(Err(None)) };
        loop {
            let node = self.node(ptr).await?;
            match &*node {
                Node::Branch { kids, .. } => ptr = kids[child_index(kids, key)].1,
                Node::Leaf(e) => match e.search(key) {
                    Ok(i) => return Ok(Ok(e.val(i).to_vec())),
                    Err(i) if i < e.len() => return Ok(Err(Some(e.key(i).to_vec()))),
                    // Past this leaf's last entry: the next one is in another leaf.
                    Err(_) => return Ok(Err(self.seek(key).await?.map(|(k, _)| k))),
                },
            }
        }
    }

    /// The first entry whose key is at least `key`.
    pub async fn seek(&mut self, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>, Fail> {
        let Some(root) = self.root else { return Ok(None) };
        // The branches above the current node, with the child taken in each.
        let mut path: Vec<(Rc<Node>, usize)> = Vec::new();
        let mut node = self.node(root).await?;
        let mut first = true;
        loop {
            match &*node {
                Node::Branch { kids, .. } => {
                    let i = if first { child_index(kids, key) } else { 0 };
                    let next = self.node(kids[i].1).await?;
                    path.push((node.clone(), i));
                    node = next;
                }
                Node::Leaf(e) => {
                    let i = if first { e.lower_bound(key) } else { 0 };
                    if i < e.len() {
                        return Ok(Some((e.key(i).to_vec(), e.val(i).to_vec())));
                    }
                    // Past this leaf: the leftmost leaf of the next subtree up the path.
                    first = false;
                    loop {
                        let Some((up, i)) = path.pop() else { return Ok(None) };
                        let Node::Branch { kids, .. } = &*up else { unreachable!("paths hold branches") };
                        if i + 1 < kids.len() {
                            let next = self.node(kids[i + 1].1).await?;
                            path.push((up.clone(), i + 1));
                            node = next;
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Up to `max` entries with keys in `from..to`.
    pub async fn range(
        &mut self,
        from: &[u8],
        to: &[u8],
        max: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, Fail> {
        let mut out = Vec::new();
        let mut at = from.to_vec();
        while out.len() < max {
            match self.seek(&at).await? {
                Some((k, v)) if k.as_slice() < to => {
                    at.clear();
                    at.extend_from_slice(&k);
                    at.push(0);
                    out.push((k, v));
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// Copy the path to `key` into the open transaction: the branch pages with the child taken
    /// in each, and the leaf page.
    pub async fn dirty_path(&mut self, key: &[u8], reserve: u64) -> Result<Place, Fail> {
        let root = match self.root {
            Some(r) => self.make_dirty(r, reserve).await?,
            None => self.add_node(Node::Leaf(Entries::new()), reserve)?,
        };
        self.root = Some(dirty_ptr(root));
        let mut path = Vec::new();
        let mut page = root;
        loop {
            let (i, kid) = match self.dirty_mut(page) {
                Node::Leaf(_) => return Ok(Place { path, leaf: page }),
                Node::Branch { kids, .. } => {
                    let i = child_index(kids, key);
                    (i, kids[i].1)
                }
            };
            let kp = self.make_dirty(kid, reserve).await?;
            if let Node::Branch { kids, .. } = self.dirty_mut(page) {
                kids[i].1 = dirty_ptr(kp);
            }
            path.push((page, i));
            page = kp;
        }
    }

    /// Copy the path to `key` into the open transaction, so that the commit writes it afresh.
    pub async fn touch(&mut self, key: &[u8], reserve: u64) -> Result<(), Fail> {
        self.dirty_path(key, reserve).await.map(|_| ())
    }

    /// What the leaf at `at`, and the branches above it, show of the tree at `key`.
    pub fn around(&self, at: &Place, key: &[u8]) -> Around<'_> {
        let Node::Leaf(e) = self.dirty_ref(at.leaf) else { return Around::End };
        match e.search(key) {
            Ok(i) => return Around::Here(e.val(i)),
            Err(i) if i < e.len() => return Around::Next(e.key(i)),
            Err(_) => {}
        }
        // Past the leaf's last entry: the next separator up the path bounds what follows.
        for (page, i) in at.path.iter().rev() {
            if let Node::Branch { kids, .. } = self.dirty_ref(*page)
                && let Some((sep, _)) = kids.get(i + 1)
            {
                return Around::After(sep);
            }
        }
        Around::End
    }

    /// Bind `key` to `val`, replacing what it held.
    pub async fn insert(&mut self, key: &[u8], val: Vec<u8>, reserve: u64) -> Result<(), Fail> {
        let at = self.dirty_path(key, reserve).await?;
        self.insert_at(at, key, val)
    }

    /// Bind `key` to `val` in the leaf at `at`, the place [`dirty_path`](Self::dirty_path) gave
    /// for `key`, splitting upwards while a node outgrows its page.
    pub fn insert_at(&mut self, at: Place, key: &[u8], val: Vec<u8>) -> Result<(), Fail> {
        let Place { mut path, leaf } = at;
        if let Node::Leaf(e) = self.dirty_mut(leaf) {
            match e.search(key) {
                Ok(i) => e.set(i, &val),
                Err(i) => e.insert(i, key, &val),
            }
        }
        let mut page = leaf;
        while self.dirty_mut(page).used() > CAPACITY {
            let (sep, right) = self.dirty_mut(page).split();
            let level = right.level() + 1;
            let rp = self.add_node(right, 0)?;
            match path.pop() {
                Some((parent, i)) => {
                    if let Node::Branch { kids, .. } = self.dirty_mut(parent) {
                        kids.insert(i + 1, (sep, dirty_ptr(rp)));
                    }
                    page = parent;
                }
                None => {
                    let kids = vec![(Vec::new(), dirty_ptr(page)), (sep, dirty_ptr(rp))];
                    let root = self.add_node(Node::Branch { level, kids }, 0)?;
                    self.root = Some(dirty_ptr(root));
                    break;
                }
            }
        }
        Ok(())
    }

    /// Merge child `i` of the dirty branch `parent` with a neighbour if the two fit in three
    /// quarters of a page; whether it did.
    async fn merge(&mut self, parent: u64, i: usize) -> Result<bool, Fail> {
        let Node::Branch { kids, .. } = self.dirty_mut(parent) else { return Ok(false) };
        let n = kids.len();
        for (left, right) in [(i.wrapping_sub(1), i), (i, i + 1)] {
            if left >= n || right >= n {
                continue;
            }
            let here = if left == i { right } else { left };
            let Node::Branch { kids, .. } = self.dirty_mut(parent) else { return Ok(false) };
            let other = kids[here].1;
            let mine = kids[i].1.page;
            let other_used = if self.is_dirty_page(other.page) {
                self.dirty_mut(other.page).used()
            } else {
                self.node(other).await?.used()
            };
            if self.dirty_mut(mine).used() + other_used > CAPACITY * 3 / 4 {
                continue;
            }
            // A full device still removes: without a page to copy the neighbour to, no merge.
            let op = match self.make_dirty(other, 0).await {
                Err(Fail::NoSpace) => return Ok(false),
                r => r?,
            };
            let Node::Branch { kids, .. } = self.dirty_mut(parent) else { return Ok(false) };
            kids[here].1 = dirty_ptr(op);
            let (lp, rp) = (kids[left].1.page, kids[right].1.page);
            let moved = core::mem::replace(self.dirty_mut(rp), Node::Leaf(Entries::new()));
            match (self.dirty_mut(lp), moved) {
                (Node::Leaf(a), Node::Leaf(b)) => a.append(&b),
                (Node::Branch { kids: a, .. }, Node::Branch { kids: b, .. }) => a.extend(b),
                _ => return Err(Fail::Corrupt(rp)),
            }
            self.drop_dirty(rp);
            if let Node::Branch { kids, .. } = self.dirty_mut(parent) {
                kids.remove(right);
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Unbind `key`; its old value, if it had one.
    pub async fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Fail> {
        if self.get(key).await?.is_none() {
            return Ok(None);
        }
        let Place { mut path, leaf } = self.dirty_path(key, 0).await?;
        let mut old = None;
        if let Node::Leaf(e) = self.dirty_mut(leaf)
            && let Ok(i) = e.search(key)
        {
            old = Some(e.remove(i));
        }
        // Drop nodes that emptied and merge nodes that fell under a quarter full into a
        // neighbour, upwards, so a tree that shrinks gives its pages back and loses height.
        let mut page = leaf;
        while let Some((parent, i)) = path.pop() {
            if self.dirty_mut(page).len() == 0 {
                self.drop_dirty(page);
                if let Node::Branch { kids, .. } = self.dirty_mut(parent) {
                    kids.remove(i);
                }
            } else if self.dirty_mut(page).used() < CAPACITY / 4 {
                if !self.merge(parent, i).await? {
                    break;
                }
            } else {
                break;
            }
            page = parent;
        }
        // A root with one child gives way to it; an empty root leaves an empty tree.
        while let Some(root) = self.root.filter(|r| self.is_dirty_page(r.page)) {
            let next = match self.dirty_mut(root.page) {
                Node::Branch { kids, .. } if kids.len() == 1 => Some(kids[0].1),
                Node::Leaf(e) if e.is_empty() => None,
                _ => break,
            };
            self.drop_dirty(root.page);
            self.root = next;
        }
        Ok(old)
    }
}
