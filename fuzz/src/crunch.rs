//! The compiled-in store (`morgana-crunch`): any question about any key, on tables of files
//! such as `build::embed` generates, checked against `morgana-mem`'s `MemKv` holding the same
//! files.
//!
//! The input's first two bytes choose which files of a fixed pool the table holds; the rest is
//! a list of queries (`exists`, `get`, `get_partial`, `list`, `size`, `last_modified`,
//! `digest`), each on a key read from the input. Every answer, errors included, must equal
//! the model's: the store's binary searches and contiguous ranges are the code under test.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::executor::block_on;
use morgana::kv::{Key, KvRo, KvRw};
use morgana_crunch::{Crunch, File};
use morgana_mem::{ManualClock, MemKv};

/// The pool: names that sort close together by bytes and by segments (`a`, `a-b`, `a.b`,
/// `a/…`), deep and shallow paths, non-ASCII, an empty file. None is a prefix of another.
const POOL: &[(&str, &[u8])] = &[
    ("/a/b/c", b"deep"),
    ("/a/b/d.txt", b"text"),
    ("/a/d", b"world!"),
    ("/a-b", b"dash"),
    ("/a.b/x", b"dot"),
    ("/ab", b"ab"),
    ("/css/site.css", b"body{}"),
    ("/docs/a/b/c/d", b"very deep"),
    ("/docs/index.html", b"<h1>docs</h1>"),
    ("/index.html", b"<h1>hi</h1>"),
    ("/z", b""),
    ("/\u{e9}/\u{fc}", b"accents"),
    ("/b", b"b"),
    ("/a/b0", b"b0"),
    ("/A", b"upper"),
    ("/a/bb/c", b"bbc"),
];

/// Tables built so far, by subset: at most 2^16, kept for the process's life (a static, so
/// never dropped: the leak checker sees them reachable, as a thread-local's would not be once
/// its thread ends).
static TABLES: Mutex<BTreeMap<u16, &'static [File]>> = Mutex::new(BTreeMap::new());

/// The table holding the pool's files whose bits are set in `mask`, sorted as `build::embed`
/// sorts (by key segments); every other file has its digest computed on demand.
fn table(mask: u16) -> &'static [File] {
    let mut tables = TABLES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tables.entry(mask).or_insert_with(|| {
        let mut files: Vec<File> = POOL
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(i, (path, data))| {
                let mut f = File::new(path, data, 1000 + i as u64 * 7);
                if i % 2 == 0 {
                    f.digest = Some(block_on(digest_alone(path, data)));
                }
                f
            })
            .collect();
        files.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
        Vec::leak(files)
    })
}

/// The digest `MemKv` gives a lone value: what a build-time digest must equal.
async fn digest_alone(path: &str, data: &[u8]) -> [u8; 32] {
    let kv = MemKv::new(ManualClock::new(Duration::ZERO));
    let key = Key::parse(path).expect("pool keys are valid");
    kv.set(&key, data).await.expect("an empty store takes a value");
    kv.digest(&key).await.expect("the value exists")
}

/// The same files in a `MemKv`, each written at its modification time.
async fn model(files: &[File]) -> MemKv<ManualClock> {
    let clock = ManualClock::new(Duration::ZERO);
    let kv = MemKv::new(clock.clone());
    let mut by_time: Vec<&File> = files.iter().collect();
    by_time.sort_by_key(|f| f.modified);
    for f in by_time {
        let now = morgana::WallClock::now_unix(&clock).as_secs();
        clock.advance(Duration::from_secs(f.modified - now));
        kv.set(&Key::parse(f.path).expect("pool keys are valid"), f.data).await.expect("no conflicts");
    }
    kv
}

/// Ask the table and the model the questions in `data`.
pub fn run(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let mask = u16::from_le_bytes([data[0], data[1]]);
    let files = table(mask);
    let store = Crunch::new(files);
    block_on(async {
        let kv = model(files).await;
        assert_eq!(store.list(&Key::root()).await, kv.list(&Key::root()).await);
        let mut rest = &data[2..];
        while let [op, len, tail @ ..] = rest {
            let n = usize::from(*len).min(tail.len());
            let (key, tail) = tail.split_at(n);
            rest = tail;
            let Ok(key) = std::str::from_utf8(key).map_err(drop).and_then(|k| Key::parse(k).map_err(drop))
            else {
                continue;
            };
            match op % 7 {
                0 => assert_eq!(store.exists(&key).await, kv.exists(&key).await, "exists {key}"),
                1 => assert_eq!(store.get(&key).await, kv.get(&key).await, "get {key}"),
                2 => {
                    let (offset, len, tail) = match rest {
                        [o, l, tail @ ..] => (*o, *l, tail),
                        _ => (0, 0, rest),
                    };
                    rest = tail;
                    // Small offsets, and now and then one past anything.
                    let offset = if offset == 255 { u64::MAX } else { u64::from(offset % 16) };
                    let len = if len == 255 { usize::MAX } else { usize::from(len % 16) };
                    assert_eq!(
                        store.get_partial(&key, offset, len).await,
                        kv.get_partial(&key, offset, len).await,
                        "get_partial {key} {offset} {len}"
                    );
                }
                3 => assert_eq!(store.list(&key).await, kv.list(&key).await, "list {key}"),
                4 => assert_eq!(store.size(&key).await, kv.size(&key).await, "size {key}"),
                5 => assert_eq!(
                    store.last_modified(&key).await,
                    kv.last_modified(&key).await,
                    "last_modified {key}"
                ),
                _ => assert_eq!(store.digest(&key).await, kv.digest(&key).await, "digest {key}"),
            }
        }
    });
}

/// Every pool key (and a few absent ones) asked every question, on the whole pool and on
/// halves of it.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut keys: Vec<&str> = POOL.iter().map(|(p, _)| *p).collect();
    keys.extend(["/", "/a", "/a/b", "/docs", "/docs/a/b", "/nope", "/a/b/c/x", "/\u{e9}"]);
    let mut out = Vec::new();
    for (name, mask) in [("all", 0xffffu16), ("even", 0x5555), ("odd", 0xaaaa)] {
        for op in 0..7u8 {
            let mut v = mask.to_le_bytes().to_vec();
            for k in &keys {
                v.push(op);
                v.push(k.len() as u8);
                v.extend_from_slice(k.as_bytes());
                if op == 2 {
                    v.extend_from_slice(&[1, 3]);
                }
            }
            out.push((format!("{name}-op{op}"), v));
        }
    }
    out
}
