//! Power cuts at every block write and flush of a workload, with pending writes lost, kept or
//! torn in any order: after recovery the store equals the model as of the last acknowledged
//! change or as of the change under way, never anything else.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use common::{Fixed, Model, Workload, describe, dump, k, now};
use morgana::block::{Block, BlockError, BlockInfo};
use morgana::kv::KvRw;
use morgana_mem::{FaultyBlock, MemBlock};
use morgana_store::{Options, Store};

/// The states a recovered store may be in, and the count of cuts tried.
#[derive(Default)]
struct Sweep {
    acked: Model,
    pending: Option<Model>,
    cuts: u64,
    double: u64,
    /// Recoveries that rebuilt a page of the newest commit from its parity.
    repaired: u64,
    /// Recoveries that rolled the newest commit back.
    torn: u64,
}

impl Sweep {
    /// Cut the power on a copy of `dev` now, recover, and check.
    fn cut(&mut self, dev: &FaultyBlock<MemBlock>) {
        self.cuts += 1;
        let n = self.cuts;
        let mut d = dev.clone();
        d.reseed(n);
        // Lose everything pending, keep everything, or any mix, with and without tears.
        let (lose, tear) = [(1.0, 0.0), (0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.2, 0.8)][n as usize % 5];
        d.set_power_cut_faults(lose, tear);
        now(d.power_cut()).unwrap();
        let writes = d.writes();
        let store = now(Store::open(d, Fixed)).unwrap_or_else(|e| panic!("cut {n}: recovery failed: {e}"));
        assert!(
            store.report().damaged.is_empty(),
            "cut {n}: a power cut is not corruption: {:?}",
            store.report()
        );
        let got = now(dump(&store)).unwrap_or_else(|e| panic!("cut {n}: reading the recovered store: {e}"));
        if got != self.acked && Some(&got) != self.pending.as_ref() {
            panic!(
                "cut {n}: recovered\n  {}\nbut the last acknowledged state is\n  {}\nand the one under way\n  {}",
                describe(&got),
                describe(&self.acked),
                self.pending.as_ref().map_or("(none)".into(), describe)
            );
        }
        self.repaired += !store.report().repaired.is_empty() as u64;
        self.torn += store.report().torn_tail as u64;
        let formatted = store.report().formatted;
        let d = store.into_inner();
        assert!(formatted || d.writes() == writes, "cut {n}: recovery wrote to the device");
        if n.is_multiple_of(16) {
            self.double_fault(d, got);
        }
    }

    /// A second power cut, during the first change after recovery, at a sampled write.
    fn double_fault(&mut self, d: FaultyBlock<MemBlock>, state: Model) {
        self.double += 1;
        let n = self.cuts;
        let w = d.writes();
        let mut d = d.fail_after_writes(w + n % 7);
        d.set_power_cut_faults(0.5, 0.5);
        let store = now(Store::open(d, Fixed)).unwrap();
        let key = k("/d9/double");
        let acked = now(store.set(&key, &[n as u8; 5000])).is_ok();
        let mut d = store.into_inner();
        now(d.power_cut()).unwrap();
        let store = now(Store::open(d, Fixed)).unwrap_or_else(|e| panic!("cut {n}+: recovery failed: {e}"));
        let got = now(dump(&store)).unwrap();
        let mut after = state.clone();
        after.insert(key, vec![n as u8; 5000]);
        assert!(
            got == after || (!acked && got == state),
            "cut {n}+: a second cut recovered {}",
            describe(&got)
        );
    }
}

/// The device the store runs on: a faulty disk that lets the sweep cut a copy at every write
/// (after it, so that write is pending) and every flush (before it).
struct Tap {
    dev: FaultyBlock<MemBlock>,
    sweep: Rc<RefCell<Sweep>>,
}

impl Block for Tap {
    fn info(&self) -> BlockInfo {
        self.dev.info()
    }
    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.dev.read(sector, buf).await
    }
    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.dev.write(sector, buf).await?;
        self.sweep.borrow_mut().cut(&self.dev);
        Ok(())
    }
    async fn flush(&mut self) -> Result<(), BlockError> {
        self.sweep.borrow_mut().cut(&self.dev);
        self.dev.flush().await
    }
}

#[test]
fn every_power_cut_recovers_an_acknowledged_or_in_flight_state() {
    // `cargo xtask bench store --soak` asks for many more.
    let cuts: u64 = std::env::var("MORGANA_STORE_CUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(12_000);
    sweep(Options::default(), 7, cuts);
}

#[test]
fn every_power_cut_recovers_with_a_cache_of_four_nodes_too() {
    // Every node read comes from the device again (the paths that re-read what a commit
    // wrote), on another workload.
    let cuts: u64 = std::env::var("MORGANA_STORE_CUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(4_000);
    sweep(Options { cache_bytes: 0 }, 8, cuts);
}

fn sweep(options: Options, seed: u64, cuts: u64) {
    let started = Instant::now();
    let sweep = Rc::new(RefCell::new(Sweep::default()));
    // 1 MiB: the workload's live data is a fifth of it, so space is reclaimed all along.
    let tap = Tap { dev: FaultyBlock::new(MemBlock::new(512, 2048), 1), sweep: sweep.clone() };
    let store = now(Store::open_with(tap, Fixed, options)).unwrap();
    let mut model = Model::new();
    let mut work = Workload::new(seed);
    let mut changes = 0;
    while sweep.borrow().cuts < cuts {
        let change = work.next(&model);
        let mut after = model.clone();
        change.apply(&mut after);
        sweep.borrow_mut().pending = Some(after.clone());
        now(change.run(&store)).unwrap_or_else(|e| panic!("change {changes} {change:?}: {e}"));
        model = after;
        let mut s = sweep.borrow_mut();
        s.acked = model.clone();
        s.pending = None;
        changes += 1;
    }
    assert_eq!(now(dump(&store)).unwrap(), model, "the store that was never cut equals the model");
    let s = sweep.borrow();
    let stats = now(store.stats());
    eprintln!(
        "cache {} KiB: {} distinct power cuts ({} double) over {changes} changes in {:.1} s; {} rolled the newest commit back, {} rebuilt a page of it from parity; {} commits, {} pages free of {}",
        options.cache_bytes / 1024,
        s.cuts,
        s.double,
        started.elapsed().as_secs_f64(),
        s.torn,
        s.repaired,
        stats.commits,
        stats.free_pages,
        stats.pages
    );
    assert!(s.cuts >= cuts);
    assert!(s.torn > 0 && s.repaired > 0, "the sweep rolled commits back and rebuilt pages from parity");
}
