//! `cargo xtask bench store`: morgana-store on a hosted file against redb on the same file
//! system, in one run.
//!
//! Rows (morgana-store with its default options, then redb), as in redb's own benchmark (24-byte keys, 150-byte values): durable single-key commits
//! per second (each `set` returns after its flushes; redb's default `Durability::Immediate`), and
//! batch throughput (one atomic batch per commit, MB/s of keys and values). Write amplification
//! is the bytes written to the device per byte of key and value: for the store, counted at its
//! `Block`; for redb, the file system's count of bytes this process sent to storage
//! (`/proc/self/io` `write_bytes`).
//!
//! Usage: `morgana-store-bench DIR [COMMITS] [BATCHES] [BATCH_KEYS]`.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use futures::executor::block_on;
use morgana::block::{Block, BlockError, BlockInfo};
use morgana::kv::{Key, KvRw};
use morgana::time::WallClock;
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

/// A block device that counts the bytes written to it.
struct Counted {
    dev: FileBlock,
    written: Rc<Cell<u64>>,
}

impl Block for Counted {
    fn info(&self) -> BlockInfo {
        self.dev.info()
    }
    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.dev.read(sector, buf).await
    }
    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.written.set(self.written.get() + buf.len() as u64);
        self.dev.write(sector, buf).await
    }
    async fn flush(&mut self) -> Result<(), BlockError> {
        self.dev.flush().await
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

fn ours(dir: &Path, options: Options, commits: u64, batches: u64, per_batch: u64) -> Result<Row, String> {
    let path = dir.join("store.img");
    // A written image, as a disk is: a sparse file would make every first write to a page an
    // allocation in the host file system.
    std::fs::write(&path, vec![0u8; IMAGE as usize]).map_err(|e| e.to_string())?;
    std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(|e| e.to_string())?;
    let dev = FileBlock::open(&path).map_err(|e| e.to_string())?;
    let written = Rc::new(Cell::new(0));
    let store = block_on(Store::open_with(Counted { dev, written: written.clone() }, Wall, options))
        .map_err(|e| e.to_string())?;
    let k = |i: u64| Key::parse(&format!("/{}", key(i))).expect("valid key");
    let payload = (KEY + VALUE) as f64;
    let t = Instant::now();
    let before = written.get();
    for i in 0..commits {
        block_on(store.set(&k(i), &value(i))).map_err(|e| e.to_string())?;
    }
    let commit_secs = t.elapsed().as_secs_f64();
    let after = written.get();
    let amp_commit = (after - before) as f64 / (commits as f64 * payload);
    let t = Instant::now();
    for b in 0..batches {
        let mut batch = Batch::new();
        for j in 0..per_batch {
            let i = 1_000_000 + b * per_batch + j;
            batch.set(k(i), value(i));
        }
        block_on(store.batch(&batch)).map_err(|e| e.to_string())?;
    }
    let batch_secs = t.elapsed().as_secs_f64();
    let amp_batch = (written.get() - after) as f64 / ((batches * per_batch) as f64 * payload);
    drop(store);
    std::fs::remove_file(&path).map_err(|e| e.to_string())?;
    Ok(Row {
        commits_per_s: commits as f64 / commit_secs,
        batch_mb_s: (batches * per_batch) as f64 * payload / batch_secs / 1e6,
        amp_commit: Some(amp_commit),
        amp_batch: Some(amp_batch),
    })
}

fn redb(dir: &Path, commits: u64, batches: u64, per_batch: u64) -> Result<Row, String> {
    let path = dir.join("bench.redb");
    let _ = std::fs::remove_file(&path);
    let db = Database::create(&path).map_err(|e| e.to_string())?;
    let payload = (KEY + VALUE) as f64;
    let insert = |from: u64, n: u64| -> Result<(), redb::Error> {
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            for i in from..from + n {
                table.insert(key(i).as_bytes(), value(i).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    };
    let io0 = io_written();
    let t = Instant::now();
    for i in 0..commits {
        insert(i, 1).map_err(|e| e.to_string())?;
    }
    let commit_secs = t.elapsed().as_secs_f64();
    let io1 = io_written();
    let t = Instant::now();
    for b in 0..batches {
        insert(1_000_000 + b * per_batch, per_batch).map_err(|e| e.to_string())?;
    }
    let batch_secs = t.elapsed().as_secs_f64();
    let io2 = io_written();
    drop(db);
    std::fs::remove_file(&path).map_err(|e| e.to_string())?;
    let amp = |a: Option<u64>, b: Option<u64>, n: u64| Some((b? - a?) as f64 / (n as f64 * payload));
    Ok(Row {
        commits_per_s: commits as f64 / commit_secs,
        batch_mb_s: (batches * per_batch) as f64 * payload / batch_secs / 1e6,
        amp_commit: amp(io0, io1, commits),
        amp_batch: amp(io1, io2, batches * per_batch),
    })
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
    let rows = ours(&dir, Options::default(), commits, batches, per_batch)
        .and_then(|o| Ok((o, redb(&dir, commits, batches, per_batch)?)));
    let (o, r) = match rows {
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
