//! `--target virtio`: bare-metal images built for `x86_64-unknown-none` and booted in QEMU.
//!
//! ```text
//! build [APP] --target virtio          image path and stripped size
//! run [APP] --target virtio [--accel kvm|tcg] [--machine microvm|q35] [--mem SIZE]
//!     [--net user|tap:IF] [--forward HOST:GUEST]... [--block FILE|NBD-URL] [-- APP ARGS]
//! ```
//!
//! The QEMU command line and the guest's exit status (`s` written to `isa-debug-exit`, QEMU
//! exiting `2s + 1`) are `morgana-qemu`'s, shared with `cargo xtask bench boot` and the QEMU
//! test suite (`impls/virtio-tests`).

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use morgana_qemu::{Disk, NetSpec, QEMU, Symbolizer, Vm, guest_status, kvm_is_software, kvm_usable};

use crate::meta::{App, Workspace};
use crate::process::bin;
use crate::{Failure, Outcome, cargo, exec};

/// The Rust target of the images.
pub const RUST_TARGET: &str = "x86_64-unknown-none";
/// Cargo profile for images: LTO, size-optimised, linked with line tables (kept as `IMAGE.debug`,
/// the image itself stripped: [`crate::strip`]).
pub const PROFILE: &str = "release-small";
/// [`PROFILE`], given to cargo with `--config`: a dependency's profiles do not apply to the crate
/// that depends on it, so a user's crate would otherwise need a copy of this in its manifest.
/// The same settings as the Morgana workspace's own `[profile.release-small]`, so its images
/// build as before.
pub const PROFILE_CONFIG: &[&str] = &[
    "profile.release-small.inherits=\"release\"",
    "profile.release-small.lto=true",
    "profile.release-small.codegen-units=1",
    "profile.release-small.opt-level=\"s\"",
    "profile.release-small.debug=\"line-tables-only\"",
    "profile.release-small.strip=false",
];

/// What every bare-metal build needs (morgana-virtio's build script refuses to build without):
/// static, non-PIE, linked by the script `morgana-virtio.ld` at 1 MiB, which that build script
/// puts on the linker's search path; and frame pointers, which a crash's backtrace walks (not
/// required). Applied to the bare-metal target only, so host builds are untouched.
pub const RUSTFLAGS: &str =
    "-C relocation-model=static -C force-frame-pointers=yes -C link-arg=-Tmorgana-virtio.ld";
/// Where [`RUSTFLAGS`] go: the bare-metal target's own flags.
pub const RUSTFLAGS_VAR: &str = "CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS";

/// QEMU options of `run --target virtio`.
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
    /// The virtio-blk disk: a raw image file, or an NBD export QEMU connects to
    /// (nbd://HOST:PORT/EXPORT, nbd+unix:///EXPORT?socket=PATH). Default: the app's own
    /// `--block FILE`.
    #[arg(long, value_name = "FILE|URL")]
    pub block: Option<String>,
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

/// Make sure the bare-metal target is installed, installing it with rustup if it is not.
pub fn ensure_target() -> Outcome {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    if let Ok(out) = &installed
        && String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == RUST_TARGET)
    {
        return Ok(());
    }
    println!("==> rustup target add {RUST_TARGET}");
    match Command::new("rustup").args(["target", "add", RUST_TARGET]).status() {
        Ok(s) if s.success() => Ok(()),
        _ => Err(Failure::new(format!(
            "the {RUST_TARGET} target is missing and rustup could not install it: run `rustup target add {RUST_TARGET}`"
        ))),
    }
}

/// Where cargo puts the images of `ws` (the QEMU suite's `MORGANA_VIRTIO_IMAGES`).
pub fn images_dir(ws: &Workspace) -> PathBuf {
    ws.target_dir.join(RUST_TARGET).join(PROFILE)
}

/// Where cargo puts image `name` (`example`: an example's, like the conformance image).
pub fn image_path(ws: &Workspace, name: &str, example: bool) -> PathBuf {
    let dir = images_dir(ws);
    if example { dir.join("examples").join(name) } else { dir.join(name) }
}

/// `cargo build --quiet` for bare metal in `ws`, in [`PROFILE`] with [`RUSTFLAGS`]: add what to
/// build (`-p APP --bin APP`), run it, then [`crate::strip::split`] the image.
pub fn image_build(ws: &Workspace) -> Command {
    let mut c = cargo();
    c.env(RUSTFLAGS_VAR, RUSTFLAGS);
    c.args(["build", "--quiet", "--manifest-path"]).arg(&ws.manifest);
    c.args(["--target", RUST_TARGET, "--profile", PROFILE]);
    for setting in PROFILE_CONFIG {
        c.args(["--config", setting]);
    }
    c
}

/// Build `app`'s image (one build per app: built together, cargo would unify their features, and
/// www's `getrandom` hook would land in every image) and strip it; the image's path.
pub fn build_image(ws: &Workspace, app: &App) -> Result<PathBuf, Failure> {
    ensure_target()?;
    let bin = bin(app)?;
    exec(image_build(ws).args(["-p", &app.name, "--bin", bin]))?;
    let image = image_path(ws, bin, false);
    crate::strip::split(&image)?;
    Ok(image)
}

/// The size of the file at `path` in KiB (0 if it cannot be read).
pub fn size_kib(path: &Path) -> f64 {
    std::fs::metadata(path).map(|m| m.len() as f64 / 1024.0).unwrap_or(0.0)
}

/// `build --target virtio`: the image's path and stripped size, and its `.debug` copy.
pub fn build(ws: &Workspace, app: &App) -> Outcome {
    let image = build_image(ws, app)?;
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

/// The URL schemes of an NBD export, which QEMU opens as the NBD client.
const NBD_SCHEMES: &[&str] = &["nbd://", "nbd+tcp://", "nbd+unix://"];

/// The disk `--block` names: an NBD URL (checked as far as the host can tell before QEMU
/// connects), else a file ([`check_disk_image`]).
fn disk(spec: &str) -> Result<Disk, Failure> {
    if !NBD_SCHEMES.iter().any(|s| spec.starts_with(s)) {
        let file = PathBuf::from(spec);
        check_disk_image(&file)?;
        return Ok(Disk::File(file));
    }
    let bad = |why: &str| Failure::usage(format!("--block {spec}: {why}"));
    if let Some(rest) = spec.strip_prefix("nbd+unix://") {
        let socket =
            rest.split_once('?').and_then(|(_, q)| q.split('&').find_map(|p| p.strip_prefix("socket=")));
        let socket = socket.ok_or_else(|| bad("no socket: expected nbd+unix:///EXPORT?socket=PATH"))?;
        match std::fs::metadata(socket) {
            Ok(m) if m.file_type().is_socket() => {}
            Ok(_) => {
                return Err(bad(&format!("{socket} is not a socket (is the NBD server listening there?)")));
            }
            Err(_) => return Err(bad(&format!("nothing at {socket}: start the NBD server first"))),
        }
    } else {
        let host = spec.split_once("://").map_or("", |(_, r)| r.split(['/', ':', '?']).next().unwrap_or(""));
        if host.is_empty() {
            return Err(bad("no host: expected nbd://HOST[:PORT]/EXPORT"));
        }
    }
    Ok(Disk::Url(spec.to_string()))
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

/// `run --target virtio ...`: boot `app`'s image in QEMU; the guest's status is the exit status.
pub fn run(ws: &Workspace, meta: &App, q: &QemuArgs, args: &[String]) -> Outcome {
    let app = meta.name.as_str();
    check_qemu()?;
    // The app's own `--block FILE` (the argument every target understands) names the disk too.
    let block = q.block.as_deref().or_else(|| app_arg(args, "block")).map(disk).transpose()?;
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
            for p in app_ports(meta, args) {
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
    let kvm = choose_kvm(q.accel.as_deref())?;
    let image = build_image(ws, meta)?;
    let mut vm = Vm::new(&image, kvm).args(args.iter().cloned());
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

/// The apps of `apps` that run on this target (their `Cargo.toml` says so, or names no targets).
pub fn virtio_apps(apps: &[App]) -> Vec<String> {
    apps.iter().filter(|a| a.supports("virtio")).map(|a| a.name.clone()).collect()
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
            let apps = crate::meta::apps(root).unwrap_or_else(|f| panic!("{}", f.message));
            let app = crate::meta::app(&apps, app).unwrap_or_else(|f| panic!("{}", f.message));
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

    #[test]
    fn a_disk_is_a_checked_file_or_an_nbd_url() {
        let dir = std::env::temp_dir().join(format!("morgana-tool-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = |spec: &str| disk(spec).err().map(|f| f.message).unwrap_or_default();
        let file = dir.join("d.img");
        std::fs::write(&file, vec![0; 1024]).unwrap();
        assert_eq!(disk(file.to_str().unwrap()).ok(), Some(Disk::File(file.clone())));
        std::fs::write(&file, vec![0; 1000]).unwrap();
        assert!(err(file.to_str().unwrap()).contains("not a whole number of 512-byte sectors"));
        assert!(err("/no/such.img").contains("no such file"));
        assert_eq!(disk("nbd://127.0.0.1:10809/x").ok(), Some(Disk::Url("nbd://127.0.0.1:10809/x".into())));
        assert!(err("nbd:///x").contains("no host"));
        assert!(err("nbd+unix:///x").contains("no socket"));
        let sock = dir.join("s.sock");
        assert!(
            err(&format!("nbd+unix:///x?socket={}", sock.display())).contains("start the NBD server first")
        );
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let url = format!("nbd+unix:///x?socket={}", sock.display());
        assert_eq!(disk(&url).ok(), Some(Disk::Url(url.clone())));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
