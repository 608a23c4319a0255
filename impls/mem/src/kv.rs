//! A key-value store in memory, with Mirage_kv semantics.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ops::Bound;

use morgana::kv::{Key, Kind, KvError, KvRo, KvRw};
use morgana::{Duration, WallClock};
use sha2::{Digest, Sha256};

#[derive(Clone)]
struct Entry {
    data: Vec<u8>,
    mtime: Duration,
}

/// A `KvRw` in memory. Values are stored by full key; dictionaries are the prefixes of keys.
pub struct MemKv<C> {
    clock: C,
    capacity: Option<usize>,
    map: RefCell<BTreeMap<Key, Entry>>,
}

impl<C: WallClock> MemKv<C> {
    /// An empty store stamping modification times from `clock`.
    pub fn new(clock: C) -> Self {
        Self { clock, capacity: None, map: RefCell::new(BTreeMap::new()) }
    }

    /// The same store refusing to hold more than `bytes` of values ([`KvError::NoSpace`]).
    pub fn with_capacity_limit(mut self, bytes: usize) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// Bytes of values stored.
    pub fn used(&self) -> usize {
        self.map.borrow().values().map(|e| e.data.len()).sum()
    }
}

fn strict_descendants<'a>(
    map: &'a BTreeMap<Key, Entry>,
    key: &'a Key,
) -> impl Iterator<Item = (&'a Key, &'a Entry)> + 'a {
    map.range((Bound::Excluded(key), Bound::Unbounded)).take_while(move |(k, _)| key.is_prefix_of(k))
}

fn kind_of(map: &BTreeMap<Key, Entry>, key: &Key) -> Option<Kind> {
    if key.is_root() {
        Some(Kind::Dictionary)
    } else if map.contains_key(key) {
        Some(Kind::Value)
    } else if strict_descendants(map, key).next().is_some() {
        Some(Kind::Dictionary)
    } else {
        None
    }
}

/// The first ancestor of `key` (root excluded) that is a value.
fn value_ancestor(map: &BTreeMap<Key, Entry>, key: &Key) -> Option<Key> {
    let mut a = key.parent();
    let mut found = None;
    while !a.is_root() {
        if map.contains_key(&a) {
            found = Some(a.clone());
        }
        a = a.parent();
    }
    found
}

fn digest_of(map: &BTreeMap<Key, Entry>, key: &Key) -> Result<[u8; 32], KvError> {
    match kind_of(map, key) {
        None => Err(KvError::NotFound(key.clone())),
        Some(Kind::Value) => Ok(Sha256::digest(&map[key].data).into()),
        Some(Kind::Dictionary) => {
            let mut h = Sha256::new();
            for (child, kind) in children(map, key) {
                h.update(child.basename().as_bytes());
                h.update([0, kind as u8]);
                h.update(digest_of(map, &child)?);
            }
            Ok(h.finalize().into())
        }
    }
}

fn children(map: &BTreeMap<Key, Entry>, key: &Key) -> Vec<(Key, Kind)> {
    let depth = key.segments().len();
    let mut out: Vec<(Key, Kind)> = Vec::new();
    for (k, _) in strict_descendants(map, key) {
        let name = k.segments().nth(depth).unwrap_or_default();
        let kind = if k.segments().len() == depth + 1 { Kind::Value } else { Kind::Dictionary };
        if out.last().is_some_and(|(c, _)| c.basename() == name) {
            continue;
        }
        if let Ok(child) = key.join(name) {
            out.push((child, kind));
        }
    }
    out
}

impl<C: WallClock> MemKv<C> {
    fn check_writable(&self, map: &BTreeMap<Key, Entry>, key: &Key, new_len: usize) -> Result<(), KvError> {
        if let Some(a) = value_ancestor(map, key) {
            return Err(KvError::DictionaryExpected(a));
        }
        if kind_of(map, key) == Some(Kind::Dictionary) {
            return Err(KvError::ValueExpected(key.clone()));
        }
        if let Some(cap) = self.capacity {
            let old = map.get(key).map_or(0, |e| e.data.len());
            let used: usize = map.values().map(|e| e.data.len()).sum();
            if used - old + new_len > cap {
                return Err(KvError::NoSpace);
            }
        }
        Ok(())
    }

    fn store(&self, key: &Key, data: Vec<u8>) -> Result<(), KvError> {
        let mut map = self.map.borrow_mut();
        self.check_writable(&map, key, data.len())?;
        map.insert(key.clone(), Entry { data, mtime: self.clock.now_unix() });
        Ok(())
    }
}

impl<C: WallClock> KvRo for MemKv<C> {
    async fn exists(&self, key: &Key) -> Result<Option<Kind>, KvError> {
        Ok(kind_of(&self.map.borrow(), key))
    }

    async fn get(&self, key: &Key) -> Result<Vec<u8>, KvError> {
        let map = self.map.borrow();
        match kind_of(&map, key) {
            Some(Kind::Value) => Ok(map[key].data.clone()),
            Some(Kind::Dictionary) => Err(KvError::ValueExpected(key.clone())),
            None => Err(KvError::NotFound(key.clone())),
        }
    }

    async fn get_partial(&self, key: &Key, offset: u64, len: usize) -> Result<Vec<u8>, KvError> {
        let map = self.map.borrow();
        match kind_of(&map, key) {
            Some(Kind::Value) => {
                let data = &map[key].data;
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
                let end = start.saturating_add(len).min(data.len());
                Ok(data[start..end].to_vec())
            }
            Some(Kind::Dictionary) => Err(KvError::ValueExpected(key.clone())),
            None => Err(KvError::NotFound(key.clone())),
        }
    }

    async fn list(&self, key: &Key) -> Result<Vec<(Key, Kind)>, KvError> {
        let map = self.map.borrow();
        match kind_of(&map, key) {
            Some(Kind::Dictionary) => Ok(children(&map, key)),
            Some(Kind::Value) => Err(KvError::DictionaryExpected(key.clone())),
            None => Err(KvError::NotFound(key.clone())),
        }
    }

    async fn size(&self, key: &Key) -> Result<u64, KvError> {
        let map = self.map.borrow();
        match kind_of(&map, key) {
            Some(Kind::Value) => Ok(map[key].data.len() as u64),
            Some(Kind::Dictionary) => Err(KvError::ValueExpected(key.clone())),
            None => Err(KvError::NotFound(key.clone())),
        }
    }

    async fn last_modified(&self, key: &Key) -> Result<Duration, KvError> {
        let map = self.map.borrow();
        match kind_of(&map, key) {
            Some(Kind::Value) => Ok(map[key].mtime),
            Some(Kind::Dictionary) => {
                Ok(strict_descendants(&map, key).map(|(_, e)| e.mtime).max().unwrap_or_default())
            }
            None => Err(KvError::NotFound(key.clone())),
        }
    }

    async fn digest(&self, key: &Key) -> Result<[u8; 32], KvError> {
        digest_of(&self.map.borrow(), key)
    }
}

impl<C: WallClock> KvRw for MemKv<C> {
    async fn set(&self, key: &Key, value: &[u8]) -> Result<(), KvError> {
        self.store(key, value.to_vec())
    }

    async fn set_partial(&self, key: &Key, offset: u64, data: &[u8]) -> Result<(), KvError> {
        let mut value = self.map.borrow().get(key).map(|e| e.data.clone()).unwrap_or_default();
        let start = usize::try_from(offset).map_err(|_| KvError::NoSpace)?;
        let end = start.checked_add(data.len()).ok_or(KvError::NoSpace)?;
        if value.len() < end {
            value.resize(end, 0);
        }
        value[start..end].copy_from_slice(data);
        self.store(key, value)
    }

    async fn remove(&self, key: &Key) -> Result<(), KvError> {
        let mut map = self.map.borrow_mut();
        match kind_of(&map, key) {
            None => Err(KvError::NotFound(key.clone())),
            Some(Kind::Value) => {
                map.remove(key);
                Ok(())
            }
            Some(Kind::Dictionary) => {
                map.retain(|k, _| !key.is_prefix_of(k));
                Ok(())
            }
        }
    }

    async fn rename(&self, source: &Key, dest: &Key) -> Result<(), KvError> {
        let mut map = self.map.borrow_mut();
        let kind = kind_of(&map, source).ok_or_else(|| KvError::NotFound(source.clone()))?;
        if source == dest {
            return Ok(());
        }
        if source.is_prefix_of(dest) {
            return Err(KvError::RenameSourcePrefix { source: source.clone(), dest: dest.clone() });
        }
        if let Some(a) = value_ancestor(&map, dest) {
            return Err(KvError::DictionaryExpected(a));
        }
        let moved: Vec<(Key, Entry)> = match kind {
            Kind::Value => vec![(Key::root(), map[source].clone())],
            Kind::Dictionary => {
                let depth = source.segments().len();
                strict_descendants(&map, source)
                    .map(|(k, e)| {
                        let rel =
                            k.segments().skip(depth).fold(Key::root(), |acc, s| acc.join(s).unwrap_or(acc));
                        (rel, e.clone())
                    })
                    .collect()
            }
        };
        map.retain(|k, _| !source.is_prefix_of(k) && !dest.is_prefix_of(k));
        for (rel, e) in moved {
            let k = rel.segments().fold(dest.clone(), |acc, s| acc.join(s).unwrap_or(acc));
            map.insert(k, e);
        }
        Ok(())
    }

    async fn allocate(&self, key: &Key, size: u64) -> Result<(), KvError> {
        if kind_of(&self.map.borrow(), key).is_some() {
            return Err(KvError::AlreadyPresent(key.clone()));
        }
        let size = usize::try_from(size).map_err(|_| KvError::NoSpace)?;
        self.store(key, vec![0; size])
    }
}
