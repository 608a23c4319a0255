//! The KV suites on the store over RAM and over a real file, and what opening does to devices.

use std::time::{Duration, UNIX_EPOCH};

use futures::executor::block_on;
use morgana::block::Block;
use morgana::kv::{Key, Kind, KvError, KvRo, KvRw};
use morgana::time::WallClock;
use morgana_mem::{FaultyBlock, MemBlock};
use morgana_store::{Batch, OpenError, Store};
use morgana_testkit as suite;
use morgana_unix::FileBlock;

/// The host's real-time clock.
#[derive(Clone, Copy)]
struct Wall;

impl WallClock for Wall {
    fn now_unix(&self) -> Duration {
        std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
    }
}

fn k(s: &str) -> Key {
    Key::parse(s).unwrap()
}

#[test]
fn the_store_passes_the_kv_suites_on_a_ram_disk() {
    block_on(async {
        for sector in [512, 4096] {
            let sectors = (4 << 20) / sector as u64;
            let store = Store::open(MemBlock::new(sector, sectors), Wall).await.unwrap();
            assert!(store.report().formatted, "a zeroed device is formatted");
            suite::kv::check_rw(&store).await;
        }
        let store = Store::open(FaultyBlock::new(MemBlock::new(512, 8192), 1), Wall).await.unwrap();
        let contents: &[(&str, &[u8])] =
            &[("/index.html", b"<h1>hi</h1>"), ("/css/site.css", b"body{}"), ("/a/b/c/deep", &[7u8; 20_000])];
        for (path, value) in contents {
            store.set(&k(path), value).await.unwrap();
        }
        suite::kv::check_ro(&store, contents).await;
    });
}

#[test]
fn the_store_passes_the_kv_suite_on_a_file_and_keeps_its_data() {
    let dir = std::env::temp_dir().join(format!("morgana-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.img");
    let _ = std::fs::remove_file(&path);
    block_on(async {
        let dev = FileBlock::options().create(8 << 20).open(&path).unwrap();
        let store = Store::open(dev, Wall).await.unwrap();
        suite::kv::check_rw(&store).await;
        store.set(&k("/kept/small"), b"survives a reopen").await.unwrap();
        store.set(&k("/kept/large"), &vec![0x5a; 100_000]).await.unwrap();
        drop(store);
        let store = Store::open(FileBlock::open(&path).unwrap(), Wall).await.unwrap();
        assert!(!store.report().formatted && !store.report().torn_tail);
        assert_eq!(store.get(&k("/kept/small")).await.unwrap(), b"survives a reopen");
        assert_eq!(store.get(&k("/kept/large")).await.unwrap(), vec![0x5a; 100_000]);
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_device_with_other_data_is_refused_and_left_alone() {
    block_on(async {
        let mut dev = MemBlock::new(512, 2048);
        // An ext4 superblock lives at byte 1024; anything non-zero anywhere is someone's data.
        dev.write(700_000 / 512, &[0x53; 512]).await.unwrap();
        let before = dev.as_bytes().to_vec();
        let e = Store::open(&mut dev, Wall).await.err().expect("refused");
        assert!(matches!(e, OpenError::Foreign { offset } if offset == 700_000 / 512 * 512), "{e}");
        assert!(e.to_string().contains("refusing to format"), "{e}");
        assert_eq!(dev.as_bytes(), &before[..], "a refused device is not written");
        let e = Store::open(MemBlock::new(512, 100), Wall).await.err().expect("too small");
        assert!(e.to_string().contains("at least"), "{e}");
    });
}

#[test]
fn a_batch_is_all_or_nothing() {
    block_on(async {
        let store = Store::open(MemBlock::new(512, 4096), Wall).await.unwrap();
        store.set(&k("/v"), b"value").await.unwrap();
        let mut bad = Batch::new();
        bad.set(k("/a"), b"1".to_vec())
            .remove(k("/v"))
            .set(k("/b"), vec![2; 9000])
            .set(k("/b/under"), b"x".to_vec());
        assert_eq!(store.batch(&bad).await, Err(KvError::DictionaryExpected(k("/b"))));
        assert_eq!(store.exists(&k("/a")).await, Ok(None), "nothing of a failed batch is applied");
        assert_eq!(store.exists(&k("/b")).await, Ok(None));
        assert_eq!(store.get(&k("/v")).await.unwrap(), b"value");
        let free = store.stats().await.free_pages;
        let mut good = Batch::new();
        good.set(k("/a"), b"1".to_vec()).rename(k("/v"), k("/w")).set(k("/b"), vec![2; 9000]);
        store.batch(&good).await.unwrap();
        assert_eq!(store.get(&k("/w")).await.unwrap(), b"value");
        assert_eq!(store.get(&k("/b")).await.unwrap(), vec![2; 9000]);
        assert!(store.stats().await.free_pages < free);
    });
}

#[test]
fn a_batch_of_many_sets_fails_with_the_first_error_in_its_own_order() {
    block_on(async {
        let store = Store::open(MemBlock::new(512, 8192), Wall).await.unwrap();
        let name = |i: u32| k(&format!("/k{:04}", (i * 7919) % 1000));
        // Enough keys for a tree of more than one level, set in no particular order.
        let mut first = Batch::new();
        for i in 0..1000 {
            first.set(name(i), vec![i as u8; 150]);
        }
        first.set(k("/d/x"), b"dx".to_vec()).set(k("/e/y"), b"ey".to_vec()).set(k("/v"), b"v".to_vec());
        store.batch(&first).await.unwrap();
        for i in 0..1000 {
            assert_eq!(store.get(&name(i)).await.unwrap(), vec![i as u8; 150]);
        }
        // Three sets that fail among good ones: in key order /d comes first, but the batch's
        // own order puts /e first, and that is the error.
        let mut bad = Batch::new();
        bad.set(k("/new1"), b"1".to_vec())
            .set(k("/e"), b"on a dictionary".to_vec())
            .set(k("/k0001"), b"changed".to_vec())
            .set(k("/d"), b"on a dictionary".to_vec())
            .set(k("/v/under"), b"under a value".to_vec())
            .set(k("/a-new"), b"2".to_vec());
        assert_eq!(store.batch(&bad).await, Err(KvError::ValueExpected(k("/e"))));
        assert_eq!(store.exists(&k("/new1")).await, Ok(None), "nothing of a failed batch is applied");
        assert_eq!(store.exists(&k("/a-new")).await, Ok(None));
        assert_eq!(
            store.get(&k("/k0001")).await.unwrap(),
            vec![(679 % 256) as u8; 150],
            "i = 679 names /k0001"
        );
        assert_eq!(store.get(&k("/d/x")).await.unwrap(), b"dx");
        let mut bad = Batch::new();
        bad.set(k("/new1"), b"1".to_vec()).set(k("/v/under"), b"x".to_vec()).set(k("/d"), b"x".to_vec());
        assert_eq!(store.batch(&bad).await, Err(KvError::DictionaryExpected(k("/v"))));
        // A key set twice in one batch keeps the last value, as in order.
        let mut twice = Batch::new();
        twice.set(k("/t"), b"one".to_vec()).set(k("/k0002"), b"2".to_vec()).set(k("/t"), b"two".to_vec());
        store.batch(&twice).await.unwrap();
        assert_eq!(store.get(&k("/t")).await.unwrap(), b"two");
        let dev = store.into_inner();
        let store = Store::open(dev, Wall).await.unwrap();
        assert_eq!(store.get(&k("/k0002")).await.unwrap(), b"2");
        assert_eq!(store.list(&Key::root()).await.unwrap().len(), 1000 + 4, "1000 keys, /d, /e, /v, /t");
    });
}

#[test]
fn a_set_on_a_dictionary_is_refused_wherever_its_first_entry_falls() {
    block_on(async {
        let store = Store::open(MemBlock::new(512, 8192), Wall).await.unwrap();
        // Dictionaries only, over many leaves: at every leaf boundary the first entry of some
        // dictionary opens the next leaf, so its name finds nothing after it in its own leaf.
        let dirs: Vec<Key> = (0..400).map(|i| k(&format!("/d{i:03}"))).collect();
        let mut b = Batch::new();
        for d in &dirs {
            b.set(d.join("child").unwrap(), vec![1; 150]);
        }
        store.batch(&b).await.unwrap();
        for d in &dirs {
            assert_eq!(store.set(d, b"x").await, Err(KvError::ValueExpected(d.clone())), "{d}");
        }
        let mut b = Batch::new();
        for d in dirs.iter().rev() {
            b.set(d.clone(), b"x".to_vec());
        }
        assert_eq!(store.batch(&b).await, Err(KvError::ValueExpected(dirs[399].clone())));
        assert_eq!(store.list(&Key::root()).await.unwrap().len(), 400);
        assert!(store.list(&Key::root()).await.unwrap().iter().all(|(_, kind)| *kind == Kind::Dictionary));
    });
}

/// A disk whose flush takes a while (it yields to other tasks once), as real ones do.
struct SlowFlush(MemBlock);

impl Block for SlowFlush {
    fn info(&self) -> morgana::block::BlockInfo {
        self.0.info()
    }
    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), morgana::block::BlockError> {
        self.0.read(sector, buf).await
    }
    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), morgana::block::BlockError> {
        self.0.write(sector, buf).await
    }
    async fn flush(&mut self) -> Result<(), morgana::block::BlockError> {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if yielded {
                return std::task::Poll::Ready(());
            }
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await;
        self.0.flush().await
    }
}

#[test]
fn concurrent_writers_share_commits() {
    block_on(async {
        let store = Store::open(SlowFlush(MemBlock::new(512, 4096)), Wall).await.unwrap();
        let keys: Vec<Key> = (0..32).map(|i| k(&format!("/w/{i}"))).collect();
        let done =
            futures::future::join_all(keys.iter().map(|key| store.set(key, key.basename().as_bytes()))).await;
        assert!(done.iter().all(Result::is_ok), "{done:?}");
        let commits = store.stats().await.commits;
        assert!(commits <= 2, "32 concurrent sets took {commits} commits (group commit shares them)");
        for key in &keys {
            assert_eq!(store.get(key).await.unwrap(), key.basename().as_bytes());
        }
    });
}
