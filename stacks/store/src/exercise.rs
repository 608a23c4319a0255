//! Open an arbitrary image and run arbitrary operations on it, for fuzz targets and tests:
//! whatever the bytes, every failure comes back as an error value, never a panic, and a store
//! whose contents could be read whole behaves like a model of Mirage_kv semantics.
//!
//! The model check: after open, everything in the store is read through `list` and `get`. If
//! that succeeds, the contents are the model; then every operation that returns `Ok` must be one
//! the model allows and must change the store as the model says, every read must return what the
//! model holds, an operation the model allows may fail only for want of space, and a failed
//! operation must change nothing. At the end the store, and the store opened again from the
//! device, must equal the model.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::time::Duration;

use morgana::block::{Block, BlockError, BlockInfo};
use morgana::kv::{Key, Kind, KvError, KvRo, KvRw};
use morgana::time::WallClock;

use crate::{Batch, Store};

/// A RAM disk of 512-byte sectors holding an image; clones share the bytes, so the image can be
/// looked at after a store that was handed the device is gone.
#[derive(Clone)]
pub struct Image {
    data: Rc<RefCell<Vec<u8>>>,
}

impl Image {
    /// The image, cut to whole sectors.
    pub fn new(bytes: &[u8]) -> Self {
        let len = bytes.len() / 512 * 512;
        Self { data: Rc::new(RefCell::new(bytes[..len].to_vec())) }
    }

    /// The bytes now.
    pub fn bytes(&self) -> Vec<u8> {
        self.data.borrow().clone()
    }
}

impl Block for Image {
    fn info(&self) -> BlockInfo {
        BlockInfo { sector_size: 512, sectors: self.data.borrow().len() as u64 / 512, read_only: false }
    }
    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.info().check(sector, buf.len())?;
        let at = sector as usize * 512;
        buf.copy_from_slice(&self.data.borrow()[at..at + buf.len()]);
        Ok(())
    }
    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.info().check(sector, buf.len())?;
        let at = sector as usize * 512;
        self.data.borrow_mut()[at..at + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    async fn flush(&mut self) -> Result<(), BlockError> {
        Ok(())
    }
}

struct Epoch;

impl WallClock for Epoch {
    fn now_unix(&self) -> Duration {
        Duration::from_secs(1_700_000_000)
    }
}

const KEYS: [&str; 8] = ["/a", "/a/b", "/a/c", "/d", "/d/e/f", "/d/e/g", "/h", "/a/b/x"];

/// What a run did.
#[derive(Debug)]
pub struct Outcome {
    /// Operations that succeeded.
    pub ok: usize,
    /// Whether the store's contents could be read whole at open, so that the model was checked.
    pub modelled: bool,
    /// The device afterwards.
    pub image: Vec<u8>,
}

/// Every value in the store, by key.
type Model = BTreeMap<Key, Vec<u8>>;

/// Everything the store holds, walked through `list` and `get`.
async fn dump<S: KvRo>(store: &S) -> Result<Model, KvError> {
    let mut out = Model::new();
    let mut dirs = vec![Key::root()];
    while let Some(d) = dirs.pop() {
        for (key, kind) in store.list(&d).await? {
            match kind {
                Kind::Dictionary => dirs.push(key),
                Kind::Value => {
                    let v = store.get(&key).await?;
                    out.insert(key, v);
                }
            }
        }
    }
    Ok(out)
}

/// What the model holds at `key`.
fn kind(m: &Model, key: &Key) -> Option<Kind> {
    if key.is_root() {
        return Some(Kind::Dictionary);
    }
    if m.contains_key(key) {
        return Some(Kind::Value);
    }
    m.keys().any(|k| key.is_prefix_of(k)).then_some(Kind::Dictionary)
}

/// Whether a value may be bound at `key`: no ancestor is a value and `key` is no dictionary.
fn writable(m: &Model, key: &Key) -> bool {
    !key.is_root()
        && kind(m, key) != Some(Kind::Dictionary)
        && m.keys().all(|k| k == key || !k.is_prefix_of(key))
}

fn remove_under(m: &mut Model, key: &Key) {
    m.retain(|k, _| !key.is_prefix_of(k));
}

/// The model's listing of the dictionary `d`.
fn listing(m: &Model, d: &Key) -> Vec<(Key, Kind)> {
    let mut out: Vec<(Key, Kind)> = Vec::new();
    for k in m.keys().filter(|k| d.is_prefix_of(k) && *k != d) {
        let seg = k.segments().nth(d.segments().len()).expect("a longer key");
        let child = d.join(seg).expect("a segment of a key");
        let kind = if child == *k { Kind::Value } else { Kind::Dictionary };
        if out.last().is_none_or(|(c, _)| *c != child) {
            out.push((child, kind));
        }
    }
    out
}

/// One change, as the model applies it: `Err` if the model refuses it.
#[derive(Debug, Clone)]
enum Change {
    Set(Key, Vec<u8>),
    SetPartial(Key, u64, Vec<u8>),
    Remove(Key),
    Rename(Key, Key),
    Allocate(Key, u64),
}

impl Change {
    fn apply(&self, m: &mut Model) -> Result<(), ()> {
        match self {
            Change::Set(k, v) => {
                writable(m, k).then_some(()).ok_or(())?;
                m.insert(k.clone(), v.clone());
            }
            Change::SetPartial(k, off, d) => {
                writable(m, k).then_some(()).ok_or(())?;
                let v = m.entry(k.clone()).or_default();
                let end = *off as usize + d.len();
                if v.len() < end {
                    v.resize(end, 0);
                }
                v[*off as usize..end].copy_from_slice(d);
            }
            Change::Allocate(k, n) => {
                (kind(m, k).is_none() && writable(m, k)).then_some(()).ok_or(())?;
                m.insert(k.clone(), vec![0; *n as usize]);
            }
            Change::Remove(k) => {
                kind(m, k).ok_or(())?;
                remove_under(m, k);
            }
            Change::Rename(s, d) => {
                let what = kind(m, s).ok_or(())?;
                if s == d {
                    return Ok(());
                }
                let dest_parent_ok = {
                    let mut a = d.clone();
                    let mut ok = true;
                    while !a.is_root() {
                        a = a.parent();
                        ok &= a.is_root() || !m.contains_key(&a);
                    }
                    ok
                };
                if s.is_prefix_of(d) || (d.is_root() && what == Kind::Value) || !dest_parent_ok {
                    return Err(());
                }
                let moved: Vec<(Key, Vec<u8>)> = m
                    .iter()
                    .filter(|(k, _)| s.is_prefix_of(k))
                    .map(|(k, v)| {
                        let rest = k.segments().skip(s.segments().len());
                        (rest.fold(d.clone(), |a, seg| a.join(seg).expect("a segment")), v.clone())
                    })
                    .collect();
                m.retain(|k, _| !s.is_prefix_of(k) && !d.is_prefix_of(k));
                m.extend(moved);
            }
        }
        Ok(())
    }
}

/// Checks operation results against the model (when there is one).
struct Checker {
    model: Option<Model>,
}

impl Checker {
    /// A change returned `result`: it must be one the model allows, with the model's effect.
    fn changed(&mut self, changes: &[Change], result: &Result<(), KvError>) -> Result<(), String> {
        let Some(m) = &mut self.model else { return Ok(()) };
        let mut after = m.clone();
        let allowed = changes.iter().try_for_each(|c| c.apply(&mut after)).is_ok();
        match result {
            Ok(()) if allowed => *m = after,
            Ok(()) => return Err(format!("{changes:?} succeeded but the model refuses it")),
            Err(_) if !allowed => {}
            // A change the model allows may still find the device full.
            Err(KvError::NoSpace) => {}
            Err(e) => return Err(format!("{changes:?} failed ({e}) but the model allows it")),
        }
        Ok(())
    }

    /// A read of `len` bytes at `offset` in `key` returned `result`.
    fn read(
        &self,
        key: &Key,
        offset: u64,
        len: usize,
        result: &Result<Vec<u8>, KvError>,
    ) -> Result<(), String> {
        let Some(m) = &self.model else { return Ok(()) };
        match (m.get(key), result) {
            (Some(v), Ok(got)) => {
                let s = (offset as usize).min(v.len());
                let e = s.saturating_add(len).min(v.len());
                if got[..] != v[s..e] {
                    return Err(format!("{key} read {} bytes that are not its value", got.len()));
                }
            }
            (None, Err(_)) => {}
            (Some(_), Err(e)) => return Err(format!("{key}: {e}, but it holds a value")),
            (None, Ok(_)) => return Err(format!("{key} read as a value the model does not hold")),
        }
        Ok(())
    }
}

/// Open `image` as a store (formatting it if it is all zeros) and apply the operations that
/// `script` encodes, four bytes each: operation, key, size or offset, fill byte, checking the
/// store against the model (see the module docs). `Ok(None)` if the image was refused (in one
/// line, and left as it was); `Err(what)` if the store did something the model does not allow.
pub async fn exercise(image: &[u8], script: &[u8]) -> Result<Option<Outcome>, String> {
    let dev = Image::new(image);
    let store = match Store::open(dev.clone(), Epoch).await {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("{e}");
            if msg.contains('\n') || msg.is_empty() {
                return Err(format!("refused with a message that is not one line: {msg:?}"));
            }
            if dev.bytes()[..] != image[..image.len() / 512 * 512] {
                return Err(format!("refused ({msg}) but the image was written to"));
            }
            if image.iter().all(|b| *b == 0)
                && image.len() as u64 >= crate::format::MIN_PAGES * crate::format::PAGE_U64
            {
                return Err(format!("a blank image of {} bytes was refused: {msg}", image.len()));
            }
            return Ok(None);
        }
    };
    let mut check = Checker { model: dump(&store).await.ok() };
    let modelled = check.model.is_some();
    let key = |b: u8| Key::parse(KEYS[b as usize % KEYS.len()]).expect("valid key");
    let mut ok = 0;
    for op in script.chunks_exact(4) {
        let (k, n, fill) = (key(op[1]), op[2] as usize, op[3]);
        let value = vec![fill; n * 61];
        let done = match op[0] % 10 {
            0 => {
                let r = store.set(&k, &value).await;
                check.changed(&[Change::Set(k, value)], &r)?;
                r.is_ok()
            }
            1 => {
                let (off, data) = ((n * 97) as u64, value[..n.min(value.len())].to_vec());
                let r = store.set_partial(&k, off, &data).await;
                check.changed(&[Change::SetPartial(k, off, data)], &r)?;
                r.is_ok()
            }
            2 => {
                let r = store.remove(&k).await;
                check.changed(&[Change::Remove(k)], &r)?;
                r.is_ok()
            }
            3 => {
                let r = store.rename(&k, &key(fill)).await;
                check.changed(&[Change::Rename(k, key(fill))], &r)?;
                r.is_ok()
            }
            4 => {
                let r = store.get(&k).await;
                check.read(&k, 0, usize::MAX, &r)?;
                r.is_ok()
            }
            5 => {
                let r = store.get_partial(&k, (n * 53) as u64, 5000).await;
                check.read(&k, (n * 53) as u64, 5000, &r)?;
                r.is_ok()
            }
            6 => {
                let d = k.parent();
                let r = store.list(&d).await;
                if let (Some(m), Ok(got)) = (&check.model, &r)
                    && *got != listing(m, &d)
                {
                    return Err(format!("list {d} gave {got:?}"));
                }
                r.is_ok()
            }
            7 => store.digest(&k).await.is_ok() && store.last_modified(&k).await.is_ok(),
            8 => {
                let r = store.allocate(&k, (n * 1000) as u64).await;
                check.changed(&[Change::Allocate(k, (n * 1000) as u64)], &r)?;
                r.is_ok()
            }
            _ => {
                let mut b = Batch::new();
                b.set(k.clone(), value.clone()).remove(key(fill));
                let r = store.batch(&b).await;
                check.changed(&[Change::Set(k, value), Change::Remove(key(fill))], &r)?;
                r.is_ok()
            }
        };
        ok += done as usize;
    }
    if let Some(m) = &check.model {
        let now = dump(&store).await.map_err(|e| format!("reading the store back: {e}"))?;
        if now != *m {
            return Err(format!("the store holds {:?}, the model {:?}", now.keys(), m.keys()));
        }
    }
    let changed = store.stats().await.commits > 0;
    let image = store.into_inner();
    // What was acknowledged survives a restart.
    if let Some(m) = &check.model {
        let again = Store::open(Image::new(&image.bytes()), Epoch)
            .await
            .map_err(|e| format!("the store cannot be opened again: {e}"))?;
        // (A torn tail may be reported: the slot after the newest record can hold bytes the
        // image came with.)
        let r = again.report();
        if !r.damaged.is_empty() || (changed && !r.repaired.is_empty()) {
            return Err(format!("opened again after a clean run, recovery found {r:?}"));
        }
        let now = dump(&again).await.map_err(|e| format!("reading the reopened store: {e}"))?;
        if now != *m {
            return Err(format!("reopened, the store holds {:?}, the model {:?}", now.keys(), m.keys()));
        }
    }
    Ok(Some(Outcome { ok, modelled, image: image.bytes() }))
}
