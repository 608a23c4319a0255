//! A model of the store, a workload generator and helpers shared by the fault tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use morgana::block::Block;
use morgana::kv::KvRw;
use morgana::kv::{Key, Kind, KvError, KvRo};
use morgana::time::WallClock;
use morgana_store::{Batch, Store};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// A clock stuck at one moment (times are not what these tests check).
#[derive(Clone, Copy)]
pub struct Fixed;

impl WallClock for Fixed {
    fn now_unix(&self) -> Duration {
        Duration::from_secs(1_700_000_000)
    }
}

/// Run a future that never waits (everything here is on RAM disks).
pub fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a RAM-disk operation waited"),
    }
}

pub fn k(s: &str) -> Key {
    Key::parse(s).unwrap()
}

/// What the store should hold: every value by key.
pub type Model = BTreeMap<Key, Vec<u8>>;

/// One change the workload makes.
#[derive(Debug, Clone)]
pub enum Change {
    Set(Key, Vec<u8>),
    SetPartial(Key, u64, Vec<u8>),
    Remove(Key),
    Rename(Key, Key),
    Batch(Vec<Change>),
}

impl Change {
    /// Apply to the model (the workload only makes changes that succeed).
    pub fn apply(&self, m: &mut Model) {
        match self {
            Change::Set(key, v) => {
                m.insert(key.clone(), v.clone());
            }
            Change::SetPartial(key, off, d) => {
                let v = m.entry(key.clone()).or_default();
                let end = *off as usize + d.len();
                if v.len() < end {
                    v.resize(end, 0);
                }
                v[*off as usize..end].copy_from_slice(d);
            }
            Change::Remove(key) => m.retain(|k, _| !key.is_prefix_of(k)),
            Change::Rename(s, d) => {
                let moved: Vec<(Key, Vec<u8>)> = m
                    .iter()
                    .filter(|(k, _)| s.is_prefix_of(k))
                    .map(|(k, v)| {
                        let rest: Vec<&str> = k.segments().skip(s.segments().len()).collect();
                        (rest.iter().fold(d.clone(), |a, seg| a.join(seg).unwrap()), v.clone())
                    })
                    .collect();
                m.retain(|k, _| !s.is_prefix_of(k) && !d.is_prefix_of(k));
                m.extend(moved);
            }
            Change::Batch(cs) => cs.iter().for_each(|c| c.apply(m)),
        }
    }

    /// Run on the store.
    pub async fn run<B: Block, C: WallClock>(&self, store: &Store<B, C>) -> Result<(), KvError> {
        match self {
            Change::Set(key, v) => store.set(key, v).await,
            Change::SetPartial(key, off, d) => store.set_partial(key, *off, d).await,
            Change::Remove(key) => store.remove(key).await,
            Change::Rename(s, d) => store.rename(s, d).await,
            Change::Batch(cs) => {
                let mut b = Batch::new();
                for c in cs {
                    match c {
                        Change::Set(key, v) => b.set(key.clone(), v.clone()),
                        Change::SetPartial(key, off, d) => b.set_partial(key.clone(), *off, d.clone()),
                        Change::Remove(key) => b.remove(key.clone()),
                        Change::Rename(s, d) => b.rename(s.clone(), d.clone()),
                        Change::Batch(_) => unreachable!("batches do not nest"),
                    };
                }
                store.batch(&b).await
            }
        }
    }
}

/// Seeded changes over `/dN/kM`: values small and large, dictionaries renamed and removed.
pub struct Workload {
    rng: ChaCha8Rng,
}

impl Workload {
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    fn pick(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n
    }

    fn value(&mut self) -> Vec<u8> {
        let len = match self.pick(4) {
            0 => self.pick(64),
            1 => self.pick(600),
            2 => 4096 + self.pick(200),
            _ => self.pick(10_000),
        } as usize;
        let fill = self.rng.next_u64() as u8;
        (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
    }

    fn key(&mut self) -> Key {
        k(&format!("/d{}/k{}", self.pick(4), self.pick(6)))
    }

    fn one(&mut self, m: &Model) -> Change {
        let existing: Vec<&Key> = m.keys().collect();
        match self.pick(10) {
            0..=3 => Change::Set(self.key(), self.value()),
            4 | 5 => {
                let off = self.pick(9000);
                let len = self.pick(3000) as usize;
                let fill = self.rng.next_u64() as u8;
                Change::SetPartial(self.key(), off, vec![fill | 1; len])
            }
            6 if !existing.is_empty() => {
                Change::Remove(existing[self.pick(existing.len() as u64) as usize].clone())
            }
            7 if !existing.is_empty() => {
                let s = existing[self.pick(existing.len() as u64) as usize].clone();
                Change::Rename(s, self.key())
            }
            8 => {
                let (a, b) = (self.pick(4), self.pick(4));
                if a == b || !m.keys().any(|key| k(&format!("/d{a}")).is_prefix_of(key)) {
                    Change::Set(self.key(), self.value())
                } else {
                    Change::Rename(k(&format!("/d{a}")), k(&format!("/d{b}")))
                }
            }
            _ => Change::Remove(k(&format!("/d{}", self.pick(4)))),
        }
    }

    /// The next change that succeeds on `m`.
    pub fn next(&mut self, m: &Model) -> Change {
        if self.pick(6) == 0 {
            let mut scratch = m.clone();
            let mut cs = Vec::new();
            for _ in 0..2 + self.pick(4) {
                let c = self.valid(&scratch);
                c.apply(&mut scratch);
                cs.push(c);
            }
            return Change::Batch(cs);
        }
        self.valid(m)
    }

    fn valid(&mut self, m: &Model) -> Change {
        loop {
            let c = self.one(m);
            let ok = match &c {
                Change::Remove(key) => m.keys().any(|x| key.is_prefix_of(x)),
                Change::Rename(s, d) => {
                    s != d && !s.is_prefix_of(d) && !d.is_prefix_of(s) && m.keys().any(|x| s.is_prefix_of(x))
                }
                _ => true,
            };
            if ok {
                return c;
            }
        }
    }
}

/// Everything the store holds, walked through `list` and `get`.
pub async fn dump<S: KvRo>(store: &S) -> Result<Model, KvError> {
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

/// A short description of a model, for failure messages.
pub fn describe(m: &Model) -> String {
    m.iter().map(|(k, v)| format!("{k}={}B", v.len())).collect::<Vec<_>>().join(" ")
}
