//! `cargo xtask bench boot [--runs N]`: QEMU launch to exit of `hello` against an empty kernel
//! that exits at its first instruction, the guest's own boot time, and the smallest `--mem`
//! each app runs in.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use morgana_netns::{Proc, TempDir, echo_through, free_port, median, payload};
use morgana_qemu::{NetSpec, Vm, boot, kvm_usable};

use cargo_morgana::virtio::check_qemu;

use crate::images::{build_images, image_path, virtio_apps};
use crate::{Failure, Outcome};

/// A minimal PVH kernel whose entry writes status 0 to isa-debug-exit: the floor that
/// `bench boot` compares against (QEMU start-up, firmware, ELF loading, exit).
fn floor_kernel() -> Vec<u8> {
    const BASE: u64 = 0x10_0000;
    const PHDRS: u64 = 64;
    const NOTE: u64 = PHDRS + 2 * 56;
    const CODE: u64 = NOTE + 24;
    // mov al, 0; out 0xf4, al; hlt; jmp .-1
    let code = [0xb0, 0x00, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd];
    let total = CODE + code.len() as u64;
    let mut e = Vec::new();
    e.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&(BASE + CODE).to_le_bytes()); // entry
    e.extend_from_slice(&PHDRS.to_le_bytes()); // phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // shoff
    e.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 2, 64, 0, 0] {
        e.extend_from_slice(&v.to_le_bytes()); // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    }
    let phdr = |e: &mut Vec<u8>, kind: u32, flags: u32, off: u64, size: u64, align: u64| {
        e.extend_from_slice(&kind.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        for v in [off, BASE + off, BASE + off, size, size, align] {
            e.extend_from_slice(&v.to_le_bytes());
        }
    };
    phdr(&mut e, 1, 7, 0, total, 0x1000); // PT_LOAD
    phdr(&mut e, 4, 4, NOTE, 24, 4); // PT_NOTE
    for v in [4u32, 8, 18] {
        e.extend_from_slice(&v.to_le_bytes()); // namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY
    }
    e.extend_from_slice(b"Xen\0");
    e.extend_from_slice(&(BASE + CODE).to_le_bytes());
    e.extend_from_slice(&code);
    e
}

/// `cargo xtask bench boot --runs N` (at least 10).
pub fn run(root: &Path, runs: usize) -> Outcome {
    let runs = runs.max(10);
    check_qemu()?;
    let all = virtio_apps(root)?;
    let names: Vec<&str> = all.iter().map(String::as_str).collect();
    build_images(root, &names, false)?;
    let kvm = kvm_usable();
    if !kvm {
        println!("/dev/kvm not usable: measuring under TCG");
    }
    let floor = root.join("target").join("virtio-floor.elf");
    std::fs::write(&floor, floor_kernel()).map_err(|e| Failure::new(format!("{}: {e}", floor.display())))?;
    let hello = image_path(root, "hello", false)?;
    let quick = ["--count", "4", "--interval-ms", "0"];
    let timeout = Duration::from_secs(30);
    let (mut t_floor, mut t_hello) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for (image, args, out) in [(&floor, &[][..], &mut t_floor), (&hello, &quick[..], &mut t_hello)] {
            let b = boot(&Vm::new(image, kvm).args(args.iter().copied()), timeout).map_err(Failure::new)?;
            b.expect_status(0).map_err(|e| Failure::new(format!("{}: {e}", image.display())))?;
            out.push(b.elapsed.as_secs_f64() * 1000.0);
        }
    }
    let (f, h) = (median(&t_floor), median(&t_hello));
    let accel = if kvm { "KVM" } else { "TCG" };
    println!("launch to exit, microvm, {accel}, median of {runs} runs:");
    println!("  empty kernel (exits at its first instruction) {f:8.1} ms");
    println!("  hello --count 4 --interval-ms 0              {h:8.1} ms");
    println!("  ratio {:.3}x (target <= 1.10x)", h / f);
    let mut guest = Vec::new();
    for _ in 0..runs {
        let b = boot(&Vm::new(&hello, kvm).args(["--count", "0", "--log", "debug"]), timeout)
            .map_err(Failure::new)?;
        let line = b
            .find("boot: ")
            .first()
            .map(|(_, l)| l.clone())
            .ok_or_else(|| Failure::new("hello printed no boot line"))?;
        let us: f64 = line
            .split("boot: ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        guest.push(us);
    }
    println!(
        "guest boot, first instruction to app start, median of {runs}: {:.0} us (target <= 100 us)",
        median(&guest)
    );
    println!("smallest --mem each app runs in (microvm, {accel}; servers must answer a request):");
    let dir = TempDir::new("virtio-bench");
    let disk = dir.join("disk.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(64 << 10))
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", disk.display())))?;
    for app in &names {
        let args: &[&str] = match *app {
            "hello" => &["--count", "1", "--interval-ms", "0"],
            "timeout" => &["--task-ms", "1", "--timeout-ms", "5"],
            "clock" => &["--count", "1"],
            // An address resolves to itself: the stack comes up, no DNS server is needed.
            "dns" => &["--name", "10.0.2.2"],
            // A blank disk holds no game: resetting the slots formats it and saves them.
            "disk-lottery" => &["--reset-all"],
            "ping" | "http-fetch" => {
                println!("  {app:<12} not measured (it needs a peer: see cargo xtask test)");
                continue;
            }
            _ => &[],
        };
        let image = image_path(root, app, false)?;
        let server = matches!(*app, "echo" | "www" | "notes");
        let fits = |mib: u64| {
            let mut vm = Vm::new(&image, kvm).args(args.iter().copied());
            vm.mem = format!("{mib}M");
            if *app == "block" {
                vm.block = Some(disk.clone().into());
            }
            if matches!(*app, "notes" | "disk-lottery") {
                // A blank disk each time (the app formats it): the smallest store is under 1 MiB.
                let blank = dir.join("store.img");
                let made = std::fs::File::create(&blank).and_then(|f| f.set_len(1 << 20));
                if made.is_err() {
                    return false;
                }
                vm.block = Some(blank.into());
            }
            if *app == "dns" {
                vm.net = Some(NetSpec::User(Vec::new()));
            }
            if server {
                let port = free_port();
                let guest = if *app == "echo" { 7 } else { 443 };
                vm.net = Some(NetSpec::User(vec![(port, guest)]));
                return serves(root, app, &vm, port, Duration::from_secs(60));
            }
            // Too little memory can hang the guest before it prints anything: do not wait long.
            boot(&vm, Duration::from_secs(if *app == "block" { 30 } else { 5 }))
                .is_ok_and(|b| b.status == Ok(0))
        };
        let (mut lo, mut hi) = (0u64, 64u64);
        if !fits(hi) {
            println!("  {app:<12} more than {hi} MiB");
            continue;
        }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if fits(mid) { hi = mid } else { lo = mid }
        }
        println!("  {app:<12} {hi} MiB");
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Whether a server app booted as `vm` (with `port` forwarded from the host) serves: `echo`
/// echoes 64 KiB, `www` answers curl with its index page.
fn serves(root: &Path, app: &str, vm: &Vm, port: u16, timeout: Duration) -> bool {
    let mut g = Proc::spawn_group(vm.command());
    let ready = match app {
        "echo" => "echo: listening on ",
        "notes" => "INFO  notes: serving notes on https://",
        _ => "INFO  www: serving https://",
    };
    if g.try_wait_for(ready, timeout).is_err() || g.try_wait_for("DHCP lease: ", timeout).is_err() {
        return false;
    }
    match app {
        "echo" => {
            let data = payload(64 << 10, 3);
            echo_through(port, &data, timeout).is_ok_and(|back| back == data)
        }
        _ => std::process::Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                &timeout.as_secs().to_string(),
            ])
            .arg("--cacert")
            .arg(root.join("stacks/tls/dev-certs/ca.pem"))
            .arg(format!("https://127.0.0.1:{port}/"))
            .output()
            .is_ok_and(|o| o.stdout == b"200"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_kernel_is_a_pvh_elf() {
        let k = floor_kernel();
        assert_eq!(&k[..4], b"\x7fELF");
        let note = k.windows(4).position(|w| w == b"Xen\0").unwrap();
        let entry = u64::from_le_bytes(k[note + 4..note + 12].try_into().unwrap());
        assert_eq!(entry, u64::from_le_bytes(k[24..32].try_into().unwrap()));
        assert_eq!(&k[(entry - 0x10_0000) as usize..][..4], &[0xb0, 0x00, 0xe6, 0xf4]);
    }
}
