//! Mirage_kv semantics on the tree: what each operation reads, checks and changes.

use alloc::vec;
use alloc::vec::Vec;

use morgana::block::Block;
use morgana::kv::{Key, Kind, KvError};
use sha2::{Digest, Sha256};

use crate::format::{PAGE, PAGE_U64};
use crate::keys::{INLINE, Meta, chunk_index, chunk_key, chunk_ptr, dir_prefix, path, prefix_end};
use crate::pager::{Fail, Pager};
use crate::tree::Around;

/// Pages kept free for removals and renames, so a full store can always be emptied.
pub const RESERVE: u64 = 16;
/// Entries handled per step of a scan.
const STEP: usize = 256;

impl Fail {
    /// The `KvError` a user sees for this failure of an operation on `key`.
    pub fn at(self, key: &Key) -> KvError {
        match self {
            Fail::Io(c) => KvError::Io(c),
            Fail::Corrupt(_) => KvError::Corrupt(key.clone()),
            Fail::NoSpace => KvError::NoSpace,
            Fail::TooLong => KvError::Io(crate::ENAMETOOLONG),
        }
    }
}

/// One change, as a single operation or a batch applies it.
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    /// `KvRw::set`.
    Set(&'a Key, &'a [u8]),
    /// `KvRw::set_partial`.
    SetPartial(&'a Key, u64, &'a [u8]),
    /// `KvRw::remove`.
    Remove(&'a Key),
    /// `KvRw::rename`.
    Rename(&'a Key, &'a Key),
    /// `KvRw::allocate`.
    Allocate(&'a Key, u64),
}

/// The end of the range of a value's meta and chunk entries.
fn value_end(p: &[u8]) -> Vec<u8> {
    let mut e = chunk_key(p, u64::MAX);
    e.push(0);
    e
}

/// The key range of everything inside the dictionary at `p` (the root: everything).
fn dict_range(p: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let from = dir_prefix(p);
    let to = if p.is_empty() { None } else { prefix_end(&from) };
    (from, to)
}

/// A set as a batch in key order holds it: the key's path, the key, the value.
type Set<'a> = (Vec<u8>, &'a Key, &'a [u8]);

/// `ops` in key order, each with its path, if they are two or more sets of distinct keys, none
/// of which is inside another (so that the order they are applied in does not change the
/// outcome).
fn independent_sets<'a>(ops: &[Op<'a>]) -> Option<Vec<Set<'a>>> {
    if ops.len() < 2 {
        return None;
    }
    let mut sets = Vec::with_capacity(ops.len());
    for op in ops {
        let Op::Set(k, v) = op else { return None };
        sets.push((path(k).ok()?, *k, *v));
    }
    // Paths sort as their keys do (see keys.rs).
    sets.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    // In key order a key's first successor that is not after its whole subtree is inside it.
    if sets.windows(2).any(|w| w[0].1.is_prefix_of(w[1].1)) {
        return None;
    }
    Some(sets)
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|x| *x == 0)
}

impl<B: Block> Pager<B> {
    async fn meta(&mut self, p: &[u8]) -> Result<Option<Meta>, Fail> {
        match self.get(p).await? {
            None => Ok(None),
            Some(v) => Meta::decode(&v).map(Some).ok_or(Fail::Corrupt(0)),
        }
    }

    /// What is bound at `p`, and its meta entry if it is a value, in one descent of the tree:
    /// the first entry at or after `p` is its meta entry, one of its chunks, a child, or none of
    /// these.
    async fn probe(&mut self, p: &[u8]) -> Result<(Option<Kind>, Option<Vec<u8>>), Fail> {
        if p.is_empty() {
            return Ok((Some(Kind::Dictionary), None));
        }
        match self.get_or_next(p).await? {
            Ok(v) => Ok((Some(Kind::Value), Some(v))),
            Err(Some(k)) if k.len() > p.len() + 1 && k.starts_with(p) && k[p.len()] == 0 => {
                if k[p.len() + 1] == 0 {
                    // A chunk with no meta entry before it: let the slow way say what it is.
                    return Ok((self.kind_at(p).await?, None));
                }
                Ok((Some(Kind::Dictionary), None))
            }
            _ => Ok((None, None)),
        }
    }

    async fn kind_of(&mut self, p: &[u8]) -> Result<Option<Kind>, Fail> {
        Ok(self.probe(p).await?.0)
    }

    /// What is bound at `p`, the long way: a lookup, then a seek for a child.
    async fn kind_at(&mut self, p: &[u8]) -> Result<Option<Kind>, Fail> {
        if p.is_empty() {
            return Ok(Some(Kind::Dictionary));
        }
        if self.get(p).await?.is_some() {
            return Ok(Some(Kind::Value));
        }
        let mut first_child = dir_prefix(p);
        first_child.push(1);
        let prefix = dir_prefix(p);
        Ok(match self.seek(&first_child).await? {
            Some((k, _)) if k.starts_with(&prefix) => Some(Kind::Dictionary),
            _ => None,
        })
    }

    /// What `key` is bound to.
    pub async fn kind(&mut self, key: &Key) -> Result<Option<Kind>, KvError> {
        self.kind_of(&path(key).map_err(|f| f.at(key))?).await.map_err(|f| f.at(key))
    }

    /// The meta entry of the value at `key`, or the error that there is none.
    async fn value(&mut self, key: &Key) -> Result<(Vec<u8>, Meta), KvError> {
        let p = path(key).map_err(|f| f.at(key))?;
        match self.meta(&p).await.map_err(|f| f.at(key))? {
            Some(m) => Ok((p, m)),
            None => match self.kind_of(&p).await.map_err(|f| f.at(key))? {
                Some(_) => Err(KvError::ValueExpected(key.clone())),
                None => Err(KvError::NotFound(key.clone())),
            },
        }
    }

    /// The dictionary at `key`, or the error that it is not one.
    async fn dict(&mut self, key: &Key) -> Result<Vec<u8>, KvError> {
        let p = path(key).map_err(|f| f.at(key))?;
        match self.kind_of(&p).await.map_err(|f| f.at(key))? {
            Some(Kind::Dictionary) => Ok(p),
            Some(Kind::Value) => Err(KvError::DictionaryExpected(key.clone())),
            None => Err(KvError::NotFound(key.clone())),
        }
    }

    /// Size and time of the value at `key`.
    pub async fn stat(&mut self, key: &Key) -> Result<Meta, KvError> {
        Ok(self.value(key).await?.1)
    }

    /// Up to `len` bytes of the value at `key` from `offset`, reading only the chunks needed.
    pub async fn read(&mut self, key: &Key, offset: u64, len: usize) -> Result<Vec<u8>, KvError> {
        let (p, m) = self.value(key).await?;
        let start = offset.min(m.size);
        let end = start.saturating_add(len as u64).min(m.size);
        if let Some(d) = m.inline {
            return Ok(d[start as usize..end as usize].to_vec());
        }
        let mut out = vec![0u8; (end - start) as usize];
        if start == end {
            return Ok(out);
        }
        let (first, last) = (start / PAGE_U64, (end - 1) / PAGE_U64);
        let mut at = chunk_key(&p, first);
        let stop = chunk_key(&p, last + 1);
        loop {
            let batch = self.range(&at, &stop, STEP).await.map_err(|f| f.at(key))?;
            let Some((lastk, _)) = batch.last() else { break };
            at = lastk.clone();
            at.push(0);
            for (k, v) in batch {
                let (Some(i), Some(ptr)) = (chunk_index(&p, &k), chunk_ptr(&v)) else {
                    return Err(KvError::Corrupt(key.clone()));
                };
                let page = self.read_checked(ptr).await.map_err(|f| f.at(key))?;
                let c0 = i * PAGE_U64;
                let (s, e) = (start.max(c0), end.min(c0 + PAGE_U64));
                out[(s - start) as usize..(e - start) as usize]
                    .copy_from_slice(&page[(s - c0) as usize..(e - c0) as usize]);
            }
        }
        Ok(out)
    }

    /// The entries of the dictionary at `key`, sorted.
    pub async fn list(&mut self, key: &Key) -> Result<Vec<(Key, Kind)>, KvError> {
        let p = self.dict(key).await?;
        let prefix = dir_prefix(&p);
        let mut out = Vec::new();
        let mut at = prefix.clone();
        while let Some((k, _)) = self.seek(&at).await.map_err(|f| f.at(key))? {
            let Some(rest) = k.strip_prefix(prefix.as_slice()) else { break };
            let name_len = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            let name = core::str::from_utf8(&rest[..name_len]).map_err(|_| KvError::Corrupt(key.clone()))?;
            let kind = if name_len == rest.len() { Kind::Value } else { Kind::Dictionary };
            let child = key.join(name).map_err(|_| KvError::Corrupt(key.clone()))?;
            if out.last().is_none_or(|(c, _): &(Key, Kind)| *c != child) {
                out.push((child, kind));
            }
            at = prefix.clone();
            at.extend_from_slice(&rest[..name_len]);
            at.push(1);
        }
        Ok(out)
    }

    /// The meta entry of every value at or under `key` (a value, or a dictionary), in order,
    /// with its path relative to `key`.
    async fn each_value(&mut self, key: &Key) -> Result<Vec<(Vec<u8>, Meta)>, KvError> {
        let p = path(key).map_err(|f| f.at(key))?;
        let mut wanted = Vec::new();
        if let Some(m) = self.meta(&p).await.map_err(|f| f.at(key))? {
            wanted.push((Vec::new(), m));
            return Ok(wanted);
        }
        let (from, to) = dict_range(&p);
        let mut at = from.clone();
        while let Some((k, v)) = self.seek(&at).await.map_err(|f| f.at(key))? {
            if to.as_ref().is_some_and(|t| k >= *t) {
                break;
            }
            let m = Meta::decode(&v).ok_or_else(|| KvError::Corrupt(key.clone()))?;
            wanted.push((k[from.len()..].to_vec(), m));
            at = k;
            at.extend_from_slice(&[0, 1]);
        }
        Ok(wanted)
    }

    /// The latest time of the value, or of any value in the dictionary, at `key`.
    pub async fn mtime(&mut self, key: &Key) -> Result<u64, KvError> {
        if self.kind(key).await?.is_none() {
            return Err(KvError::NotFound(key.clone()));
        }
        Ok(self.each_value(key).await?.iter().map(|(_, m)| m.mtime).max().unwrap_or(0))
    }

    /// SHA-256 of the value at `key`; for a dictionary, of each value's relative path and
    /// SHA-256 in key order.
    pub async fn digest(&mut self, key: &Key) -> Result<[u8; 32], KvError> {
        match self.kind(key).await? {
            None => Err(KvError::NotFound(key.clone())),
            Some(Kind::Value) => self.value_digest(key).await,
            Some(Kind::Dictionary) => {
                let values = self.each_value(key).await?;
                let mut h = Sha256::new();
                for (rel, _) in values {
                    let mut child = key.clone();
                    for seg in rel.split(|b| *b == 0) {
                        let seg = core::str::from_utf8(seg).map_err(|_| KvError::Corrupt(key.clone()))?;
                        child = child.join(seg).map_err(|_| KvError::Corrupt(key.clone()))?;
                    }
                    h.update(&rel);
                    h.update([0]);
                    h.update(self.value_digest(&child).await?);
                }
                Ok(h.finalize().into())
            }
        }
    }

    async fn value_digest(&mut self, key: &Key) -> Result<[u8; 32], KvError> {
        let size = self.stat(key).await?.size;
        let mut h = Sha256::new();
        let mut at = 0;
        while at < size {
            let part = self.read(key, at, 64 * PAGE).await?;
            h.update(&part);
            at += part.len() as u64;
        }
        Ok(h.finalize().into())
    }

    /// The refusal, if any, of binding a value at `key` for what its ancestors hold.
    async fn check_ancestors(&mut self, key: &Key) -> Result<(), KvError> {
        let mut a = Key::root();
        let segs: Vec<&str> = key.segments().collect();
        for s in segs.iter().take(segs.len().saturating_sub(1)) {
            a = a.join(s).map_err(|_| KvError::NotFound(key.clone()))?;
            let ap = path(&a).map_err(|f| f.at(key))?;
            if self.get(&ap).await.map_err(|f| f.at(key))?.is_some() {
                return Err(KvError::DictionaryExpected(a));
            }
        }
        Ok(())
    }

    /// The refusal, if any, of binding a value at `key`; else the meta entry of the value it
    /// holds now.
    async fn check_writable(&mut self, key: &Key, p: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.check_ancestors(key).await?;
        match self.probe(p).await.map_err(|f| f.at(key))? {
            (Some(Kind::Dictionary), _) => Err(KvError::ValueExpected(key.clone())),
            (_, meta) => Ok(meta),
        }
    }

    /// `Op::Set` of a value that fits in its meta entry with one descent of the tree: the path
    /// to where it goes is copied into the transaction, and the leaf there tells whether `p` may
    /// hold a value (the long way, a probe and then an insert, descends twice). `Ok(false)`
    /// when the leaf cannot tell, or there is no room to copy the path: the caller takes the long
    /// way, on a tree that is still whole. On an error the caller rolls the transaction back.
    async fn set_inline(&mut self, key: &Key, p: &[u8], value: &[u8], mtime: u64) -> Result<bool, KvError> {
        if p.is_empty() {
            return Ok(false);
        }
        self.check_ancestors(key).await?;
        let Ok(at) = self.dirty_path(p, RESERVE).await else { return Ok(false) };
        // Whether `k` is inside the dictionary at `p`; the first key after `p` is, if any is.
        let inside = |k: &[u8]| k.len() > p.len() && k.starts_with(p) && k[p.len()] == 0;
        match self.around(&at, p) {
            Around::Here(v) if Meta::decode(v).is_none_or(|m| m.inline.is_none()) => return Ok(false),
            Around::Next(k) if inside(k) => {
                // A chunk with no meta entry before it: let the long way say what it is.
                if k.len() <= p.len() + 1 || k[p.len() + 1] == 0 {
                    return Ok(false);
                }
                return Err(KvError::ValueExpected(key.clone()));
            }
            Around::After(bound) if inside(bound) => return Ok(false),
            _ => {}
        }
        self.insert_at(at, p, Meta::encode_inline(mtime, value)).map_err(|f| f.at(key))?;
        Ok(true)
    }

    /// Delete entries in `from..to` (to the end for `None`), freeing the chunk pages they held.
    async fn delete_range(&mut self, from: &[u8], to: Option<&[u8]>) -> Result<(), Fail> {
        let end = to.map(<[u8]>::to_vec).unwrap_or_else(|| vec![0xff]);
        loop {
            let batch = self.range(from, &end, STEP).await?;
            if batch.is_empty() {
                return Ok(());
            }
            for (k, v) in batch {
                self.free_chunk(&v).await?;
                self.delete(&k).await?;
            }
        }
    }

    async fn drop_value(&mut self, p: &[u8]) -> Result<(), Fail> {
        self.delete_range(p, Some(&value_end(p))).await
    }

    /// Write chunk `index` of the value at `p`, or drop it if it is all zeros.
    async fn put_chunk(&mut self, p: &[u8], index: u64, data: &[u8]) -> Result<(), Fail> {
        let k = chunk_key(p, index);
        if let Some(old) = self.get(&k).await? {
            self.free_chunk(&old).await?;
        }
        if all_zero(data) {
            self.delete(&k).await?;
        } else {
            let entry = self.write_chunk(data, RESERVE).await?;
            self.insert(&k, entry, RESERVE).await?;
        }
        Ok(())
    }

    /// Apply `ops` in order as one change stamped `mtime` (ns since the epoch): all of them, or
    /// on an error none (the transaction is rolled back to where it was).
    pub async fn apply_all(&mut self, ops: &[Op<'_>], mtime: u64) -> Result<(), KvError> {
        // Sets of keys that are distinct and none inside another give the same store in any
        // order; in key order, neighbours share their path down the tree, so each node is
        // found where the last key left it. If that fails, the ops go again in the order given,
        // so the error is the one the first failing op in that order meets.
        if let Some(sorted) = independent_sets(ops) {
            let sp = self.savepoint();
            if self.set_each(&sorted, mtime).await.is_ok() {
                return Ok(());
            }
            self.rollback(sp);
        }
        let sp = self.savepoint();
        self.apply_each(ops, mtime).await.inspect_err(|_| self.rollback(sp))
    }

    async fn apply_each(&mut self, ops: &[Op<'_>], mtime: u64) -> Result<(), KvError> {
        for op in ops {
            self.apply(*op, mtime).await?;
        }
        Ok(())
    }

    async fn set_each(&mut self, sets: &[Set<'_>], mtime: u64) -> Result<(), KvError> {
        for (p, key, value) in sets {
            self.set_at(key, p, value, mtime).await?;
        }
        Ok(())
    }

    /// `Op::Set` of `key`, whose path is `p`.
    async fn set_at(&mut self, key: &Key, p: &[u8], value: &[u8], mtime: u64) -> Result<(), KvError> {
        if value.len() <= INLINE && self.set_inline(key, p, value, mtime).await? {
            return Ok(());
        }
        let old = self.check_writable(key, p).await?;
        self.set(p, value, mtime, old).await.map_err(|f| f.at(key))
    }

    /// Apply one change stamped `mtime` (ns since the epoch).
    pub async fn apply(&mut self, op: Op<'_>, mtime: u64) -> Result<(), KvError> {
        match op {
            Op::Set(key, value) => {
                let p = path(key).map_err(|f| f.at(key))?;
                self.set_at(key, &p, value, mtime).await
            }
            Op::SetPartial(key, offset, data) => {
                let p = path(key).map_err(|f| f.at(key))?;
                self.check_writable(key, &p).await?;
                self.set_partial(&p, offset, data, mtime).await.map_err(|f| f.at(key))
            }
            Op::Allocate(key, size) => {
                let p = path(key).map_err(|f| f.at(key))?;
                if self.kind_of(&p).await.map_err(|f| f.at(key))?.is_some() {
                    return Err(KvError::AlreadyPresent(key.clone()));
                }
                self.check_writable(key, &p).await?;
                let inline = (size <= INLINE as u64).then(|| vec![0; size as usize]);
                let meta = Meta { size, mtime, inline };
                self.insert(&p, meta.encode(), RESERVE).await.map_err(|f| f.at(key))
            }
            Op::Remove(key) => {
                let p = path(key).map_err(|f| f.at(key))?;
                match self.kind_of(&p).await.map_err(|f| f.at(key))? {
                    None => Err(KvError::NotFound(key.clone())),
                    Some(Kind::Value) => self.drop_value(&p).await.map_err(|f| f.at(key)),
                    Some(Kind::Dictionary) => {
                        let (from, to) = dict_range(&p);
                        self.delete_range(&from, to.as_deref()).await.map_err(|f| f.at(key))
                    }
                }
            }
            Op::Rename(source, dest) => self.rename(source, dest).await,
        }
    }

    async fn set(&mut self, p: &[u8], value: &[u8], mtime: u64, old: Option<Vec<u8>>) -> Result<(), Fail> {
        // An inline value is replaced by the insert below; a chunked one's chunks go first.
        let inline = old.as_deref().and_then(Meta::decode).is_some_and(|m| m.inline.is_some());
        if old.is_some() && !inline {
            self.drop_value(p).await?;
        }
        let size = value.len() as u64;
        if value.len() <= INLINE {
            return self
                .insert(p, Meta { size, mtime, inline: Some(value.to_vec()) }.encode(), RESERVE)
                .await;
        }
        let mut page = vec![0u8; PAGE];
        for (i, part) in value.chunks(PAGE).enumerate() {
            if all_zero(part) {
                continue;
            }
            page[..part.len()].copy_from_slice(part);
            page[part.len()..].fill(0);
            let entry = self.write_chunk(&page, RESERVE).await?;
            self.insert(&chunk_key(p, i as u64), entry, RESERVE).await?;
        }
        self.insert(p, Meta { size, mtime, inline: None }.encode(), RESERVE).await
    }

    async fn set_partial(&mut self, p: &[u8], offset: u64, data: &[u8], mtime: u64) -> Result<(), Fail> {
        let end = offset.checked_add(data.len() as u64).ok_or(Fail::NoSpace)?;
        let old = match self.get(p).await? {
            Some(v) => Some(Meta::decode(&v).ok_or(Fail::Corrupt(0))?),
            None => None,
        };
        let size = old.as_ref().map_or(0, |m| m.size).max(end);
        let old_inline = old.as_ref().map(|m| m.inline.clone());
        if size <= INLINE as u64 && !matches!(old_inline, Some(None)) {
            let mut v = old_inline.flatten().unwrap_or_default();
            v.resize(size as usize, 0);
            v[offset as usize..end as usize].copy_from_slice(data);
            return self.insert(p, Meta { size, mtime, inline: Some(v) }.encode(), RESERVE).await;
        }
        // Chunked from now on: an inline value becomes chunk 0 first.
        if let Some(Some(d)) = old_inline
            && !d.is_empty()
        {
            let mut page = vec![0u8; PAGE];
            page[..d.len()].copy_from_slice(&d);
            self.put_chunk(p, 0, &page).await?;
        }
        let mut page = vec![0u8; PAGE];
        let mut at = offset;
        while at < end {
            let index = at / PAGE_U64;
            let c0 = index * PAGE_U64;
            let (s, e) = ((at - c0) as usize, (end - c0).min(PAGE_U64) as usize);
            let k = chunk_key(p, index);
            match self.get(&k).await?.as_deref().and_then(chunk_ptr) {
                Some(ptr) if s > 0 || e < PAGE => page.copy_from_slice(&self.read_checked(ptr).await?),
                _ => page.fill(0),
            }
            let from = (at - offset) as usize;
            page[s..e].copy_from_slice(&data[from..from + (e - s)]);
            self.put_chunk(p, index, &page).await?;
            at = c0 + e as u64;
        }
        self.insert(p, Meta { size, mtime, inline: None }.encode(), RESERVE).await
    }

    async fn rename(&mut self, source: &Key, dest: &Key) -> Result<(), KvError> {
        let sp = path(source).map_err(|f| f.at(source))?;
        let dp = path(dest).map_err(|f| f.at(dest))?;
        let kind = self.kind_of(&sp).await.map_err(|f| f.at(source))?;
        let kind = kind.ok_or_else(|| KvError::NotFound(source.clone()))?;
        if source == dest {
            return Ok(());
        }
        if source.is_prefix_of(dest) {
            return Err(KvError::RenameSourcePrefix { source: source.clone(), dest: dest.clone() });
        }
        if dest.is_root() && kind == Kind::Value {
            return Err(KvError::ValueExpected(Key::root()));
        }
        let mut segs = dest.clone();
        while !segs.is_root() {
            segs = segs.parent();
            if !segs.is_root()
                && self.get(&path(&segs).map_err(|f| f.at(dest))?).await.map_err(|f| f.at(dest))?.is_some()
            {
                return Err(KvError::DictionaryExpected(segs));
            }
        }
        let (from, to) = match kind {
            Kind::Value => (sp.clone(), Some(value_end(&sp))),
            Kind::Dictionary => dict_range(&sp),
        };
        let to = to.unwrap_or_else(|| vec![0xff]);
        // The new key of an entry of the source: the destination path, then what followed the
        // source path (for the root as destination, without the separator).
        let moved = |k: &[u8]| {
            let rest = &k[sp.len()..];
            let mut n = dp.clone();
            n.extend_from_slice(if dp.is_empty() { &rest[1..] } else { rest });
            n
        };
        let fail = |f: Fail| f.at(source);
        let drop_dest = async |s: &mut Self| -> Result<(), Fail> {
            s.drop_value(&dp).await?;
            let (df, dt) = dict_range(&dp);
            s.delete_range(&df, dt.as_deref()).await
        };
        if dest.is_prefix_of(source) {
            // The destination holds the source: take the source out whole (keeping its chunks),
            // then replace.
            let entries = self.range(&from, &to, usize::MAX).await.map_err(fail)?;
            for (k, _) in &entries {
                self.delete(k).await.map_err(fail)?;
            }
            drop_dest(self).await.map_err(fail)?;
            for (k, v) in entries {
                self.insert(&moved(&k), v, 0).await.map_err(fail)?;
            }
            return Ok(());
        }
        drop_dest(self).await.map_err(fail)?;
        loop {
            let batch = self.range(&from, &to, STEP).await.map_err(fail)?;
            if batch.is_empty() {
                return Ok(());
            }
            for (k, v) in batch {
                self.delete(&k).await.map_err(fail)?;
                self.insert(&moved(&k), v, 0).await.map_err(fail)?;
            }
        }
    }
}
