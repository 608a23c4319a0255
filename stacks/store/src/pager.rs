//! Pages: the free map, the node cache, the open transaction's dirty nodes, and commit.
//!
//! Nothing durable is ever overwritten in place: a node that changes is copied to a free page
//! (copy-on-write) and the page it left is freed only once the commit that stops referring to it
//! is durable, so the last durable tree is intact whatever a power cut does to the pages written
//! since.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;

use morgana::block::{Block, BlockError};

use crate::format::{CHUNKS, Commit, FIRST_DATA, Group, Header, PAGE, PAGE_U64, Ptr, crc};
use crate::node::Node;

/// Why an internal operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    /// The device failed (its error code).
    Io(i32),
    /// A page failed its checksum (the page).
    Corrupt(u64),
    /// No free page.
    NoSpace,
    /// A key longer than the format allows.
    TooLong,
}

impl From<BlockError> for Fail {
    fn from(e: BlockError) -> Self {
        match e {
            BlockError::Io(c) => Fail::Io(c),
            // A well-formed request the device refused: report it as EIO.
            _ => Fail::Io(5),
        }
    }
}

/// One bit per page: set when the page holds something the tree (durable or open) refers to.
pub struct FreeMap {
    words: Vec<u64>,
    pages: u64,
    free: u64,
    /// Where the next allocation starts looking: allocation sweeps the device round and round.
    pub cursor: u64,
}

impl FreeMap {
    fn new(pages: u64) -> Self {
        let mut m =
            Self { words: vec![0; pages.div_ceil(64) as usize], pages, free: pages, cursor: FIRST_DATA };
        for p in 0..FIRST_DATA {
            m.mark(p);
        }
        // The header's copy.
        m.mark(pages - 1);
        m
    }

    /// Whether page `p` is in use.
    pub fn is_used(&self, p: u64) -> bool {
        self.words[(p / 64) as usize] & (1 << (p % 64)) != 0
    }

    /// Mark `p` used; false if it already was (two pointers to one page).
    pub fn mark(&mut self, p: u64) -> bool {
        if self.is_used(p) {
            return false;
        }
        self.words[(p / 64) as usize] |= 1 << (p % 64);
        self.free -= 1;
        true
    }

    fn release(&mut self, p: u64) {
        if self.is_used(p) {
            self.words[(p / 64) as usize] &= !(1 << (p % 64));
            self.free += 1;
        }
    }

    /// Free pages.
    pub fn free(&self) -> u64 {
        self.free
    }

    /// The next free page at or after the cursor, leaving `reserve` pages free.
    fn take(&mut self, reserve: u64) -> Option<u64> {
        if self.free <= reserve {
            return None;
        }
        let mut p = self.cursor.clamp(FIRST_DATA, self.pages - 1);
        loop {
            let word = self.words[(p / 64) as usize];
            if word == u64::MAX {
                p = (p / 64 + 1) * 64;
            } else if !self.is_used(p) {
                self.mark(p);
                self.cursor = if p + 1 >= self.pages { FIRST_DATA } else { p + 1 };
                return Some(p);
            } else {
                p += 1;
            }
            if p >= self.pages {
                p = FIRST_DATA;
            }
        }
    }
}

/// Clean nodes by page, evicting the least recently used past a budget of bytes (the RAM the
/// decoded nodes take, [`Node::ram`]); at least four nodes are kept whatever the budget.
struct Cache {
    nodes: BTreeMap<u64, (Rc<Node>, u64, usize)>,
    by_use: BTreeMap<u64, u64>,
    tick: u64,
    budget: usize,
    bytes: usize,
}

impl Cache {
    fn new(budget: usize) -> Self {
        Self { nodes: BTreeMap::new(), by_use: BTreeMap::new(), tick: 0, budget, bytes: 0 }
    }

    fn get(&mut self, page: u64) -> Option<Rc<Node>> {
        let (node, used, _) = self.nodes.get_mut(&page)?;
        self.by_use.remove(used);
        self.tick += 1;
        *used = self.tick;
        self.by_use.insert(self.tick, page);
        Some(node.clone())
    }

    fn put(&mut self, page: u64, node: Rc<Node>) {
        self.forget(page);
        self.tick += 1;
        let ram = node.ram();
        self.bytes += ram;
        self.nodes.insert(page, (node, self.tick, ram));
        self.by_use.insert(self.tick, page);
        while self.bytes > self.budget && self.nodes.len() > 4 {
            let Some((_, old)) = self.by_use.pop_first() else { break };
            if let Some((_, _, ram)) = self.nodes.remove(&old) {
                self.bytes -= ram;
            }
        }
    }

    fn forget(&mut self, page: u64) {
        self.take(page);
    }

    fn take(&mut self, page: u64) -> Option<Rc<Node>> {
        let (node, used, ram) = self.nodes.remove(&page)?;
        self.by_use.remove(&used);
        self.bytes -= ram;
        Some(node)
    }
}

/// What an operation can be rolled back to.
pub struct Savepoint {
    root: Option<Ptr>,
    dirty: BTreeMap<u64, Rc<Node>>,
    allocated: usize,
    freed: usize,
    chunks: Chunks,
}

/// How many value chunks the open transaction wrote that its tree still refers to, and their
/// XOR (the commit's chunk parity): a fixed 4 KiB whatever the transaction writes.
#[derive(Clone)]
struct Chunks {
    count: u32,
    parity: Vec<u8>,
}

impl Chunks {
    fn new() -> Self {
        Self { count: 0, parity: vec![0; PAGE] }
    }
}

/// XOR `b` into `a`.
pub fn xor(a: &mut [u8], b: &[u8]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x ^= y);
}

/// Pages a commit may take for its parity whatever else is full: one per tree level and one for
/// chunks. A branch holds at least eight children (keys are at most 480 bytes), so 15 levels
/// cover more leaves than the format has pages.
pub const PARITY_RESERVE: u64 = 16;

/// Pages a commit writes at most in one write.
const RUN: usize = 64;

/// A page of the newest commit that recovery rebuilt from parity, to be written afresh by the
/// next commit: the key that leads to it.
#[derive(Debug, Clone)]
pub enum Rehome {
    /// A node holding this key.
    Node(Vec<u8>),
    /// The chunk entry at this key.
    Chunk(Vec<u8>),
}

/// The device seen as pages, with the tree's root.
pub struct Pager<B> {
    /// The device.
    pub dev: B,
    per_page: u64,
    /// The header the device was formatted with.
    pub header: Header,
    /// The root of the open transaction's tree.
    pub root: Option<Ptr>,
    /// The last durable commit.
    pub seq: u64,
    /// Which pages are in use.
    pub map: FreeMap,
    dirty: BTreeMap<u64, Rc<Node>>,
    cache: Cache,
    allocated: Vec<u64>,
    freed: Vec<u64>,
    chunks: Chunks,
    /// The parity pages of the last durable commit: kept until the next one is durable.
    pub parity: Vec<u64>,
    /// Images of the newest commit's pages that recovery rebuilt, served instead of the device
    /// until a commit has written them elsewhere.
    pub repaired: BTreeMap<u64, Vec<u8>>,
    /// What the next transaction must write afresh (the rebuilt pages).
    pub rehome: Vec<Rehome>,
}

impl<B: Block> Pager<B> {
    /// A pager over a formatted device with no tree walked yet.
    pub fn new(dev: B, header: Header, commit: &Commit, cache_bytes: usize) -> Self {
        let per_page = PAGE_U64 / u64::from(dev.info().sector_size);
        let mut map = FreeMap::new(header.pages);
        map.cursor = commit.cursor;
        Self {
            dev,
            per_page,
            header,
            root: commit.root,
            seq: commit.seq,
            map,
            dirty: BTreeMap::new(),
            cache: Cache::new(cache_bytes),
            allocated: Vec::new(),
            freed: Vec::new(),
            chunks: Chunks::new(),
            parity: Vec::new(),
            repaired: BTreeMap::new(),
            rehome: Vec::new(),
        }
    }

    /// Read `buf.len() / PAGE` pages from `page`.
    pub async fn read_pages(&mut self, page: u64, buf: &mut [u8]) -> Result<(), Fail> {
        Ok(self.dev.read(page * self.per_page, buf).await?)
    }

    /// Write whole pages from `page`.
    pub async fn write_pages(&mut self, page: u64, buf: &[u8]) -> Result<(), Fail> {
        Ok(self.dev.write(page * self.per_page, buf).await?)
    }

    /// A page whose contents must have the checksum in `ptr`.
    pub async fn read_checked(&mut self, ptr: Ptr) -> Result<Vec<u8>, Fail> {
        if ptr.page < FIRST_DATA || ptr.page >= self.header.pages {
            return Err(Fail::Corrupt(ptr.page));
        }
        if let Some(img) = self.repaired.get(&ptr.page) {
            return if crc(img) == ptr.crc { Ok(img.clone()) } else { Err(Fail::Corrupt(ptr.page)) };
        }
        let mut buf = vec![0u8; PAGE];
        // A page that fails its checksum is read once more: a fault on the way (a flipped bit
        // in transfer, a read served from the wrong sector) reads right the second time, damage
        // at rest does not, and only that is reported.
        for _ in 0..2 {
            self.read_pages(ptr.page, &mut buf).await?;
            if crc(&buf) == ptr.crc {
                return Ok(buf);
            }
        }
        Err(Fail::Corrupt(ptr.page))
    }

    /// The node at `ptr`, from the open transaction, the cache or the device.
    pub async fn node(&mut self, ptr: Ptr) -> Result<Rc<Node>, Fail> {
        if let Some(n) = self.dirty.get(&ptr.page) {
            return Ok(n.clone());
        }
        if let Some(n) = self.cache.get(ptr.page) {
            return Ok(n);
        }
        let node = self.load(ptr).await?;
        self.cache.put(ptr.page, node.clone());
        Ok(node)
    }

    /// The node at `ptr`, read from the device.
    async fn load(&mut self, ptr: Ptr) -> Result<Rc<Node>, Fail> {
        let buf = self.read_checked(ptr).await?;
        Ok(Rc::new(Node::decode(buf, ptr.page).ok_or(Fail::Corrupt(ptr.page))?))
    }

    /// A free page for this transaction, leaving `reserve` pages for removals.
    pub fn allocate(&mut self, reserve: u64) -> Result<u64, Fail> {
        let p = self.map.take(reserve + PARITY_RESERVE).ok_or(Fail::NoSpace)?;
        self.allocated.push(p);
        Ok(p)
    }

    /// `page` is no longer referred to by the open transaction; it is reused after the commit.
    pub fn free(&mut self, page: u64) {
        self.freed.push(page);
    }

    /// Write a value chunk to a new page now (it is referred to only once its leaf commits);
    /// the entry that points at it.
    pub async fn write_chunk(&mut self, data: &[u8], reserve: u64) -> Result<Vec<u8>, Fail> {
        let page = self.allocate(reserve)?;
        self.write_pages(page, data).await?;
        xor(&mut self.chunks.parity, data);
        self.chunks.count += 1;
        Ok(crate::keys::chunk_entry(Ptr { page, crc: crc(data) }, self.seq + 1))
    }

    /// The chunk that `entry` names is no longer referred to by the open transaction. If this
    /// transaction wrote it (the entry carries its commit number), it leaves the commit's chunk
    /// parity (read back to take it out).
    pub async fn free_chunk(&mut self, entry: &[u8]) -> Result<(), Fail> {
        let (Some(ptr), Some(seq)) = (crate::keys::chunk_ptr(entry), crate::keys::chunk_seq(entry)) else {
            return Ok(());
        };
        if seq == self.seq + 1 {
            let img = self.read_checked(ptr).await?;
            xor(&mut self.chunks.parity, &img);
            self.chunks.count -= 1;
        }
        self.free(ptr.page);
        Ok(())
    }

    /// The page of a node the open transaction may change: `ptr` itself if the transaction
    /// already copied it, else a copy on a new page.
    pub async fn make_dirty(&mut self, ptr: Ptr, reserve: u64) -> Result<u64, Fail> {
        if self.dirty.contains_key(&ptr.page) {
            return Ok(ptr.page);
        }
        // The old page is freed by this commit, so it leaves the cache (or, read now, never
        // enters it): a cached copy would only make the dirty node shared, to be cloned when
        // first changed, and push a node that stays out of the cache.
        let node = match self.cache.take(ptr.page) {
            Some(n) => n,
            None => self.load(ptr).await?,
        };
        let page = match self.allocate(reserve) {
            Ok(p) => p,
            Err(f) => {
                self.cache.put(ptr.page, node);
                return Err(f);
            }
        };
        self.dirty.insert(page, node);
        self.free(ptr.page);
        Ok(page)
    }

    /// A new node on a new page.
    pub fn add_node(&mut self, node: Node, reserve: u64) -> Result<u64, Fail> {
        let page = self.allocate(reserve)?;
        self.dirty.insert(page, Rc::new(node));
        Ok(page)
    }

    /// A dirty node to change in place.
    pub fn dirty_mut(&mut self, page: u64) -> &mut Node {
        Rc::make_mut(self.dirty.get_mut(&page).expect("the node was made dirty"))
    }

    /// A dirty node, to look at.
    pub fn dirty_ref(&self, page: u64) -> &Node {
        self.dirty.get(&page).expect("the node was made dirty")
    }

    /// Whether `page` holds a node of the open transaction.
    pub fn is_dirty_page(&self, page: u64) -> bool {
        self.dirty.contains_key(&page)
    }

    /// Drop a dirty node that the tree no longer refers to.
    pub fn drop_dirty(&mut self, page: u64) {
        self.dirty.remove(&page);
        self.free(page);
    }

    /// Where a failed operation can roll back to.
    pub fn savepoint(&self) -> Savepoint {
        Savepoint {
            root: self.root,
            dirty: self.dirty.clone(),
            allocated: self.allocated.len(),
            freed: self.freed.len(),
            chunks: self.chunks.clone(),
        }
    }

    /// Undo everything since `sp`.
    pub fn rollback(&mut self, sp: Savepoint) {
        self.root = sp.root;
        self.dirty = sp.dirty;
        for p in self.allocated.drain(sp.allocated..) {
            self.map.release(p);
        }
        self.freed.truncate(sp.freed);
        self.chunks = sp.chunks;
    }

    /// Make the open transaction durable: write its nodes, their parity and the commit record,
    /// then flush once. Returns the bytes written.
    pub async fn commit(&mut self) -> Result<u64, Fail> {
        let seq = self.seq + 1;
        let mut order: Vec<(u8, u64)> = self.dirty.iter().map(|(p, n)| (n.level(), *p)).collect();
        order.sort_unstable();
        // Children before parents, so each parent records its children's checksums. Each image
        // is made in the run being written, so a commit holds one run of pages, not all of them.
        let mut sums: BTreeMap<u64, u32> = BTreeMap::new();
        let mut parity: BTreeMap<u8, (u32, Vec<u8>)> = BTreeMap::new();
        let mut written = 0u64;
        let mut run: Vec<u8> = Vec::with_capacity(RUN * PAGE);
        let mut run_start = 0u64;
        for (level, page) in order {
            // Neighbouring pages go down in one write, in runs of at most RUN pages.
            if !run.is_empty() && (run_start + (run.len() / PAGE) as u64 != page || run.len() >= RUN * PAGE) {
                self.write_pages(run_start, &run).await?;
                written += run.len() as u64;
                run.clear();
            }
            if run.is_empty() {
                run_start = page;
            }
            let node = Rc::make_mut(self.dirty.get_mut(&page).expect("listed"));
            if let Node::Branch { kids, .. } = node {
                for (_, kid) in kids.iter_mut() {
                    if let Some(c) = sums.get(&kid.page) {
                        kid.crc = *c;
                    }
                }
            }
            let at = run.len();
            node.encode(&mut run, page, seq, |kid| sums.contains_key(&kid));
            let img = &run[at..];
            let (count, xored) = parity.entry(level).or_insert_with(|| (0, vec![0; PAGE]));
            *count += 1;
            xor(xored, img);
            sums.insert(page, crc(img));
        }
        if !run.is_empty() {
            self.write_pages(run_start, &run).await?;
            written += run.len() as u64;
        }
        drop(run);
        let root_fresh = self.root.is_some_and(|r| sums.contains_key(&r.page));
        if let Some(root) = self.root.as_mut()
            && let Some(c) = sums.get(&root.page)
        {
            root.crc = *c;
        }
        let chunks = core::mem::replace(&mut self.chunks, Chunks::new());
        if chunks.count > 0 {
            parity.insert(CHUNKS, (chunks.count, chunks.parity));
        }
        // Each parity page goes down in a write of its own, so that no single misdirected or
        // lost write takes a page and its parity together.
        let mut groups = Vec::new();
        for (level, (count, img)) in parity {
            let page = match self.map.take(0) {
                Some(p) => p,
                None => return Err(Fail::NoSpace),
            };
            self.allocated.push(page);
            self.write_pages(page, &img).await?;
            written += PAGE_U64;
            groups.push(Group { level, count, parity: Ptr { page, crc: crc(&img) } });
        }
        let parity_pages: Vec<u64> = groups.iter().map(|g| g.parity.page).collect();
        let record =
            Commit { seq, parent: self.seq, root: self.root, root_fresh, cursor: self.map.cursor, groups }
                .encode(self.header.nonce);
        // The two copies in two writes: a write that lands on the wrong sectors (a misdirected
        // write) takes one copy, never both, so a commit is not silently lost to one.
        self.write_pages(Commit::slot(seq), &record).await?;
        self.write_pages(Commit::slot(seq) + 1, &record).await?;
        // The one flush: nodes, chunks, parity and record are durable together (see "Commit" in
        // the crate docs for why recovery can still tell a torn commit from damage).
        self.dev.flush().await?;
        written += 2 * PAGE_U64;
        // Durable: the pages the old tree used are free now, and so is the previous commit's
        // parity; the new nodes are clean.
        self.seq = seq;
        let old_parity = core::mem::replace(&mut self.parity, parity_pages);
        for p in core::mem::take(&mut self.freed).into_iter().chain(old_parity) {
            self.cache.forget(p);
            self.map.release(p);
            self.repaired.remove(&p);
        }
        self.allocated.clear();
        // The new nodes go to the cache, branches last (they are what the next lookups read
        // first); of a commit larger than the cache, only what it can hold.
        let mut clean: Vec<(u64, Rc<Node>)> = core::mem::take(&mut self.dirty).into_iter().collect();
        clean.sort_by_key(|(_, n)| core::cmp::Reverse(n.level()));
        let (mut room, mut fit) = (self.cache.budget, 0);
        for (_, n) in &clean {
            match room.checked_sub(n.ram()) {
                Some(r) => (room, fit) = (r, fit + 1),
                None => break,
            }
        }
        for (page, node) in clean.into_iter().take(fit.max(4)).rev() {
            self.cache.put(page, node);
        }
        Ok(written)
    }

    /// Walk the durable tree at open: mark every page it uses and check every node's and
    /// chunk's checksum. A page that fails is corruption of committed data (the newest commit's
    /// own pages were checked, and rebuilt where they could be, before): it is listed, and what
    /// is below it is unreadable.
    pub async fn walk(&mut self) -> Result<Walk, Fail> {
        let mut walk = Walk::default();
        let mut stack: Vec<Ptr> = self.root.into_iter().collect();
        while let Some(ptr) = stack.pop() {
            if ptr.page < FIRST_DATA || ptr.page >= self.header.pages || !self.map.mark(ptr.page) {
                walk.damaged.push(ptr.page);
                continue;
            }
            let buf = match self.read_checked(ptr).await {
                Ok(b) => b,
                Err(Fail::Corrupt(p)) => {
                    walk.damaged.push(p);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(node) = Node::decode(buf, ptr.page) else {
                walk.damaged.push(ptr.page);
                continue;
            };
            match &node {
                Node::Branch { kids, .. } => stack.extend(kids.iter().map(|(_, p)| *p)),
                Node::Leaf(entries) => {
                    for (_, v) in entries.iter() {
                        let Some(chunk) = crate::keys::chunk_ptr(v) else { continue };
                        let placed = chunk.page >= FIRST_DATA
                            && chunk.page < self.header.pages
                            && self.map.mark(chunk.page);
                        if !placed {
                            walk.damaged.push(chunk.page);
                        }
                    }
                }
            }
            self.cache.put(ptr.page, Rc::new(node));
        }
        Ok(walk)
    }

    /// The device, to open again from another commit.
    pub fn into_dev(self) -> B {
        self.dev
    }
}

/// What [`Pager::walk`] found.
#[derive(Debug, Default)]
pub struct Walk {
    /// Committed pages that failed their checksum.
    pub damaged: Vec<u64>,
}
