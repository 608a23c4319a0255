//! `cargo xtask bench store [--quick] [--dir DIR] [--accel tcg|kvm]`, or `--soak [--cuts N]`.
//!
//! Without `--soak`: morgana-store on a hosted file against redb on the same file system
//! (durable single-key commits per second, batch MB/s, write amplification), release build, in
//! `DIR` (default `target/bench-store`, on the repository's file system); then the same workload
//! inside QEMU on virtio-blk (the conformance image's `--check store-bench`, its disk an image
//! file in `DIR` formatted by the host, QEMU's default writeback cache, so each flush is an
//! fdatasync of that file), under TCG unless `--accel kvm`: this host's KVM is nested and
//! emulates instructions, much slower than TCG for the store's checksums. With `--soak`: the
//! power-cut sweep of `cargo test` over far more cut points (200,000 by default).

use std::path::Path;
use std::time::Duration;

use morgana_qemu::{Vm, boot};

use crate::images::{build_images, image_path};
use crate::{Failure, Outcome, cargo, run_soak};

/// Key and value bytes of one operation of the workload (bench/store's 24 + 150).
const PAYLOAD: f64 = 174.0;

/// Run the store benchmark or soak, `args` being what followed `bench store`.
pub fn run(root: &Path, args: &[String]) -> Outcome {
    let (mut soak, mut quick, mut kvm) = (false, false, false);
    let (mut cuts, mut dir) = (None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next().cloned().ok_or_else(|| Failure::usage(format!("{name}: a value is required")))
        };
        match a.as_str() {
            "--soak" => soak = true,
            "--quick" => quick = true,
            "--cuts" => cuts = Some(value("--cuts")?),
            "--dir" => dir = Some(value("--dir")?),
            "--accel" => match value("--accel")?.as_str() {
                "kvm" => kvm = true,
                "tcg" => kvm = false,
                other => return Err(Failure::usage(format!("--accel: expected tcg or kvm, got '{other}'"))),
            },
            other => {
                return Err(Failure::usage(format!(
                    "bench store: unknown argument '{other}'; use [--quick] [--dir DIR] [--accel tcg|kvm], or --soak [--cuts N]"
                )));
            }
        }
    }
    if let Some(v) = &cuts
        && v.parse::<u64>().map_or(true, |n| n == 0)
    {
        return Err(Failure::usage(format!("--cuts: expected a positive number, got '{v}'")));
    }
    if soak {
        let cuts = cuts.unwrap_or_else(|| "200000".into());
        println!("==> soak: {cuts} power cuts, each recovered and checked against the model");
        return run_soak("morgana-store", "power_cut", &[], ("MORGANA_STORE_CUTS", &cuts));
    }
    let dir = dir.unwrap_or_else(|| root.join("target/bench-store").display().to_string());
    let sizes: [&str; 3] = if quick { ["200", "5", "10000"] } else { ["2000", "20", "10000"] };
    let host = cargo()
        .args(["run", "--quiet", "--release", "-p", "morgana-store-bench", "--", &dir])
        .args(sizes)
        .output()
        .map_err(|e| Failure::new(format!("cannot run the store bench: {e}")))?;
    let text = String::from_utf8_lossy(&host.stdout);
    print!("{text}");
    eprint!("{}", String::from_utf8_lossy(&host.stderr));
    if !host.status.success() {
        return Err(Failure::status(host.status.code()));
    }
    let redb = text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.first() != Some(&"redb") {
            return None;
        }
        Some((f.get(1)?.parse::<f64>().ok()?, f.get(2)?.parse::<f64>().ok()?))
    });
    virtio(root, Path::new(&dir), sizes, kvm, redb)
}

/// The workload inside QEMU on virtio-blk: one row, and its ratio to redb's figures (skipped in
/// one line where QEMU is missing: the host's rows stand without it).
fn virtio(root: &Path, dir: &Path, sizes: [&str; 3], kvm: bool, redb: Option<(f64, f64)>) -> Outcome {
    if let Err(missing) = cargo_morgana::virtio::check_qemu() {
        println!("store (virtio): skipped: {}", missing.message);
        return Ok(());
    }
    build_images(root, &[], true)?;
    let image = dir.join("virtio-store.img");
    let _ = std::fs::remove_file(&image);
    morgana_kvtool::mkfs(&image, 256 << 20).map_err(|e| Failure::new(e.to_string()))?;
    let mut vm = Vm::new(&image_path(root, "conformance", true)?, kvm);
    vm.mem = "256M".into();
    vm.block = Some(image.clone().into());
    let [commits, batches, keys] = sizes;
    vm =
        vm.args(["--check", "store-bench", "--commits", commits, "--batches", batches, "--batch-keys", keys]);
    let accel = if kvm { "KVM" } else { "TCG" };
    let b = boot(&vm, Duration::from_secs(600));
    let _ = std::fs::remove_file(&image);
    let b = b.map_err(Failure::new)?;
    let line = b.find("store-bench: commits ").first().map(|(_, l)| l.clone());
    let Some(row) = line.as_deref().and_then(parse) else {
        return Err(Failure::new(format!("the guest printed no store-bench line:\n{}", b.text())));
    };
    let commits_per_s = row.commits as f64 / row.commit_secs;
    let batch_mb_s = (row.batches * row.keys) as f64 * PAYLOAD / row.batch_secs / 1e6;
    let amp = |bytes: u64, ops: u64| bytes as f64 / (ops as f64 * PAYLOAD);
    println!(
        "{:<16} {:>14.0} {:>12.1} {:>13.1}x {:>13.1}x   (virtio-blk, QEMU {accel}, same workload)",
        "store (virtio)",
        commits_per_s,
        batch_mb_s,
        amp(row.commit_bytes, row.commits),
        amp(row.batch_bytes, row.batches * row.keys)
    );
    if let Some((c, m)) = redb {
        println!(
            "ratio (virtio-blk under QEMU {accel} / redb on the host file): commits {:.2}x, batch {:.2}x",
            commits_per_s / c,
            batch_mb_s / m
        );
    }
    Ok(())
}

/// The guest's `store-bench: commits C in T us (W bytes written); batches B of K keys in T us
/// (W bytes written)`.
struct GuestRow {
    commits: u64,
    commit_secs: f64,
    commit_bytes: u64,
    batches: u64,
    keys: u64,
    batch_secs: f64,
    batch_bytes: u64,
}

fn parse(line: &str) -> Option<GuestRow> {
    let rest = line.split_once("store-bench: ")?.1;
    let nums: Vec<u64> = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    let [commits, commit_us, commit_bytes, batches, keys, batch_us, batch_bytes] = nums[..] else {
        return None;
    };
    Some(GuestRow {
        commits,
        commit_secs: commit_us as f64 / 1e6,
        commit_bytes,
        batches,
        keys,
        batch_secs: batch_us as f64 / 1e6,
        batch_bytes,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_guest_line_is_read() {
        let line = "[  24.6] INFO  conformance::store_bench: store-bench: commits 2000 in 2011245 us (53977088 bytes written); batches 20 of 10000 keys in 22634427 us (547016704 bytes written)";
        let row = super::parse(line).expect("parsed");
        assert_eq!((row.commits, row.commit_bytes, row.batches, row.keys), (2000, 53977088, 20, 10000));
        assert!((row.batch_secs - 22.634427).abs() < 1e-9);
        assert!(super::parse("store-bench: commits 20 in us").is_none());
    }
}
