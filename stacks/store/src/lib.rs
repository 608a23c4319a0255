//! # morgana-store: a crash-safe, checksummed key-value store over any `Block`
//!
//! [`Store`] implements [`KvRw`] (Mirage_kv semantics) on any [`Block`]: a file, virtio-blk, a
//! RAM disk. Every operation that changes the store is durable when it returns (there is a
//! flush barrier inside), writers that arrive while a commit is under way are committed
//! together by the next one (group commit), and [`Store::batch`] applies many changes all or
//! nothing. `no_std` + `alloc`, no unsafe code.
//!
//! ```
//! use morgana::{Key, KvRo, KvRw};
//! use morgana_store::{Batch, Store};
//!
//! let time = morgana_rt::VirtualTime::new();
//! let exec = morgana_rt::Executor::new(time.clone());
//! let clock = exec.handle();
//! exec.block_on(&mut time.park(), async {
//!     // A zeroed device is formatted on first use.
//!     let store = Store::open(morgana_mem::MemBlock::new(512, 2048), clock).await.unwrap();
//!     let k = |s| Key::parse(s).unwrap();
//!     store.set(&k("/config/name"), b"morgana").await.unwrap();
//!     let mut batch = Batch::new();
//!     batch.set(k("/accounts/a"), b"90".to_vec()).set(k("/accounts/b"), b"110".to_vec());
//!     store.batch(&batch).await.unwrap(); // both or neither, after any power cut
//!     assert_eq!(store.get(&k("/accounts/b")).await.unwrap(), b"110");
//! }).unwrap();
//! ```
//!
//! ## Guarantees
//!
//! - **Acknowledged means durable.** After `set` (or any write, or a batch) returns `Ok`, a power
//!   cut does not lose it. An operation cut off before it returns is either wholly there or
//!   wholly absent after recovery, never half applied.
//! - **Every byte is checksummed.** Every page the store reads is checked against a CRC-32C held
//!   by whatever points at it (the commit record for the root, a branch for its children, a leaf
//!   for a value chunk), so bit rot, a misdirected write and a read of the wrong sector are seen:
//!   they are reported as [`KvError::Corrupt`], never returned as data.
//! - **Torn tail vs corruption, with one flush a commit.** A commit the power cut short is the
//!   *torn tail*: recovery rolls back to the previous commit silently (that commit was never
//!   acknowledged). A page of the newest commit that fails alone in its group is rebuilt from
//!   the commit's parity ([`OpenReport::repaired`]), so damage there loses nothing. Any other
//!   page of a committed tree that fails its checksum is corruption: it is listed in
//!   [`OpenReport::damaged`] or met on a read, operations that need it fail with
//!   [`KvError::Corrupt`], and everything else keeps being served. "Commit" below says why the
//!   two cannot be confused, and the one case (two faults in the newest commit) that is.
//! - **Recovery writes nothing.** Opening a store only reads (a power cut during recovery cannot
//!   make things worse); the only write at open is formatting an all-zero device.
//! - **Foreign data is never overwritten.** A device is formatted only if every byte of it is
//!   zero; anything else that is not this format is refused with a one-line [`OpenError`].
//!
//! ## On-disk format (version 2)
//!
//! The device is cut into 4096-byte pages (the sector size must divide 4096). All integers are
//! little-endian unless said otherwise; every checksum is CRC-32C (Castagnoli), computed with the
//! CPU's CRC instructions on hosted targets and a table on bare metal.
//!
//! | pages | what |
//! |---|---|
//! | 0 | header: magic `MGNSTORE`, version `u32` (2), page size `u32` (4096), pages `u64`, ring slots `u32` (32), format nonce `u64`, zeros, CRC of the rest of the page in its last 4 bytes. Written once, at format. |
//! | 1..65 | commit ring: 32 slots of two pages; commit *n* goes to slot *n* mod 32, the same record in both pages |
//! | 65..pages−1 | tree nodes, value chunks and parity pages, allocated copy-on-write |
//! | pages−1 | a copy of the header (written first at format; used when page 0 is damaged) |
//!
//! A **commit record** is magic `MGNSCOMT`, the format nonce, the commit number `u64`, the root
//! pointer (page `u64`, CRC `u32`; page `u64::MAX` for an empty store), the allocator's cursor
//! `u64`, the parent commit `u64`, the number of parity groups `u8`, whether this commit wrote
//! the root `u8`, two zeros, then the groups (20 bytes each: level `u8`, 255 for value chunks,
//! three zeros, pages in the group `u32`, parity page `u64`, its CRC `u32`), zeros, and a CRC of
//! the whole page in its last 4 bytes. The newest record whose CRC and nonce match (either copy)
//! is where recovery starts.
//!
//! A **node** is a page: magic `MGSN`, level `u8` (0 = leaf), a zero byte, entry count `u16`,
//! its own page number `u64`, the commit that wrote it `u64`, then packed entries, then zeros.
//! A leaf entry is `key_len u16, val_len u16, key, val`; a branch entry is `key_len u16, key,
//! child page u64, child CRC u32`, and the child holds the keys from its key up to the next
//! entry's (the first child also everything below). The top bit of the child page is set when
//! the commit that wrote the branch also wrote the child (the child is *fresh*).
//!
//! **Keys.** The path `/a/b` is the tree key `a 0x00 b` (segments hold no NUL, so byte order is
//! the order of [`Key`]s and a dictionary is one key range); at most 480 bytes. Each value has a
//! meta entry under its path: tag `u8` (0 inline, 1 chunked), size `u64`, modification time
//! `u64` (ns since the POSIX epoch), and for an inline value (up to 512 bytes) the bytes. A
//! larger value lives in 4096-byte chunks: chunk *i* is the entry `path 0x00 0x00 i (u64
//! big-endian)` holding tag 2, page `u64`, the chunk page's CRC `u32` and the commit that
//! wrote it `u64`. A chunk of zeros is not stored, so `allocate` and sparse `set_partial` cost
//! no data pages.
//!
//! **Commit: one flush.** A transaction copies every node it changes to a free page and writes
//! new value chunks to free pages as it goes. Commit then writes the new nodes (children first,
//! so each parent holds its children's CRCs and fresh bits); a **parity page** for each tree
//! level it wrote and one for its value chunks, each the XOR of every page of that group and
//! each in a write of its own; and the record. Then it flushes once, and the operation returns.
//! Nothing the previous commit uses, its tree or its parity, is overwritten before that flush
//! completes: a page is reused only once the commit that stopped using it is durable, and a
//! commit's parity is freed by the next commit.
//!
//! **Recovery** takes the newest whole record *N* and reads every page *N* wrote: from the root
//! if *N* wrote it, down the fresh pointers level by level, then the chunks whose entries carry
//! *N*. In each group, if every page is whole, good; if one page fails and the parity is whole,
//! the page is rebuilt as the XOR of the parity and the group's other pages, checked against the
//! CRC its parent holds, and served from RAM until the next commit writes it to a new page
//! ([`OpenReport::repaired`]); otherwise *N* is torn, and the store is *N*'s parent, silently
//! ([`OpenReport::torn_tail`]).
//!
//! **Why one flush still tells a torn commit from damage:**
//!
//! 1. *N*'s record is written after *N* − 1's flush returned. A whole record *N* therefore
//!    proves that every earlier commit's pages reached the device whole: any of them that fails
//!    later is damage, reported ([`OpenReport::damaged`], [`KvError::Corrupt`]), never rolled
//!    back. (This is why recovery can fall back to *N* − 1 when *N* is torn: it is whole.)
//! 2. Only *N*'s own pages can fail from a power cut, and recovery knows exactly which they are
//!    (fresh pointers, the chunk entries' commit numbers), so an older page that rotted under a
//!    node *N* rewrote is damage, not a tear.
//! 3. If *N* was acknowledged, its flush completed and each of its pages was whole; to fail, a
//!    page must since have met a fault: rot, or a misdirected or lost write that the device
//!    acknowledged. One such page per group is rebuilt, so an acknowledged commit is neither
//!    lost nor rolled back. A page and its parity never share a write, so one misdirected or
//!    lost write cannot take both.
//! 4. What remains: two faults among the pages of one group of *N* (or a page and its parity)
//!    between *N*'s flush and the next commit's record, after which fact 1 covers *N*. Recovery
//!    takes that for a torn commit. Stores that commit with one flush (redb, LMDB, SQLite's
//!    WAL) take any damage to their newest commit for a torn one; the previous version of this
//!    format flushed twice a commit to close even this case, at half the commit rate.
//!
//! A commit writes its nodes, one parity page per level it changed (for a level of one page, as
//! in a single-key commit, the parity is a copy of that page) plus one for its chunks, and its
//! record twice, in two writes (a misdirected write takes one copy, never the commit): a
//! single-key commit on a two-level tree is six pages and one flush.
//!
//! ## Limits
//!
//! - Largest value: 2^64 − 1 bytes in the format; in practice the device's free space (values
//!   are sparse: zeros cost nothing).
//! - Largest device: 2^32 pages (16 TiB); the free map in RAM takes one bit per page (see below).
//! - Keys per dictionary: unlimited by the format (a B+tree, not a directory block), bounded by
//!   space; a key is at most 480 bytes of path.
//! - Smallest device: 129 pages (516 KiB).
//! - Largest transaction (a batch, or one large value): bounded by the RAM its changed nodes take
//!   (see "Memory") and by free space; 16 pages are always kept for removals and 16 for a
//!   commit's parity.
//! - Damage to page 0 is survived through the copy in the last page, as long as the device has
//!   not grown since it was formatted.
//!
//! ## Memory
//!
//! RAM is fixed + transaction + cache:
//!
//! - **Fixed:** the free map, one bit per device page (32 KiB per GiB of device), and the
//!   commit's chunk parity (4 KiB). While opening only: the commit ring (256 KiB, twice that if
//!   a record must be read again) and the pages of the newest commit being checked; after it,
//!   the pages rebuilt from parity (4 KiB each, normally none) until the next commit.
//! - **Transaction:** the nodes a transaction changes, decoded, until it commits (a single-key
//!   change: its path, two to four nodes; a batch: every leaf it touches; a large value: a
//!   60-byte chunk entry per 4 KiB chunk, about 1.5 % of the bytes written), and while it
//!   commits one run of up to 64 page images being written (each image is made in the run).
//! - **Cache:** [`Options::cache_bytes`] (default 256 KiB) of clean decoded nodes between
//!   operations, counted by the RAM they take (a leaf's keys and values in one buffer, a
//!   branch's separators, and each allocation's header), least recently used first out; at
//!   least four nodes whatever it says.
//!
//! Values are never held whole by the store: `get_partial` reads only the chunks that cover the
//! range, one page at a time, into the result the caller asked for; `set_partial` reads and
//! rewrites only the chunks it covers, one page at a time; `digest` reads 256 KiB at a time.
//! (`get` and `set` pass whole values because their signatures do.) The index is the tree on
//! the device, so a store may have far more keys than RAM could index.
//!
//! ## Opening
//!
//! Open reads the header, the commit ring, every page the newest commit wrote (to tell a torn
//! commit from damage, above) and then every node of the tree, but no value chunk: the walk
//! rebuilds the free map, which is not kept on the device, and checks every node's checksum,
//! so damage is reported at open. Its cost is therefore that of reading the index (for small
//! values about one page per 20 keys), not O(depth). Making it O(depth) needs the free map on
//! the device: a copy-on-write bitmap (a page per 128 MiB of device) whose changed pages each
//! commit writes too, one or two more pages a commit, and damage to it answered by a walk.
//! That is not done yet.
//!
//! ## Space and wear
//!
//! Space freed by an overwrite, a remove or a rename is reused after the next commit, while the
//! store runs: a writer that rewrites the same keys forever never fills the device. Allocation
//! sweeps the device from a cursor that survives restarts (it is in each commit record), taking
//! the next free page after the last one taken, so writes move round the whole device instead of
//! rewriting the same pages; commit records rotate through 32 slots. Nodes are split when full,
//! merged into a neighbour when they fall under a quarter full and the two fit in three
//! quarters, and a root with one child gives way to it, so a tree that shrinks gives its pages
//! back and its height falls.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod exercise;
mod format;
mod keys;
mod leaf;
mod node;
mod open;
mod ops;
mod pager;
mod parity;
mod tree;

use alloc::vec::Vec;
use core::time::Duration;

use morgana::block::Block;
use morgana::kv::{Key, Kind, KvError, KvRo, KvRw};
use morgana::time::WallClock;

pub use open::{OpenError, OpenReport};
pub use ops::Op;

use morgana::sync::Lock;
use pager::{Fail, Pager};

/// The error code (ENAMETOOLONG) of a key whose path is longer than the format allows.
pub const ENAMETOOLONG: i32 = 36;

/// How to open a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// RAM for decoded tree nodes kept between operations, in bytes (at least four nodes are
    /// kept whatever it says). See "Memory" in the crate docs.
    pub cache_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { cache_bytes: 256 * 1024 }
    }
}

/// What the store has done since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Commits made (each is one flush).
    pub commits: u64,
    /// Bytes written to the device by commits and value chunks.
    pub bytes_written: u64,
    /// Pages free now.
    pub free_pages: u64,
    /// Pages the store uses in all.
    pub pages: u64,
}

struct State<B> {
    pager: Pager<B>,
    /// The transaction writers are adding to.
    open_txn: u64,
    /// The last transaction made durable.
    committed: u64,
    /// Set when a commit failed: the device's error code; the store must be reopened.
    failed: Option<i32>,
    read_only: bool,
    stats: Stats,
}

/// A crash-safe key-value store on a [`Block`]; see the crate docs.
pub struct Store<B, C> {
    state: Lock<State<B>>,
    clock: C,
    report: OpenReport,
}

/// Changes applied together by [`Store::batch`]: all of them, or (on any error, or a power cut)
/// none.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    ops: Vec<Owned>,
}

#[derive(Debug, Clone)]
enum Owned {
    Set(Key, Vec<u8>),
    SetPartial(Key, u64, Vec<u8>),
    Remove(Key),
    Rename(Key, Key),
    Allocate(Key, u64),
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bind `key` to `value`.
    pub fn set(&mut self, key: Key, value: Vec<u8>) -> &mut Self {
        self.ops.push(Owned::Set(key, value));
        self
    }

    /// Write `data` at `offset` in the value at `key`.
    pub fn set_partial(&mut self, key: Key, offset: u64, data: Vec<u8>) -> &mut Self {
        self.ops.push(Owned::SetPartial(key, offset, data));
        self
    }

    /// Remove what is bound to `key`.
    pub fn remove(&mut self, key: Key) -> &mut Self {
        self.ops.push(Owned::Remove(key));
        self
    }

    /// Move what is bound to `source` to `dest`.
    pub fn rename(&mut self, source: Key, dest: Key) -> &mut Self {
        self.ops.push(Owned::Rename(source, dest));
        self
    }

    /// Bind `key` to `size` zero bytes.
    pub fn allocate(&mut self, key: Key, size: u64) -> &mut Self {
        self.ops.push(Owned::Allocate(key, size));
        self
    }

    /// Number of changes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn views(&self) -> Vec<Op<'_>> {
        self.ops
            .iter()
            .map(|o| match o {
                Owned::Set(k, v) => Op::Set(k, v),
                Owned::SetPartial(k, o, d) => Op::SetPartial(k, *o, d),
                Owned::Remove(k) => Op::Remove(k),
                Owned::Rename(s, d) => Op::Rename(s, d),
                Owned::Allocate(k, n) => Op::Allocate(k, *n),
            })
            .collect()
    }
}

impl<B: Block, C: WallClock> Store<B, C> {
    /// Open the store on `dev` (formatting it if it is all zeros), stamping times from `clock`.
    pub async fn open(dev: B, clock: C) -> Result<Self, OpenError> {
        Self::open_with(dev, clock, Options::default()).await
    }

    /// [`open`](Self::open) with options.
    pub async fn open_with(dev: B, clock: C, options: Options) -> Result<Self, OpenError> {
        let read_only = dev.info().read_only;
        let nonce = clock.now_unix().as_nanos() as u64;
        let (pager, report) = open::open(dev, nonce, options.cache_bytes).await?;
        let stats = Stats { free_pages: pager.map.free(), pages: pager.header.pages, ..Stats::default() };
        let state = State { pager, open_txn: 1, committed: 0, failed: None, read_only, stats };
        Ok(Self { state: Lock::new(state), clock, report })
    }

    /// What recovery found when the store was opened.
    pub fn report(&self) -> &OpenReport {
        &self.report
    }

    /// Counters since the store was opened.
    pub async fn stats(&self) -> Stats {
        let g = self.state.lock().await;
        Stats { free_pages: g.pager.map.free(), ..g.stats }
    }

    /// Apply every change in `batch` atomically and durably: on any error none is applied.
    pub async fn batch(&self, batch: &Batch) -> Result<(), KvError> {
        self.write(&batch.views()).await
    }

    /// Apply `ops` in order as one atomic, durable change (what [`batch`](Self::batch) does
    /// without owning the keys and values).
    pub async fn apply(&self, ops: &[Op<'_>]) -> Result<(), KvError> {
        self.write(ops).await
    }

    /// The pages the store uses now (header, commit ring, tree, value chunks), in order: for
    /// scrubbing tools and fault-injection tests.
    pub async fn pages_in_use(&self) -> Vec<u64> {
        let g = self.state.lock().await;
        (0..g.pager.header.pages).filter(|p| g.pager.map.is_used(*p)).collect()
    }

    /// Give the device back.
    pub fn into_inner(self) -> B {
        self.state.into_inner().pager.dev
    }

    async fn write(&self, ops: &[Op<'_>]) -> Result<(), KvError> {
        let txn = {
            let mut g = self.state.lock().await;
            if g.read_only {
                return Err(KvError::ReadOnly);
            }
            if let Some(code) = g.failed {
                return Err(KvError::Io(code));
            }
            let mtime = self.clock.now_unix().as_nanos() as u64;
            // Pages recovery rebuilt from parity go to new pages in the first commit after it.
            if !g.pager.rehome.is_empty() {
                let sp = g.pager.savepoint();
                let rehome = g.pager.rehome.clone();
                if let Err(f) = g.pager.rehome_repaired(ops::RESERVE).await {
                    g.pager.rollback(sp);
                    g.pager.rehome = rehome;
                    return Err(f.at(&Key::root()));
                }
            }
            g.pager.apply_all(ops, mtime).await?;
            g.open_txn
        };
        // Writers that queued behind us have added to the same transaction by now: whoever
        // reaches the device first commits for all of them.
        let mut g = self.state.lock().await;
        if g.committed >= txn {
            return Ok(());
        }
        if let Some(code) = g.failed {
            return Err(KvError::Io(code));
        }
        match g.pager.commit().await {
            Ok(bytes) => {
                g.committed = g.open_txn;
                g.open_txn += 1;
                g.stats.commits += 1;
                g.stats.bytes_written += bytes;
                Ok(())
            }
            Err(f) => {
                let code = match f {
                    Fail::Io(c) => c,
                    _ => 5,
                };
                g.failed = Some(code);
                Err(KvError::Io(code))
            }
        }
    }

    async fn read<T>(&self, f: impl AsyncFnOnce(&mut Pager<B>) -> Result<T, KvError>) -> Result<T, KvError> {
        let mut g = self.state.lock().await;
        f(&mut g.pager).await
    }
}

fn duration(ns: u64) -> Duration {
    Duration::from_nanos(ns)
}

impl<B: Block, C: WallClock> KvRo for Store<B, C> {
    async fn exists(&self, key: &Key) -> Result<Option<Kind>, KvError> {
        self.read(async |p| p.kind(key).await).await
    }

    async fn get(&self, key: &Key) -> Result<Vec<u8>, KvError> {
        self.read(async |p| p.read(key, 0, usize::MAX).await).await
    }

    async fn get_partial(&self, key: &Key, offset: u64, len: usize) -> Result<Vec<u8>, KvError> {
        self.read(async |p| p.read(key, offset, len).await).await
    }

    async fn list(&self, key: &Key) -> Result<Vec<(Key, Kind)>, KvError> {
        self.read(async |p| p.list(key).await).await
    }

    async fn size(&self, key: &Key) -> Result<u64, KvError> {
        self.read(async |p| Ok(p.stat(key).await?.size)).await
    }

    async fn last_modified(&self, key: &Key) -> Result<Duration, KvError> {
        self.read(async |p| Ok(duration(p.mtime(key).await?))).await
    }

    async fn digest(&self, key: &Key) -> Result<[u8; 32], KvError> {
        self.read(async |p| p.digest(key).await).await
    }
}

impl<B: Block, C: WallClock> KvRw for Store<B, C> {
    async fn set(&self, key: &Key, value: &[u8]) -> Result<(), KvError> {
        self.write(&[Op::Set(key, value)]).await
    }

    async fn set_partial(&self, key: &Key, offset: u64, data: &[u8]) -> Result<(), KvError> {
        self.write(&[Op::SetPartial(key, offset, data)]).await
    }

    async fn remove(&self, key: &Key) -> Result<(), KvError> {
        self.write(&[Op::Remove(key)]).await
    }

    async fn rename(&self, source: &Key, dest: &Key) -> Result<(), KvError> {
        self.write(&[Op::Rename(source, dest)]).await
    }

    async fn allocate(&self, key: &Key, size: u64) -> Result<(), KvError> {
        self.write(&[Op::Allocate(key, size)]).await
    }
}
