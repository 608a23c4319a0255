//! A leaf's entries, decoded into two allocations whatever their number: the keys and values
//! end to end in one buffer, and where each entry is in a second.
//!
//! A vector per key and per value made a leaf of twenty entries forty allocations to decode and
//! forty frees when it left the cache or was committed, the largest share of a batch's time.
//! A change appends the new bytes and leaves the old ones in place; the buffer is compacted
//! once more than a page of it is dead, so a node never takes much more than twice its page.

use core::fmt;

use alloc::vec::Vec;

use crate::format::PAGE;

/// Where one entry is: its offset in the buffer, then the lengths of its key and value.
#[derive(Debug, Clone, Copy)]
struct Slot {
    at: u32,
    key: u16,
    val: u16,
}

impl Slot {
    fn end(self) -> usize {
        self.at as usize + self.key as usize + self.val as usize
    }
}

/// Sorted `(key, value)` entries of a leaf.
#[derive(Clone, Default)]
pub struct Entries {
    bytes: Vec<u8>,
    slots: Vec<Slot>,
    /// Bytes of `bytes` that no entry uses any more.
    dead: usize,
}

impl Entries {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `count` entries packed in `page` from `start` on (each `key_len u16, val_len u16,
    /// key, val`, as a node page holds them), keeping the page as their buffer; `None` if they
    /// run past its end.
    pub fn from_page(mut page: Vec<u8>, start: usize, count: usize) -> Option<Self> {
        let mut slots = Vec::with_capacity(count);
        let mut at = start;
        for _ in 0..count {
            let head = page.get(at..at.checked_add(4)?)?;
            let (key, val) = (u16::from_le_bytes([head[0], head[1]]), u16::from_le_bytes([head[2], head[3]]));
            let slot = Slot { at: (at + 4) as u32, key, val };
            if slot.end() > page.len() {
                return None;
            }
            slots.push(slot);
            at = slot.end();
        }
        // The page's header and the length fields stay in the buffer, unused: no copy at all.
        page.truncate(at);
        Some(Self { bytes: page, slots, dead: start + 4 * count })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn key_of(&self, s: Slot) -> &[u8] {
        &self.bytes[s.at as usize..s.at as usize + s.key as usize]
    }

    fn val_of(&self, s: Slot) -> &[u8] {
        &self.bytes[s.at as usize + s.key as usize..s.end()]
    }

    /// The key of entry `i`.
    pub fn key(&self, i: usize) -> &[u8] {
        self.key_of(self.slots[i])
    }

    /// The value of entry `i`.
    pub fn val(&self, i: usize) -> &[u8] {
        self.val_of(self.slots[i])
    }

    /// The entries in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> {
        self.slots.iter().map(|s| (self.key_of(*s), self.val_of(*s)))
    }

    /// Each entry as its key's length, its value's length and the key and value end to end.
    pub fn packed(&self) -> impl ExactSizeIterator<Item = (u16, u16, &[u8])> {
        self.slots.iter().map(|s| (s.key, s.val, &self.bytes[s.at as usize..s.end()]))
    }

    /// `Ok` with the index of `key`, or `Err` with where it would go.
    pub fn search(&self, key: &[u8]) -> Result<usize, usize> {
        self.slots.binary_search_by(|s| self.key_of(*s).cmp(key))
    }

    /// The index of the first entry whose key is at least `key`.
    pub fn lower_bound(&self, key: &[u8]) -> usize {
        self.slots.partition_point(|s| self.key_of(*s) < key)
    }

    /// Bytes the entries take encoded.
    pub fn used(&self) -> usize {
        self.slots.iter().map(|s| 4 + s.key as usize + s.val as usize).sum()
    }

    /// Bytes of RAM the entries take (the two allocations' capacity).
    pub fn ram(&self) -> usize {
        self.bytes.capacity() + self.slots.capacity() * core::mem::size_of::<Slot>()
    }

    fn append_bytes(&mut self, key: &[u8], val: &[u8]) -> Slot {
        // Out of room with bytes to reclaim: compact rather than grow, so that a leaf changed
        // in place keeps to about a page.
        if self.bytes.len() + key.len() + val.len() > self.bytes.capacity() && self.dead > 0 {
            self.compact(key.len() + val.len());
        }
        let at = self.bytes.len() as u32;
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(val);
        Slot { at, key: key.len() as u16, val: val.len() as u16 }
    }

    /// Insert `key` with `val` at index `i` (where [`search`](Self::search) said it goes).
    pub fn insert(&mut self, i: usize, key: &[u8], val: &[u8]) {
        let slot = self.append_bytes(key, val);
        self.slots.insert(i, slot);
    }

    /// Append an entry whose key sorts after every key here.
    pub fn push(&mut self, key: &[u8], val: &[u8]) {
        let slot = self.append_bytes(key, val);
        self.slots.push(slot);
    }

    /// Replace the value of entry `i`.
    pub fn set(&mut self, i: usize, val: &[u8]) {
        let old = self.slots[i];
        if val.len() == old.val as usize {
            let from = old.at as usize + old.key as usize;
            self.bytes[from..from + val.len()].copy_from_slice(val);
            return;
        }
        let key = self.key_of(old).to_vec();
        self.slots[i] = self.append_bytes(&key, val);
        self.dead += old.key as usize + old.val as usize;
        self.compact_if_wasteful();
    }

    /// Take entry `i` out; its value.
    pub fn remove(&mut self, i: usize) -> Vec<u8> {
        let old = self.slots.remove(i);
        let val = self.val_of(old).to_vec();
        self.dead += old.key as usize + old.val as usize;
        self.compact_if_wasteful();
        val
    }

    /// Split off the entries from index `at` on.
    pub fn split_off(&mut self, at: usize) -> Entries {
        let mut right = Entries::new();
        // A page's room: the right half is where the keys that follow in a sorted batch go.
        right.bytes.reserve(PAGE);
        right.slots.reserve(self.slots.len() - at);
        for s in self.slots.drain(at..).collect::<Vec<_>>() {
            let (k, v) = (self.key_of(s), self.val_of(s));
            right.push(k, v);
            self.dead += s.key as usize + s.val as usize;
        }
        self.compact_if_wasteful();
        right
    }

    /// Append every entry of `other`, whose keys all sort after these.
    pub fn append(&mut self, other: &Entries) {
        for (k, v) in other.iter() {
            self.push(k, v);
        }
    }

    fn compact_if_wasteful(&mut self) {
        if self.dead > PAGE {
            self.compact(0);
        }
    }

    /// Drop the dead bytes, leaving room for `extra` more (and at least a page in all).
    fn compact(&mut self, extra: usize) {
        let mut bytes = Vec::with_capacity((self.bytes.len() - self.dead + extra).max(PAGE));
        for s in &mut self.slots {
            let from = s.at as usize;
            s.at = bytes.len() as u32;
            bytes.extend_from_slice(&self.bytes[from..from + s.key as usize + s.val as usize]);
        }
        self.bytes = bytes;
        self.dead = 0;
    }
}

impl PartialEq for Entries {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Entries {}

impl fmt::Debug for Entries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(K, V)> for Entries {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut e = Entries::new();
        for (k, v) in entries {
            e.push(k.as_ref(), v.as_ref());
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn entries_keep_order_through_changes_and_compaction() {
        let mut e: Entries = (0..10u8).map(|i| (vec![i * 2], vec![i; 3])).collect();
        assert_eq!(e.search(&[4]), Ok(2));
        assert_eq!(e.search(&[5]), Err(3));
        e.insert(3, &[5], b"five");
        assert_eq!(e.lower_bound(&[5]), 3);
        assert_eq!(e.key(3), &[5]);
        // Enough rewrites to compact several times over.
        for round in 0..200u32 {
            e.set(3, &round.to_le_bytes().repeat(1 + round as usize % 7));
        }
        assert_eq!(e.val(3), 199u32.to_le_bytes().repeat(1 + 199 % 7));
        assert!(e.ram() < 3 * PAGE, "dead bytes are reclaimed: {}", e.ram());
        assert_eq!(e.remove(0), vec![0; 3]);
        let right = e.split_off(5);
        assert_eq!(e.iter().map(|(k, _)| k[0]).collect::<Vec<_>>(), [2, 4, 5, 6, 8]);
        assert_eq!(right.iter().map(|(k, _)| k[0]).collect::<Vec<_>>(), [10, 12, 14, 16, 18]);
        e.append(&right);
        assert_eq!(e.len(), 10);
        assert_eq!(e.used(), e.iter().map(|(k, v)| 4 + k.len() + v.len()).sum::<usize>());
        let packed = [2u16.to_le_bytes(), 1u16.to_le_bytes()].concat();
        assert_eq!(
            Entries::from_page([vec![9], packed.clone(), b"abcdef".to_vec()].concat(), 1, 1),
            Some([(b"ab".to_vec(), b"c".to_vec())].into_iter().collect())
        );
        assert_eq!(Entries::from_page([packed, b"ab".to_vec()].concat(), 0, 1), None, "a value past the end");
    }
}
