//! `cargo xtask bench store`: morgana-store on a hosted file against redb on the same file
//! system, in one run.
//!
//! Rows (morgana-store with its default options, then redb), as in redb's own benchmark (24-byte
//! keys, 150-byte values): durable single-key commits per second (each `set` returns after its
//! flush; redb's default `Durability::Immediate`), and batch throughput (one atomic batch per
//! commit, MB/s of keys and values). The two take turns, a commit or a batch each at a time, so
//! that other load on the machine weighs on both alike. Write amplification
//! is the bytes written to the device per byte of key and value: for the store, counted at its
//! `Block`; for redb, the file system's count of bytes this process sent to storage
//! (`/proc/self/io` `write_bytes`).
//!
//! Usage: `morgana-store-bench DIR [COMMITS] [BATCHES] [BATCH_KEYS] [CACHE_BYTES]` (the store's
//! node cache; its default when not given).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use futures::executor::block_on;
use morgana::kv::{Key, KvRw};
use morgana::time::WallClock;
use morgana_layers::{Meter, Metered};
use morgana_store::{Batch, Options, Store};
use morgana_unix::FileBlock;
use redb::{Database, TableDefinition};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");
const KEY: usize = 24;
const VALUE: usize = 150;
const IMAGE: u64 = 256 << 20;

#[derive(Clone, Copy)]
struct Wall;

impl WallClock for Wall {
    fn now_unix(&self) -> Duration {
        std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
    }
}

/// Key `i`: 24 bytes, spread over the key space as random keys are.
fn key(i: u64) -> String {
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("{h:016x}{i:08x}")
}

fn value(i: u64) -> Vec<u8> {
    (0..VALUE).map(|j| (i as usize * 7 + j) as u8).collect()
}

/// Bytes this process has caused to be sent to storage.
fn io_written() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines().find_map(|l| l.strip_prefix("write_bytes: ")).and_then(|v| v.trim().parse().ok())
}

struct Row {
    commits_per_s: f64,
    batch_mb_s: f64,
    amp_commit: Option<f64>,
    amp_batch: Option<f64>,
}

/// Time spent and bytes written by one side, phase by phase.
#[derive(Default)]
struct Tally {
    commit_secs: f64,
    batch_secs: f64,
    commit_bytes: Option<u64>,
    batch_bytes: Option<u64>,
}

impl Tally {
    fn row(&self, commits: u64, keys: u64) -> Row {
        let payload = (KEY + VALUE) as f64;
        Row {
            commits_per_s: commits as f64 / self.commit_secs,
            batch_mb_s: keys as f64 * payload / self.batch_secs / 1e6,
            amp_commit: self.commit_bytes.map(|b| b as f64 / (commits as f64 * payload)),
            amp_batch: self.batch_bytes.map(|b| b as f64 / (keys as f64 * payload)),
        }
    }
}

/// One side of the comparison: durable single-key commits and batches, counting its writes.
trait Side {
    fn commit(&mut self, i: u64) -> Result<(), String>;
    fn batch(&mut self, from: u64, n: u64) -> Result<(), String>;
    /// Bytes written to storage so far.
    fn written(&self) -> Option<u64>;
}

struct Ours {
    store: Store<Metered<FileBlock>, Wall>,
    meter: Meter,
    path: PathBuf,
}

impl Ours {
    fn open(dir: &Path, options: Options) -> Result<Self, String> {
        let path = dir.join("store.img");
        // A written image, as a disk is: a sparse file would make every first write to a page
        // an allocation in the host file system.
        std::fs::write(&path, vec![0u8; IMAGE as usize]).map_err(|e| e.to_string())?;
        std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(|e| e.to_string())?;
        let dev = FileBlock::open(&path).map_err(|e| e.to_string())?;
        let (dev, meter) = Metered::new(dev);
        let store = block_on(Store::open_with(dev, Wall, options)).map_err(|e| e.to_string())?;
        Ok(Self { store, meter, path })
    }

    fn k(i: u64) -> Key {
        Key::parse(&format!("/{}", key(i))).expect("valid key")
    }
}

impl Side for Ours {
    fn commit(&mut self, i: u64) -> Result<(), String> {
        block_on(self.store.set(&Self::k(i), &value(i))).map_err(|e| e.to_string())
    }
    fn batch(&mut self, from: u64, n: u64) -> Result<(), String> {
        let mut batch = Batch::new();
        for i in from..from + n {
            batch.set(Self::k(i), value(i));
        }
        block_on(self.store.batch(&batch)).map_err(|e| e.to_string())
    }
    fn written(&self) -> Option<u64> {
        Some(self.meter.counts().bytes_written)
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

struct Redb {
    db: Database,
    path: PathBuf,
}

impl Redb {
    fn open(dir: &Path) -> Result<Self, String> {
        let path = dir.join("bench.redb");
        let _ = std::fs::remove_file(&path);
        let db = Database::create(&path).map_err(|e| e.to_string())?;
        Ok(Self { db, path })
    }

    fn insert(&self, from: u64, n: u64) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            for i in from..from + n {
                table.insert(key(i).as_bytes(), value(i).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

impl Side for Redb {
    fn commit(&mut self, i: u64) -> Result<(), String> {
        self.insert(i, 1).map_err(|e| e.to_string())
    }
    fn batch(&mut self, from: u64, n: u64) -> Result<(), String> {
        self.insert(from, n).map_err(|e| e.to_string())
    }
    fn written(&self) -> Option<u64> {
        io_written()
    }
}

impl Drop for Redb {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Run `f` on `side`, adding its time to `secs` and the bytes it wrote to `bytes`.
fn timed(
    side: &mut dyn Side,
    secs: &mut f64,
    bytes: &mut Option<u64>,
    f: impl FnOnce(&mut dyn Side) -> Result<(), String>,
) -> Result<(), String> {
    let before = side.written();
    let t = Instant::now();
    f(side)?;
    *secs += t.elapsed().as_secs_f64();
    *bytes = match (*bytes, before, side.written()) {
        (Some(sum), Some(b), Some(a)) => Some(sum + (a - b)),
        _ => None,
    };
    Ok(())
}

/// Both sides in turns (a commit each, then a batch each, at a time), so that a load that comes
/// and goes on the machine (here, mostly other processes' flushes) weighs on both alike.
fn run(
    dir: &Path,
    options: Options,
    commits: u64,
    batches: u64,
    per_batch: u64,
) -> Result<(Row, Row), String> {
    let mut ours = Ours::open(dir, options)?;
    let mut theirs = Redb::open(dir)?;
    let mut tallies = [Tally::default(), Tally::default()];
    for t in &mut tallies {
        t.commit_bytes = Some(0);
        t.batch_bytes = Some(0);
    }
    let [a, b] = &mut tallies;
    for i in 0..commits {
        for (side, t) in [(&mut ours as &mut dyn Side, &mut *a), (&mut theirs, &mut *b)] {
            timed(side, &mut t.commit_secs, &mut t.commit_bytes, |s| s.commit(i))?;
        }
    }
    for batch in 0..batches {
        let from = 1_000_000 + batch * per_batch;
        for (side, t) in [(&mut ours as &mut dyn Side, &mut *a), (&mut theirs, &mut *b)] {
            timed(side, &mut t.batch_secs, &mut t.batch_bytes, |s| s.batch(from, per_batch))?;
        }
    }
    Ok((a.row(commits, batches * per_batch), b.row(commits, batches * per_batch)))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().map_or("target/bench-store", String::as_str));
    let num = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (commits, batches, per_batch) = (num(1, 1000), num(2, 20), num(3, 10_000));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("bench store: {}: {e}", dir.display());
        std::process::exit(1);
    }
    println!(
        "store vs redb in {}: {commits} durable single-key commits, then {batches} batches of {per_batch} keys \
         ({KEY}-byte keys, {VALUE}-byte values)",
        dir.display()
    );
    let options = Options { cache_bytes: num(4, Options::default().cache_bytes as u64) as usize };
    let (o, r) = match run(&dir, options, commits, batches, per_batch) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("bench store: {e}");
            std::process::exit(1);
        }
    };
    let amp = |a: Option<f64>| a.map_or("n/a".to_string(), |a| format!("{a:.1}x"));
    println!(
        "{:<16} {:>14} {:>12} {:>14} {:>14}",
        "", "commits/s", "batch MB/s", "write amp (1)", "write amp (batch)"
    );
    for (name, row) in [("morgana-store", &o), ("redb", &r)] {
        println!(
            "{name:<16} {:>14.0} {:>12.1} {:>14} {:>14}",
            row.commits_per_s,
            row.batch_mb_s,
            amp(row.amp_commit),
            amp(row.amp_batch)
        );
    }
    println!(
        "ratio (store/redb): commits {:.2}x, batch {:.2}x",
        o.commits_per_s / r.commits_per_s,
        o.batch_mb_s / r.batch_mb_s
    );
}
