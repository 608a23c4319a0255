//! A test image: runs Morgana's conformance suites on the virtio devices QEMU gives it, inside
//! the guest, and exits 0 when they pass (a failed check panics: non-zero exit and the rule that
//! broke). `cargo xtask test` boots it on both transports.
//!
//! `--check block` runs `morgana_testkit::block::check_rw` on the first disk; `--check net` runs
//! `morgana_testkit::net::check_pair` between the first two NICs (joined by a QEMU hub);
//! `--check clock` reports wall and monotonic time across a sleep; `--check store` runs
//! `morgana_testkit::kv::check_rw` on morgana-store over the first disk (blank: the store formats
//! it); `--check store-bench` runs `cargo xtask bench store`'s workload on it (formatted by the
//! host) and prints its figures; `--check panic` and `--check exception` exercise the failure
//! paths (a crash two named calls deep, for the backtrace).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use morgana::{Block, Clock, Platform, WallClock};
    use morgana_args::ArgSpec;
    use morgana_target::{Device, Target};

    const ARGS: &[ArgSpec] = &[
        ArgSpec::value(
            "check",
            "block|net|clock|store|store-bench|panic|exception",
            "what to check (repeatable as a list: block,net)",
        )
        .default("block,net"),
        ArgSpec::value("commits", "N", "store-bench: durable single-key commits").default("500"),
        ArgSpec::value("batches", "N", "store-bench: atomic batches after the commits").default("5"),
        ArgSpec::value("batch-keys", "N", "store-bench: keys in each batch").default("10000"),
    ];

    morgana_virtio::entry!(main);

    fn main() -> ! {
        morgana_virtio::run(&[ARGS], &[Device::Net, Device::Block], |t| {
            let checks: alloc::string::String = t.args().get("check")?;
            let sizes = crate::store_bench::Sizes {
                commits: t.args().get("commits")?,
                batches: t.args().get("batches")?,
                batch_keys: t.args().get("batch-keys")?,
            };
            let platform = t.platform();
            let mut devices = core::mem::take(t.devices());
            Ok(async move {
                for check in checks.split(',') {
                    match check {
                        "block" => {
                            let mut disk = devices.block().ok_or("no virtio-blk disk")?;
                            morgana_testkit::block::check_rw(&mut disk).await;
                            log::info!("block: check_rw passed on {} sectors", disk.info().sectors);
                        }
                        "net" => {
                            let mut a = devices.net().ok_or("no virtio-net interface")?;
                            let mut b =
                                devices.net().ok_or("only one virtio-net interface; the check needs two")?;
                            morgana_testkit::net::check_pair(&mut a, &mut b, &platform.clock()).await;
                            log::info!("net: check_pair passed");
                        }
                        "store" => {
                            let disk = devices.block().ok_or("no virtio-blk disk")?;
                            let sectors = disk.info().sectors;
                            let store =
                                morgana_store::Store::open(disk, platform.clock()).await.map_err(|e| {
                                    log::error!("store: {e}");
                                    "store: the disk could not be opened"
                                })?;
                            if !store.report().formatted {
                                return Err(
                                    "store: the disk was not blank (the check formats a zeroed disk)",
                                );
                            }
                            morgana_testkit::kv::check_rw(&store).await;
                            log::info!("store: the KV suite passed on virtio-blk ({sectors} sectors)");
                        }
                        "store-bench" => {
                            let disk = devices.block().ok_or("no virtio-blk disk")?;
                            crate::store_bench::run(disk, platform.clock(), sizes).await?;
                        }
                        "clock" => {
                            let clock = platform.clock();
                            let (t0, u0) = (clock.now(), clock.now_unix());
                            clock.sleep(morgana::Duration::from_millis(200)).await;
                            let (t1, u1) = (clock.now(), clock.now_unix());
                            log::info!(
                                "clock: unix {} s, slept {} ms monotonic, {} ms wall",
                                u1.as_secs(),
                                (t1 - t0).as_millis(),
                                u1.saturating_sub(u0).as_millis()
                            );
                        }
                        "panic" => _ = crash_outer(false),
                        "exception" => _ = crash_outer(true),
                        "out-of-memory" => {
                            // 64 KiB at a time, kept (not written: under an emulating KVM a
                            // memset of the whole heap takes seconds), until there is no room.
                            let mut kept = alloc::vec::Vec::new();
                            loop {
                                kept.push(alloc::vec::Vec::<u8>::with_capacity(64 * 1024));
                            }
                        }
                        "stack-overflow" => {
                            let depth = morgana_virtio::stack_overflow();
                            log::info!("recursed {depth} deep and came back");
                        }
                        _ => {
                            return Err(
                                "unknown check: expected block, net, clock, panic, exception, out-of-memory or stack-overflow",
                            );
                        }
                    }
                }
                Ok(())
            })
        })
    }

    /// `--check panic` and `--check exception`: a crash two named calls deep, whose backtrace
    /// shows both (not inlined, and not tail calls: each does something after its call).
    #[inline(never)]
    fn crash_outer(fault: bool) -> u32 {
        crash_inner(core::hint::black_box(fault)).wrapping_add(1)
    }

    /// A page fault or a panic.
    #[inline(never)]
    fn crash_inner(fault: bool) -> u32 {
        if fault {
            morgana_virtio::page_fault();
        } else {
            panic!("deliberate panic from the conformance image");
        }
        core::hint::black_box(0)
    }

    extern crate alloc;
}

/// `--check store-bench`: the workload of `cargo xtask bench store` (bench/store) on virtio-blk,
/// with the same keys and values, timed by the guest's clock.
#[cfg(target_os = "none")]
mod store_bench {
    extern crate alloc;

    use alloc::format;
    use alloc::vec::Vec;

    use morgana::block::Block;
    use morgana::kv::{Key, KvRw};
    use morgana::{Clock, WallClock};
    use morgana_store::{Batch, Store};

    /// How much work: what `cargo xtask bench store` passes.
    #[derive(Clone, Copy)]
    pub struct Sizes {
        pub commits: u64,
        pub batches: u64,
        pub batch_keys: u64,
    }

    /// Key `i`, 24 bytes, and its 150-byte value: bench/store's.
    fn key(i: u64) -> Key {
        let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Key::parse(&format!("/{h:016x}{i:08x}")).expect("a valid key")
    }

    fn value(i: u64) -> Vec<u8> {
        (0..150).map(|j| (i as usize * 7 + j) as u8).collect()
    }

    /// Run the workload and print one line: `store-bench: commits C in T us (W bytes written);
    /// batches B of K keys in T us (W bytes written)`.
    pub async fn run<B, C>(disk: B, clock: C, sizes: Sizes) -> Result<(), &'static str>
    where
        B: Block,
        C: Clock + WallClock + Clone,
    {
        let (dev, meter) = morgana_layers::Metered::new(disk);
        let written = || meter.counts().bytes_written;
        let store = Store::open(dev, clock.clone()).await.map_err(|e| {
            log::error!("store-bench: {e}");
            "store-bench: the disk could not be opened"
        })?;
        let t0 = clock.now();
        for i in 0..sizes.commits {
            store.set(&key(i), &value(i)).await.map_err(|e| {
                log::error!("store-bench: commit {i}: {e}");
                "store-bench: a commit failed"
            })?;
        }
        let (t1, w1) = (clock.now(), written());
        for b in 0..sizes.batches {
            let from = 1_000_000 + b * sizes.batch_keys;
            let mut batch = Batch::new();
            for i in from..from + sizes.batch_keys {
                batch.set(key(i), value(i));
            }
            store.batch(&batch).await.map_err(|e| {
                log::error!("store-bench: batch {b}: {e}");
                "store-bench: a batch failed"
            })?;
        }
        let (t2, w2) = (clock.now(), written());
        log::info!(
            "store-bench: commits {} in {} us ({w1} bytes written); batches {} of {} keys in {} us ({} bytes written)",
            sizes.commits,
            (t1 - t0).as_micros(),
            sizes.batches,
            sizes.batch_keys,
            (t2 - t1).as_micros(),
            w2 - w1
        );
        Ok(())
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("conformance: a bare-metal test image; `cargo xtask test` boots it in QEMU");
}
