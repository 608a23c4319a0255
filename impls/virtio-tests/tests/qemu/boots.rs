//! Boots checked by what the guest prints and how it exits: every machine and accelerator,
//! timers, the clocks, bad arguments, panics and CPU exceptions, the conformance suites on
//! virtio-mmio and virtio-pci, the compiled-in store, disks, and the one-line refusals of
//! `cargo xtask run`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use morgana_netns::{Need, Suite};
use morgana_qemu::{Boot, Exit, NetSpec, Vm, capture};
use morgana_virtio_tests::Env;

use crate::checks::{
    check_backtrace, check_clock, check_conformance_clock, check_hello, on_stderr, only_line,
};
use crate::needs;

/// How a test starts a guest.
enum Launch {
    /// QEMU directly.
    Qemu(Vm),
    /// `cargo xtask run ...` (these arguments), as a user types it; its status is the guest's.
    Xtask(Vec<String>),
}

impl Launch {
    fn boot(&self, env: &Env, timeout: Duration) -> Result<Boot, String> {
        match self {
            Launch::Qemu(vm) => morgana_qemu::boot(vm, timeout),
            Launch::Xtask(args) => {
                let mut c = std::process::Command::new(&env.xtask);
                c.args(args);
                capture(c, Exit::Plain, timeout)
            }
        }
    }
}

/// A file of `len` zero bytes for one boot, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn create(path: &Path, len: u64) -> Result<Self, String> {
        std::fs::File::create(path)
            .and_then(|f| f.set_len(len))
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Self(path.to_path_buf()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A scratch file's path (created by the test that uses it).
fn scratch(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("morgana-virtio-{tag}-{}.img", std::process::id()))
}

struct Cases<'a> {
    suite: &'a mut Suite,
    env: &'a Env,
    base: &'a [Need],
}

impl Cases<'_> {
    /// A boot of `launch` (with `files` created first), `check`ed.
    fn add(
        &mut self,
        name: &str,
        more: &[Need],
        files: &[(&Path, u64)],
        launch: Launch,
        secs: u64,
        check: impl Fn(&Boot) -> Result<(), String> + Send + 'static,
    ) {
        let env = self.env.clone();
        let files: Vec<(PathBuf, u64)> = files.iter().map(|(p, n)| (p.to_path_buf(), *n)).collect();
        self.suite.check(name, &needs(self.base, more), move || {
            let _files = files.iter().map(|(p, n)| Scratch::create(p, *n)).collect::<Result<Vec<_>, _>>()?;
            let b = launch.boot(&env, Duration::from_secs(secs))?;
            check(&b).map_err(|e| format!("{e}\n{}", b.text()))
        });
    }

    fn qemu(&self, image: &Path) -> Vm {
        Vm::new(image, self.env.kvm)
    }

    fn xtask(&self, app: &str, extra: &[&str], app_args: &[&str]) -> Launch {
        Launch::Xtask(self.env.xtask_run_args(app, extra, app_args))
    }
}

/// The boots.
pub fn add(suite: &mut Suite, env: &Env, base: &[Need]) {
    let mut c = Cases { suite, env, base };
    let img = |app: &str| env.image(app);
    let conf = env.conformance();
    // The done-when runs, through the command users type: the default four hellos a second
    // apart, then every machine and accelerator with the spacing shortened (checked
    // proportionally). Without KVM, the default falls back to TCG.
    c.add(
        "cargo xtask run hello --target virtio: four lines a second apart",
        &[],
        &[],
        c.xtask("hello", &[], &[]),
        60,
        |b| check_hello(b, 4, Duration::from_secs(1)),
    );
    let fast = ["--interval-ms", "250"];
    for (what, extra, more) in [
        ("--accel tcg", &["--accel", "tcg"][..], &[][..]),
        ("--machine q35 --accel tcg", &["--machine", "q35", "--accel", "tcg"], &[]),
        ("--machine q35 --accel kvm", &["--machine", "q35", "--accel", "kvm"], &[Need::Kvm]),
    ] {
        c.add(
            &format!("cargo xtask run hello --target virtio {what}: 250 ms apart"),
            more,
            &[],
            c.xtask("hello", extra, &fast),
            60,
            |b| check_hello(b, 4, Duration::from_millis(250)),
        );
    }
    c.add("heads: two sleeps overlap", &[], &[], Launch::Qemu(c.qemu(&img("heads"))), 30, |b| {
        b.expect_status(0)?;
        let order: Vec<&str> = b
            .lines
            .iter()
            .filter_map(|(_, l)| ["Heads", "Tails", "Finished"].into_iter().find(|w| l.contains(w)))
            .collect();
        if order != ["Heads", "Tails", "Finished"] {
            return Err(format!("lines in order {order:?}"));
        }
        let fin = b.find("Finished after")[0].1.clone();
        let secs: f64 =
            fin.rsplit("after ").next().and_then(|s| s.trim_end_matches('s').parse().ok()).unwrap_or(0.0);
        if !(1.95..2.5).contains(&secs) {
            return Err(format!("finished after {secs}s, expected 2s"));
        }
        Ok(())
    });
    c.add(
        "timeout: the task wins",
        &[],
        &[],
        Launch::Qemu(c.qemu(&img("timeout")).args(["--task-ms", "100", "--timeout-ms", "400"])),
        30,
        |b| {
            b.expect_status(0)?;
            if b.find("Returned Heads after").is_empty() { Err("no 'Returned Heads'".into()) } else { Ok(()) }
        },
    );
    c.add(
        "timeout: the timeout wins",
        &[],
        &[],
        Launch::Qemu(c.qemu(&img("timeout")).args(["--task-ms", "3000", "--timeout-ms", "150"])),
        30,
        |b| {
            b.expect_status(0)?;
            if b.find("Cancelled: timed out after").is_empty() {
                Err("no 'Cancelled'".into())
            } else {
                Ok(())
            }
        },
    );
    c.add("noop: exits 0 silently", &[], &[], Launch::Qemu(c.qemu(&img("noop"))), 30, |b| {
        b.expect_status(0)?;
        if b.lines.is_empty() { Ok(()) } else { Err("printed something".into()) }
    });
    c.add(
        "bad argument: one line, status 2",
        &[],
        &[],
        Launch::Qemu(c.qemu(&img("hello")).args(["--count", "many"])),
        30,
        |b| {
            b.expect_status(2)?;
            let want = "hello: --count: expected a number from 0 to 4294967295, got \"many\"";
            if b.lines.len() == 1 && b.lines[0].1 == want {
                Ok(())
            } else {
                Err(format!("expected only: {want}"))
            }
        },
    );
    c.add(
        "--help: usage, status 0",
        &[],
        &[],
        Launch::Qemu(c.qemu(&img("hello")).args(["--help"])),
        30,
        |b| {
            b.expect_status(0)?;
            if b.find("--interval-ms MS").is_empty() { Err("no usage".into()) } else { Ok(()) }
        },
    );
    c.add(
        "echo --help on bare metal: only what the kernel reads (no --net, --block, --kv)",
        &[],
        &[],
        Launch::Qemu(c.qemu(&img("echo")).args(["--help"])),
        30,
        |b| {
            b.expect_status(0)?;
            if b.find("--ipv4 ADDR/PREFIX").is_empty() || b.find("--port PORT").is_empty() {
                return Err("no --ipv4 or --port in the usage".into());
            }
            match ["--net", "--block", "--kv", "--tap-no-offload"].iter().find(|a| !b.find(a).is_empty()) {
                Some(a) => Err(format!("the usage lists {a}, which the kernel does not read")),
                None => Ok(()),
            }
        },
    );
    c.add(
        "guest panic: readable message, a backtrace naming its callers, status 101",
        &[],
        &[],
        Launch::Qemu(c.qemu(&conf).args(["--check", "panic"])),
        30,
        |b| {
            b.expect_status(101)?;
            let ok = b.lines.iter().any(|(_, l)| {
                l.starts_with("panicked at ")
                    && l.contains("conformance.rs")
                    && l.ends_with("deliberate panic from the conformance image")
            });
            if !ok {
                return Err("no 'panicked at ...: deliberate panic' line".into());
            }
            check_backtrace(b, &["crash_inner", "crash_outer", "main"])
        },
    );
    c.add(
        "out of memory: one line with the heap's size and use, status 101",
        &[],
        &[],
        Launch::Qemu(Vm { mem: "8M".into(), ..c.qemu(&conf).args(["--check", "out-of-memory"]) }),
        60,
        |b| {
            b.expect_status(101)?;
            // "out of memory: a 65536-byte allocation failed with 6.7 of 6.8 MiB in use"
            let line = b.lines.iter().map(|(_, l)| l.as_str()).find(|l| l.starts_with("out of memory: "));
            let Some(line) = line else { return Err("no 'out of memory: ...' line".into()) };
            let mib = |s: &str| s.parse::<f64>().ok();
            let words: Vec<&str> = line.split(' ').collect();
            match words[..] {
                [
                    "out",
                    "of",
                    "memory:",
                    "a",
                    "65536-byte",
                    "allocation",
                    "failed",
                    "with",
                    used,
                    "of",
                    size,
                    "MiB",
                    "in",
                    "use",
                ] if mib(used)
                    .zip(mib(size))
                    .is_some_and(|(u, s)| s > 4.0 && s < 8.0 && u <= s && u > s - 0.2) =>
                {
                    Ok(())
                }
                _ => Err(format!(
                    "'{line}': not '... a 65536-byte allocation failed with U of S MiB in use' with U ~ S < 8"
                )),
            }
        },
    );
    c.add(
        "CPU exception: vector and RIP, a backtrace naming its callers, status 3",
        &[],
        &[],
        Launch::Qemu(c.qemu(&conf).args(["--check", "exception"])),
        30,
        |b| {
            b.expect_status(3)?;
            let want = "CPU exception 14 (page fault), error code 0x0, at RIP 0x";
            if b.find(want).is_empty() || b.find("CR2 0x1000000000)").is_empty() {
                return Err(format!("no '{want}... CR2 0x1000000000)' line"));
            }
            // The faulting instruction's function, under the exception's line.
            let rip = b.lines.iter().position(|(_, l)| l.starts_with(want)).unwrap_or(0);
            if !b
                .lines
                .get(rip + 1)
                .is_some_and(|(_, l)| l.contains("read_unmapped at impls/virtio/src/sys/cpu.rs:"))
            {
                return Err("no '    ...read_unmapped at impls/virtio/src/sys/cpu.rs:LINE' under it".into());
            }
            check_backtrace(b, &["crash_inner", "crash_outer", "main"])
        },
    );
    c.add(
        "stack overflow: the guard page faults, reported, status 3",
        &[],
        &[],
        Launch::Qemu(c.qemu(&conf).args(["--check", "stack-overflow"])),
        30,
        |b| {
            b.expect_status(3)?;
            let fault = "CPU exception 14 (page fault), error code 0x2, at RIP 0x";
            // A write (error code 2, page not present) into the guard page at 1 MiB.
            if b.find(fault).is_empty() || b.find("CR2 0x100").is_empty() {
                return Err(format!("no '{fault}... CR2 0x100...' line (a write to the guard page)"));
            }
            let want = "stack overflow: the app used more than the 256 KiB boot stack";
            if b.find(want).is_empty() { Err(format!("no '{want}' line")) } else { Ok(()) }
        },
    );
    let mut no_rng = Vm::new(&img("hello"), false);
    no_rng.cpu = Some("qemu64");
    c.add(
        "a CPU without RDRAND/RDSEED: refuses to start, one line",
        &[],
        &[],
        Launch::Qemu(no_rng),
        30,
        |b| {
            b.expect_status(1)?;
            only_line(b, "hello: cannot start: the CPU has neither RDRAND nor RDSEED")
        },
    );
    // The clock without KVM's pvclock: the TSC at a frequency from CPUID or the PIT, with the
    // TSC-deadline timer. And wall-clock time from the CMOS clock, against the host's.
    let mut no_pvclock = c.qemu(&conf).args(["--check", "clock"]);
    if env.kvm {
        no_pvclock.cpu = Some("host,-arch-capabilities,-kvmclock");
    }
    let pvclock = c.qemu(&conf).args(["--check", "clock"]);
    for (name, vm) in [("clock: kvm-pvclock (or TCG)", pvclock), ("clock: TSC without pvclock", no_pvclock)] {
        c.add(name, &[], &[], Launch::Qemu(vm), 30, check_conformance_clock);
    }
    for (name, tag, q35, modern) in [
        ("conformance, virtio-mmio (legacy, microvm)", "conf-legacy", false, false),
        ("conformance, virtio-mmio (modern, microvm)", "conf-modern", false, true),
        ("conformance, virtio-pci (q35)", "conf-pci", true, false),
    ] {
        let disk = scratch(tag);
        let mut vm = c.qemu(&conf).args(["--check", "block,net"]);
        vm.q35 = q35;
        vm.mmio_modern = modern;
        vm.net = Some(NetSpec::HubPair);
        vm.block = Some(disk.clone().into());
        c.add(name, &[], &[(&disk, 1 << 20)], Launch::Qemu(vm), 60, |b| {
            b.expect_status(0)?;
            for want in ["block: check_rw passed on 2048 sectors", "net: check_pair passed"] {
                if b.find(want).is_empty() {
                    return Err(format!("no '{want}'"));
                }
            }
            Ok(())
        });
    }
    // The KV suite on morgana-store over the real virtio-blk driver: a blank disk formatted,
    // every operation and error of Mirage_kv through flushes that reach the image file. Under
    // TCG: the store's checksums are compute, slow under emulating KVM.
    let store_disk = scratch("store");
    let mut vm = Vm::new(&conf, false).args(["--check", "store"]);
    vm.block = Some(store_disk.clone().into());
    c.add(
        "store: the KV suite on morgana-store over virtio-blk",
        &[],
        &[(&store_disk, 4 << 20)],
        Launch::Qemu(vm),
        60,
        |b| {
            b.expect_status(0)?;
            let want = "store: the KV suite passed on virtio-blk (8192 sectors)";
            if b.find(want).is_empty() { Err(format!("no '{want}'")) } else { Ok(()) }
        },
    );
    c.add(
        "cargo xtask run hello-key --target virtio -- --hello \"Bonjour tout le monde\": a quoted word",
        &[],
        &[],
        c.xtask("hello-key", &[], &["--hello", "Bonjour tout le monde"]),
        60,
        |b| {
            b.expect_status(0)?;
            let n = b.find("INFO  hello_key: Bonjour tout le monde").len();
            if n == 4 { Ok(()) } else { Err(format!("{n} greetings, expected 4")) }
        },
    );
    c.add(
        "cargo xtask run kv_ro --target virtio: the compiled-in store holds what it should",
        &[],
        &[],
        c.xtask("kv_ro", &[], &[]),
        60,
        |b| {
            b.expect_status(0)?;
            let n = b.find(" bytes, as expected").len();
            if n == 3 { Ok(()) } else { Err(format!("{n} keys as expected, want 3")) }
        },
    );
    c.add(
        "kv_ro --kv DIR on bare metal: one line, status 1",
        &[],
        &[],
        c.xtask("kv_ro", &[], &["--kv", "/tmp"]),
        60,
        |b| {
            b.expect_status(1)?;
            only_line(b, "kv_ro: --kv /tmp: bare metal has no directories to read")
        },
    );
    c.add(
        "cargo xtask run clock --target virtio -- --count 3: wall and monotonic time",
        &[],
        &[],
        c.xtask("clock", &[], &["--count", "3"]),
        60,
        |b| check_clock(b, 3),
    );
    let good = scratch("block");
    let good_arg = good.display().to_string();
    let written = good.clone();
    c.add(
        "cargo xtask run block --target virtio -- --block FILE: every sector verified, and on the disk",
        &[],
        &[(&good, 256 << 10)],
        c.xtask("block", &[], &["--block", &good_arg]),
        120,
        move |b| {
            b.expect_status(0)?;
            for want in ["block device: 512 sectors of 512 bytes (256 KiB)", "checked 512 sectors: 0 errors"]
            {
                if b.find(want).is_empty() {
                    return Err(format!("no '{want}'"));
                }
            }
            // The pattern really reached the file: sector 5 starts with its own index.
            let bytes = std::fs::read(&written).map_err(|e| e.to_string())?;
            if bytes.get(5 * 512..5 * 512 + 8) != Some(&5u64.to_le_bytes()[..]) {
                return Err("sector 5 of the image does not start with its index".into());
            }
            Ok(())
        },
    );
    let empty = scratch("empty");
    c.add(
        "block on an empty image: one error line, status 1",
        &[],
        &[(&empty, 0)],
        c.xtask("block", &[], &["--block", &empty.display().to_string()]),
        60,
        |b| {
            b.expect_status(1)?;
            if b.find("error: the block device has no sectors").len() == 1 {
                Ok(())
            } else {
                Err("no error line".into())
            }
        },
    );
    let ragged = scratch("ragged");
    let ragged_arg = ragged.display().to_string();
    let want = format!("--block {ragged_arg}: 1000 bytes is not a whole number of 512-byte sectors");
    c.add(
        "block on a ragged image: xtask refuses it in one line, status 2",
        &[],
        &[(&ragged, 1000)],
        c.xtask("block", &[], &["--block", &ragged_arg]),
        60,
        move |b| {
            b.expect_status(2)?;
            on_stderr(b, &want)
        },
    );
    c.add(
        "block without a disk: one line saying how to attach one, status 1",
        &[],
        &[],
        c.xtask("block", &[], &[]),
        60,
        |b| {
            b.expect_status(1)?;
            only_line(b, "block: no virtio-blk disk: attach a disk image")
        },
    );
    // A host port already taken: QEMU would exit 1, which reads as the guest's status 0. The
    // port is taken (and held) by the test itself.
    let env2 = env.clone();
    c.suite.check(
        "echo with its forwarded host port taken: one line, status 1",
        &needs(base, &[]),
        move || {
            let taken = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let port = taken.local_addr().map_err(|e| e.to_string())?.port();
            let forward = format!("{port}:7");
            let cmd = env2.xtask_run("echo", &["--forward", &forward], &[]);
            let b = capture(cmd, Exit::Plain, Duration::from_secs(60))?;
            drop(taken);
            let check = || {
                b.expect_status(1)?;
                on_stderr(&b, &format!("cannot forward 127.0.0.1:{port} to the guest's port 7: "))?;
                if b.lines.is_empty() { Ok(()) } else { Err("the guest printed something".into()) }
            };
            check().map_err(|e: String| format!("{e}\n{}", b.text()))
        },
    );
    // disk-lottery keeps its games on the disk, in the durable store: one boot formats a blank
    // image and resets its slots, and each later boot plays against the high score the one
    // before it saved. Under TCG: the store's checksums are compute, slow under emulating KVM.
    let lottery = scratch("lottery");
    let lottery_arg = lottery.display().to_string();
    let env3 = env.clone();
    c.add(
        "cargo xtask run disk-lottery --target virtio --block FILE: each boot plays against what the last one saved",
        &[],
        &[(&lottery, 1 << 20)],
        c.xtask("disk-lottery", &["--accel", "tcg", "--block", &lottery_arg], &["--reset-all"]),
        60,
        move |b| {
            b.expect_status(0)?;
            if b.find("INFO  disk_lottery: All 8 game slots reset.").is_empty() {
                return Err("no 'All 8 game slots reset.'".into());
            }
            let opts = ["--accel", "tcg", "--block", lottery_arg.as_str()];
            let play = || -> Result<String, String> {
                let cmd = env3.xtask_run("disk-lottery", &opts, &[]);
                let b = capture(cmd, Exit::Plain, Duration::from_secs(60))?;
                b.expect_status(0).and_then(|()| lottery_game(&b)).map_err(|e| format!("{e}\n{}", b.text()))
            };
            let first = play()?;
            let won = first.strip_prefix("YOU WON! You beat the old high score 0 with ").and_then(|s| s.strip_suffix('!'));
            let Some(won) = won else {
                return Err(format!("after the reset: '{first}', not 'YOU WON! You beat the old high score 0 with N!'"));
            };
            let second = play()?;
            let sees_it = second.starts_with(&format!("YOU WON! You beat the old high score {won} with "))
                || (second.starts_with("YOU LOST! With ")
                    && second.ends_with(&format!(" you didn't beat the high score {won}")))
                || second == format!("TIE! You tied with the high score {won}");
            if sees_it { Ok(()) } else { Err(format!("after '{first}', the next boot played '{second}'")) }
        },
    );
}

/// The game a `disk-lottery` boot played (its first line), once it said it saved it.
fn lottery_game(b: &Boot) -> Result<String, String> {
    let said = |m: &str| !b.find(&format!("INFO  disk_lottery: {m}")).is_empty();
    if !said("Done!") || !said("Thank you for playing! Exiting...") {
        return Err("no 'Done!' and 'Thank you for playing! Exiting...'".into());
    }
    let game = b.lines.iter().find_map(|(_, l)| {
        let m = l.split_once("INFO  disk_lottery: ")?.1;
        (m.starts_with("YOU ") || m.starts_with("TIE! ")).then(|| m.to_string())
    });
    game.ok_or_else(|| "no game line ('YOU WON! ...', 'YOU LOST! ...' or 'TIE! ...')".into())
}
