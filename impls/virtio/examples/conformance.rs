//! A test image: runs Morgana's conformance suites on the virtio devices QEMU gives it, inside
//! the guest, and exits 0 when they pass (a failed check panics: non-zero exit and the rule that
//! broke). `cargo xtask test` boots it on both transports.
//!
//! `--check block` runs `morgana_testkit::block::check_rw` on the first disk; `--check net` runs
//! `morgana_testkit::net::check_pair` between the first two NICs (joined by a QEMU hub);
//! `--check clock` reports wall and monotonic time across a sleep; `--check panic` and
//! `--check exception` exercise the failure paths (a crash two named calls deep, for the
//! backtrace).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use morgana::{Block, Clock, Platform, WallClock};
    use morgana_args::ArgSpec;
    use morgana_target::{Device, Target};

    const ARGS: &[ArgSpec] = &[ArgSpec::value(
        "check",
        "block|net|clock|panic|exception",
        "what to check (repeatable as a list: block,net)",
    )
    .default("block,net")];

    morgana_virtio::entry!(main);

    fn main() -> ! {
        morgana_virtio::run(&[ARGS], &[Device::Net, Device::Block], |t| {
            let checks: alloc::string::String = t.args().get("check")?;
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

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("conformance: a bare-metal test image; `cargo xtask test` boots it in QEMU");
}
