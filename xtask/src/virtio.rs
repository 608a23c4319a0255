//! `--target virtio`: bare-metal images built for `x86_64-unknown-none` and booted in QEMU.
//!
//! ```text
//! cargo xtask build APP --target virtio          image path and stripped size
//! cargo xtask run APP --target virtio [--accel kvm|tcg] [--machine microvm|q35] [--mem SIZE]
//!     [--net user|tap:IF] [--forward HOST:GUEST]... [--block FILE] [-- APP ARGS]
//! cargo xtask size                               stripped image size per app
//! ```
//!
//! The QEMU command line and the guest's exit status (`s` written to `isa-debug-exit`, QEMU
//! exiting `2s + 1`) are `morgana-qemu`'s, shared with `cargo xtask bench boot` and the QEMU
//! test suite (`impls/virtio-tests`), which `cargo xtask test` runs on the images built here.

use std::path::{Path, PathBuf};

use morgana_qemu::{NetSpec, QEMU, Symbolizer, Vm, guest_status, kvm_is_software, kvm_usable};

use crate::meta::{self, App};
use crate::{Failure, NO_STD_TARGET, Outcome, cargo, exec};

/// Cargo profile for images: LTO, size-optimised, linked with line tables (kept as `IMAGE.debug`,
/// the image itself stripped: [`crate::strip`]).
const PROFILE: &str = "release-small";
/// Image-size targets (`cargo xtask size`), KiB: `www` includes its crypto provider.
const SIZE_TARGETS_KIB: &[(&str, u64)] = &[("hello", 64), ("echo", 256), ("www", 1536)];

/// What every bare-metal build needs (morgana-virtio's build script refuses to build without):
/// static, non-PIE, linked by the script `morgana-virtio.ld` at 1 MiB, which that build script
/// puts on the linker's search path; and frame pointers, which a crash's backtrace walks (not
/// required). Applied to the bare-metal target only, so host builds are untouched.
pub const RUSTFLAGS: &str =
    "-C relocation-model=static -C force-frame-pointers=yes -C link-arg=-Tmorgana-virtio.ld";
/// Where [`RUSTFLAGS`] go: the bare-metal target's own flags.
pub const RUSTFLAGS_VAR: &str = "CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS";

/// QEMU options of `cargo xtask run --target virtio`.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct QemuArgs {
    /// Accelerator: kvm (default when /dev/kvm is usable) or tcg.
    #[arg(long, value_parser = ["kvm", "tcg"])]
    pub accel: Option<String>,
    /// Machine: microvm (virtio-mmio, default) or q35 (virtio-pci).
    #[arg(long, default_value = "microvm", value_parser = ["microvm", "q35"])]
    pub machine: String,
    /// Guest memory, as QEMU's -m takes it (64M, 1G).
    #[arg(long, default_value = "64M")]
    pub mem: String,
    /// Network: user (QEMU's user-mode stack, no root) or tap:IFNAME. Default: user networking
    /// when the app declares a --port, forwarded from the same host port (from port + 8000 for
    /// ports below 1024: 443 -> 8443), else none.
    #[arg(long)]
    pub net: Option<String>,
    /// Forward a host TCP port to a guest port (user networking); repeatable.
    #[arg(long, value_name = "HOST:GUEST")]
    pub forward: Vec<String>,
    /// A raw disk image attached as a virtio-blk device (default: the app's own `--block FILE`).
    #[arg(long, value_name = "FILE")]
    pub block: Option<PathBuf>,
}

impl QemuArgs {
    fn is_default(&self) -> bool {
        self.accel.is_none()
            && self.machine == "microvm"
            && self.mem == "64M"
            && self.net.is_none()
            && self.forward.is_empty()
            && self.block.is_none()
    }
}

/// The QEMU options only make sense for the virtio target.
pub fn check_unix_args(qemu: &QemuArgs) -> Outcome {
    if qemu.is_default() {
        Ok(())
    } else {
        Err(Failure::usage("--accel, --machine, --mem, --net, --forward and --block need --target virtio"))
    }
}

/// Whether QEMU runs here; else one line saying how to install it.
pub fn check_qemu() -> Outcome {
    morgana_qemu::check_qemu().map_err(Failure::new)
}

/// Where cargo puts the images (the QEMU suite's `MORGANA_VIRTIO_IMAGES`).
pub fn images_dir(root: &Path) -> PathBuf {
    root.join("target").join(NO_STD_TARGET).join(PROFILE)
}

/// Where cargo puts image `name` (`example` for the conformance image).
pub fn image_path(root: &Path, name: &str, example: bool) -> PathBuf {
    let dir = images_dir(root);
    if example { dir.join("examples").join(name) } else { dir.join(name) }
}

/// Build the images of `apps` (and the conformance image if `conformance`).
pub fn build_images(root: &Path, apps: &[&str], conformance: bool) -> Outcome {
    crate::test::ensure_no_std_target()?;
    let image_build = || {
        let mut c = cargo();
        c.current_dir(root).env(RUSTFLAGS_VAR, RUSTFLAGS);
        c.args(["build", "--quiet", "--target", NO_STD_TARGET, "--profile", PROFILE]);
        c
    };
    // One build per app: built together, cargo would unify their features (www's `getrandom`
    // hook would land in every image), and an image would differ from what
    // `cargo xtask build APP` makes. Cargo keeps both variants, so switching is cheap.
    for app in apps {
        exec(image_build().args(["-p", app, "--bin", app]))?;
        crate::strip::split(&image_path(root, app, false))?;
    }
    if conformance {
        // Separately: an example turns on its package's dev-dependencies, and the apps' (which
        // use std) must not leak into their images through feature unification.
        exec(image_build().args(["-p", "morgana-virtio", "--example", "conformance"]))?;
        crate::strip::split(&image_path(root, "conformance", true))?;
    }
    Ok(())
}

pub fn size_kib(path: &Path) -> f64 {
    std::fs::metadata(path).map(|m| m.len() as f64 / 1024.0).unwrap_or(0.0)
}

/// Build `app`'s bare-metal image; its stripped size in KiB and the size target, if it has one.
pub fn image_kib(root: &Path, app: &str) -> Result<(f64, Option<u64>), Failure> {
    build_images(root, &[app], false)?;
    let target = SIZE_TARGETS_KIB.iter().find(|(a, _)| *a == app).map(|(_, t)| *t);
    Ok((size_kib(&image_path(root, app, false)), target))
}

/// `cargo xtask build APP --target virtio`.
pub fn build(root: &Path, app: &str) -> Outcome {
    check_wired(root, app)?;
    build_images(root, &[app], false)?;
    let image = image_path(root, app, false);
    println!("{} ({:.1} KiB stripped)", image.display(), size_kib(&image));
    println!("{} (symbols and line tables)", morgana_qemu::debug_path(&image).display());
    Ok(())
}

/// The value of `--name V` or `--name=V` among an app's arguments.
fn app_arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let (long, eq) = (format!("--{name}"), format!("--{name}="));
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix(&eq) {
            return Some(v);
        }
        if *a == long {
            return it.next().map(String::as_str);
        }
    }
    None
}

/// A TCP port an app serves: its declared argument's value among the app's arguments, else the
/// default its `Cargo.toml` declares ([`crate::meta`]); and the URL scheme it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AppPort {
    port: u16,
    scheme: Option<String>,
}

/// The ports `app` serves (see [`AppPort`]), given its arguments.
fn app_ports(app: &App, args: &[String]) -> Vec<AppPort> {
    let mut out = Vec::new();
    for decl in &app.ports {
        let port = match app_arg(args, &decl.arg) {
            Some(v) => v.parse().ok(),
            None => decl.default,
        };
        if let Some(port) = port {
            out.push(AppPort { port, scheme: decl.scheme.clone() });
        }
    }
    out
}

/// The host port that forwards to guest port `guest` by default: the same port, except that
/// ports below 1024 (which need root on the host) move up by 8000: 443 -> 8443, 80 -> 8080,
/// 7 -> 8007.
pub fn host_port(guest: u16) -> u16 {
    if guest < 1024 { guest + 8000 } else { guest }
}

fn parse_forward(s: &str) -> Result<(u16, u16), Failure> {
    let bad = || Failure::usage(format!("--forward {s}: expected HOST:GUEST ports, like 8080:80"));
    let (h, g) = s.split_once(':').ok_or_else(bad)?;
    Ok((h.parse().map_err(|_| bad())?, g.parse().map_err(|_| bad())?))
}

/// A disk image QEMU can attach as it is: an existing file of whole 512-byte sectors (QEMU would
/// silently round a ragged one up and grow the file).
fn check_disk_image(file: &Path) -> Outcome {
    let len = match std::fs::metadata(file) {
        Ok(m) if m.is_file() => m.len(),
        _ => {
            return Err(Failure::usage(format!(
                "--block {}: no such file (create one: truncate -s 16M disk.img)",
                file.display()
            )));
        }
    };
    if len % 512 != 0 {
        return Err(Failure::usage(format!(
            "--block {}: {len} bytes is not a whole number of 512-byte sectors (resize it: truncate -s {}K {})",
            file.display(),
            len.div_ceil(1024),
            file.display()
        )));
    }
    Ok(())
}

/// Pick the accelerator: the one asked for, else KVM when usable (saying so when it is not).
fn choose_kvm(accel: Option<&str>) -> Result<bool, Failure> {
    match accel {
        Some("tcg") => Ok(false),
        Some(_) if !kvm_usable() => Err(Failure::new(
            "--accel kvm: /dev/kvm is not usable (missing, or no permission): use --accel tcg",
        )),
        Some(_) => Ok(true),
        None if kvm_usable() => {
            if kvm_is_software() {
                eprintln!(
                    "note: /dev/kvm here is kvm_pvm (no hardware virtualization: the guest's instructions are \
                     emulated); --accel tcg runs compute-heavy guests faster"
                );
            }
            Ok(true)
        }
        None => {
            eprintln!("/dev/kvm not usable: falling back to TCG (slower)");
            Ok(false)
        }
    }
}

/// An app that does not run on this target fails in one line instead of a link error.
fn check_wired(root: &Path, app: &str) -> Result<App, Failure> {
    let app = meta::app(root, app)?;
    if app.supports("virtio") {
        Ok(app)
    } else {
        Err(Failure::usage(format!(
            "{} does not run on --target virtio (its Cargo.toml's [package.metadata.morgana] targets); it does: {}",
            app.name,
            virtio_apps(root)?.join(", ")
        )))
    }
}

/// `cargo xtask run APP --target virtio ...`.
pub fn run(root: &Path, name: &str, q: &QemuArgs, args: &[String]) -> Outcome {
    let meta = check_wired(root, name)?;
    let app = name;
    check_qemu()?;
    let mut forwards = q.forward.iter().map(|f| parse_forward(f)).collect::<Result<Vec<_>, _>>()?;
    let net = match q.net.as_deref() {
        Some(tap) if tap.starts_with("tap:") => {
            if !forwards.is_empty() {
                return Err(Failure::usage("--forward needs user networking, not --net tap:IF"));
            }
            let ifname = &tap[4..];
            if ifname.is_empty() {
                return Err(Failure::usage("--net tap:IFNAME: the TAP interface name is missing"));
            }
            Some(NetSpec::Tap(ifname.to_string()))
        }
        Some("user") | None => {
            let mut shown = Vec::new();
            for p in app_ports(&meta, args) {
                let host = match forwards.iter().find(|(_, g)| *g == p.port) {
                    Some((h, _)) => *h,
                    None => {
                        forwards.push((host_port(p.port), p.port));
                        host_port(p.port)
                    }
                };
                shown.push(match &p.scheme {
                    Some(scheme) => format!(
                        "serving {scheme}://127.0.0.1:{host}/ (host port {host} forwards to the guest's port {})",
                        p.port
                    ),
                    None => format!("127.0.0.1:{host} forwards to the guest's TCP port {}", p.port),
                });
            }
            for (host, guest) in &forwards {
                // QEMU would fail with an exit status that reads as the guest's success.
                if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", *host)) {
                    return Err(Failure::new(format!(
                        "cannot forward 127.0.0.1:{host} to the guest's port {guest}: {e}; pick another host port with --forward PORT:{guest}"
                    )));
                }
            }
            shown.iter().for_each(|line| println!("{line}"));
            (q.net.is_some() || !forwards.is_empty() || meta.nic).then_some(NetSpec::User(forwards))
        }
        Some(other) => return Err(Failure::usage(format!("--net {other}: expected user or tap:IFNAME"))),
    };
    // The app's own `--block FILE` (the argument every target understands) names the disk too.
    let block = q.block.clone().or_else(|| app_arg(args, "block").map(PathBuf::from));
    if let Some(file) = &block {
        check_disk_image(file)?;
    }
    let kvm = choose_kvm(q.accel.as_deref())?;
    build_images(root, &[app], false)?;
    let mut vm = Vm::new(&image_path(root, app, false), kvm).args(args.iter().cloned());
    vm.q35 = q.machine == "q35";
    vm.mem = q.mem.clone();
    vm.net = net;
    vm.block = block;
    // The console through a relay that resolves a crash's backtrace from `APP.debug`.
    let mut child = vm
        .command()
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Failure::new(format!("cannot start {QEMU}: {e}")))?;
    if let Some(console) = child.stdout.take() {
        let _ = morgana_qemu::relay(console, std::io::stdout().lock(), &Symbolizer::new(&vm.image));
    }
    let status = child.wait().map_err(|e| Failure::new(format!("{QEMU}: {e}")))?;
    match guest_status(status) {
        Ok(0) => Ok(()),
        Ok(s) => Err(Failure { message: String::new(), code: s }),
        Err(e) => Err(Failure::new(format!("{app}: {e}"))),
    }
}

/// The apps that run on this target (their `Cargo.toml` says so, or names no targets).
pub fn virtio_apps(root: &Path) -> Result<Vec<String>, Failure> {
    Ok(meta::apps(root)?.into_iter().filter(|a| a.supports("virtio")).map(|a| a.name).collect())
}

/// `cargo xtask size`: stripped image size per app.
pub fn size(root: &Path) -> Outcome {
    let all = virtio_apps(root)?;
    let names: Vec<&str> = all.iter().map(String::as_str).collect();
    build_images(root, &names, false)?;
    println!("{:<12} {:>12}", "app", "image (KiB)");
    for app in &names {
        let kib = size_kib(&image_path(root, app, false));
        let note = match SIZE_TARGETS_KIB.iter().find(|(a, _)| a == app) {
            Some((_, target)) => {
                format!("  target <= {target} KiB: {}", if kib <= *target as f64 { "met" } else { "MISSED" })
            }
            None => String::new(),
        };
        println!("{app:<12} {kib:>12.1}{note}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_and_ports() {
        assert_eq!(parse_forward("8080:80").ok(), Some((8080, 80)));
        assert!(parse_forward("8080").is_err() && parse_forward("x:1").is_err());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let ports = |app: &str, args: &[&str]| -> Vec<(u16, Option<String>)> {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let app = meta::app(root, app).unwrap_or_else(|f| panic!("{}", f.message));
            app_ports(&app, &args).into_iter().map(|p| (p.port, p.scheme)).collect()
        };
        let https = || Some("https".to_string());
        assert_eq!(ports("echo", &["--port", "17"]), [(17, None)]);
        assert_eq!(ports("echo", &["--port=99"]), [(99, None)]);
        assert_eq!(ports("hello", &["--port", "7"]), [], "hello declares no port");
        assert_eq!(ports("echo", &[]), [(7, None)]);
        assert_eq!(ports("www", &[]), [(443, https())], "www's bare-metal default");
        assert_eq!(ports("www", &["--http-port", "80"]), [(443, https()), (80, Some("http".into()))]);
        assert_eq!((host_port(443), host_port(7), host_port(8443)), (8443, 8007, 8443));
        let args: Vec<String> = ["--log", "debug", "--block=disk.img"].map(String::from).into();
        assert_eq!(app_arg(&args, "block"), Some("disk.img"));
        assert_eq!(app_arg(&args, "log"), Some("debug"));
        assert_eq!(app_arg(&args, "net"), None);
    }
}
