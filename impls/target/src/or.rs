//! A store given at run time, or the app's compiled-in fallback: one type, so the app's `start`
//! is monomorphised once.

use alloc::vec::Vec;

use morgana::{Duration, Key, Kind, KvError, KvRo};

/// The store the user gave ([`Or::Given`]) or the app's fallback ([`Or::Fallback`]), as
/// [`Target::kv_ro_or`](crate::Target::kv_ro_or) returns it. Every method is a `match`; where
/// the target has no stores (`Given` holds an [`Absent`](crate::Absent)), only the fallback's
/// code remains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Or<G, F> {
    /// The store given by the argument.
    Given(G),
    /// The app's own (compiled-in) store.
    Fallback(F),
}

macro_rules! either {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Or::Given($s) => $e,
            Or::Fallback($s) => $e,
        }
    };
}

impl<G: KvRo, F: KvRo> KvRo for Or<G, F> {
    async fn exists(&self, key: &Key) -> Result<Option<Kind>, KvError> {
        either!(self, s => s.exists(key).await)
    }
    async fn get(&self, key: &Key) -> Result<Vec<u8>, KvError> {
        either!(self, s => s.get(key).await)
    }
    async fn get_partial(&self, key: &Key, offset: u64, len: usize) -> Result<Vec<u8>, KvError> {
        either!(self, s => s.get_partial(key, offset, len).await)
    }
    async fn list(&self, key: &Key) -> Result<Vec<(Key, Kind)>, KvError> {
        either!(self, s => s.list(key).await)
    }
    async fn size(&self, key: &Key) -> Result<u64, KvError> {
        either!(self, s => s.size(key).await)
    }
    async fn last_modified(&self, key: &Key) -> Result<Duration, KvError> {
        either!(self, s => s.last_modified(key).await)
    }
    async fn digest(&self, key: &Key) -> Result<[u8; 32], KvError> {
        either!(self, s => s.digest(key).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use morgana::KvRw;
    use morgana_mem::{ManualClock, MemKv};

    #[test]
    fn reads_whichever_store_it_holds() {
        let key = Key::parse("/a").unwrap();
        futures::executor::block_on(async {
            let clock = ManualClock::default();
            let (given, fallback) = (MemKv::new(clock.clone()), MemKv::new(clock));
            given.set(&key, b"given").await.unwrap();
            fallback.set(&key, b"fallback").await.unwrap();
            let g: Or<MemKv<ManualClock>, MemKv<ManualClock>> = Or::Given(given);
            let f: Or<MemKv<ManualClock>, MemKv<ManualClock>> = Or::Fallback(fallback);
            assert_eq!(g.get(&key).await.unwrap(), b"given");
            assert_eq!(f.get(&key).await.unwrap(), b"fallback");
            assert_eq!(f.size(&key).await.unwrap(), 8);
        });
    }
}
