//! `--target virtio`: bare-metal images built for `x86_64-unknown-none` and booted in QEMU.
//!
//! ```text
//! cargo xtask build APP --target virtio          image path and stripped size
//! cargo xtask run APP --target virtio [--accel kvm|tcg] [--machine microvm|q35] [--mem SIZE]
//!     [--net user|tap:IF] [--forward HOST:GUEST]... [--block FILE] [-- APP ARGS]
//! cargo xtask size                               stripped image size per app
//! cargo xtask bench boot [--runs N]              launch-to-exit vs an empty kernel; guest boot time; smallest --mem
//! ```
//!
//! Exit status: the kernel writes its status `s` to QEMU's `isa-debug-exit` port, and QEMU exits
//! with `(s << 1) | 1`; [`guest_status`] turns that back into `s` (0 ok, 1 app error or failed
//! start, 2 bad argument, 3 CPU exception, 101 panic). QEMU exiting 0 means the guest reset
//! without reporting a status (a triple fault).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::meta::{self, App};
use crate::{Failure, NO_STD_TARGET, Outcome, cargo, exec};

mod live;

/// QEMU binary.
const QEMU: &str = "qemu-system-x86_64";
/// Firmware for `q35`: qboot, which boots a PVH kernel in milliseconds (SeaBIOS takes seconds).
const QBOOT: &str = "/usr/share/qemu/bios-microvm.bin";
/// Cargo profile for images: LTO, size-optimised, stripped.
const PROFILE: &str = "release-small";
/// Image-size targets (`cargo xtask size`), KiB: `www` includes its crypto provider.
const SIZE_TARGETS_KIB: &[(&str, u64)] = &[("hello", 64), ("echo", 256), ("www", 1536)];

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

/// How a network interface is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NetSpec {
    /// QEMU's user-mode stack, with TCP forwards `(host, guest)`.
    User(Vec<(u16, u16)>),
    /// An existing TAP interface.
    Tap(String),
    /// Two NICs on one QEMU hub (the conformance image's `net` check).
    HubPair,
}

/// A QEMU launch.
#[derive(Debug, Clone)]
struct Vm {
    image: PathBuf,
    kvm: bool,
    q35: bool,
    mem: String,
    net: Option<NetSpec>,
    block: Option<PathBuf>,
    /// microvm: modern virtio-mmio (version 2) instead of QEMU 7.2's default legacy.
    mmio_modern: bool,
    /// A CPU model instead of the accelerator's default.
    cpu: Option<&'static str>,
    append: Vec<String>,
}

impl Vm {
    fn new(image: &Path, kvm: bool) -> Self {
        Self {
            image: image.to_path_buf(),
            kvm,
            q35: false,
            mem: "64M".into(),
            net: None,
            block: None,
            mmio_modern: false,
            cpu: None,
            append: Vec::new(),
        }
    }

    fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.append = args.into_iter().map(Into::into).collect();
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(QEMU);
        if self.q35 {
            c.args(["-M", "q35", "-bios", QBOOT]);
        } else {
            c.args(["-M", "microvm,acpi=off,rtc=on"]);
            if self.mmio_modern {
                c.args(["-global", "virtio-mmio.force-legacy=false"]);
            }
        }
        if self.kvm {
            // Plain `-cpu host` aborts on MSR 0x10a on nested hosts.
            c.args(["-accel", "kvm", "-cpu", self.cpu.unwrap_or("host,-arch-capabilities")]);
        } else {
            // `max` has RDRAND, which the kernel needs for entropy.
            c.args(["-accel", "tcg", "-cpu", self.cpu.unwrap_or("max")]);
        }
        c.args(["-m", &self.mem, "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none"]);
        c.args(["-serial", "stdio", "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]);
        c.arg("-kernel").arg(&self.image);
        c.args(["-append", &cmdline(&self.append)]);
        let (net_dev, blk_dev, rom) = if self.q35 {
            ("virtio-net-pci", "virtio-blk-pci", ",romfile=")
        } else {
            ("virtio-net-device", "virtio-blk-device", "")
        };
        match &self.net {
            None => {}
            Some(NetSpec::User(forwards)) => {
                let mut nd = String::from("user,id=net0");
                for (h, g) in forwards {
                    nd.push_str(&format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"));
                }
                c.args(["-netdev", &nd, "-device", &format!("{net_dev},netdev=net0{rom}")]);
            }
            Some(NetSpec::Tap(ifname)) => {
                c.args(["-netdev", &format!("tap,id=net0,ifname={ifname},script=no,downscript=no")]);
                c.args(["-device", &format!("{net_dev},netdev=net0{rom}")]);
            }
            Some(NetSpec::HubPair) => {
                // A hub with no port to a host network makes q35's firmware hang: give it one
                // (user-mode, which ignores the test frames).
                c.args(["-netdev", "user,id=up", "-netdev", "hubport,id=hp,hubid=0,netdev=up"]);
                for i in 0..2 {
                    c.args(["-netdev", &format!("hubport,id=p{i},hubid=0")]);
                    c.args(["-device", &format!("{net_dev},netdev=p{i}{rom}")]);
                }
            }
        }
        if let Some(file) = &self.block {
            c.arg("-drive").arg(format!("file={},if=none,id=blk0,format=raw", file.display()));
            c.args(["-device", &format!("{blk_dev},drive=blk0")]);
        }
        c
    }
}

/// Join app arguments into a kernel command line; words with spaces are double-quoted.
fn cmdline(args: &[String]) -> String {
    let words: Vec<String> = args
        .iter()
        .map(|a| if a.contains(char::is_whitespace) { format!("\"{a}\"") } else { a.clone() })
        .collect();
    words.join(" ")
}

/// The kernel's status from QEMU's exit status (see the module documentation).
pub fn guest_status(status: ExitStatus) -> Result<u8, String> {
    match status.code() {
        Some(0) => Err("the guest reset without reporting a status (a triple fault?)".into()),
        Some(c) if c % 2 == 1 => Ok((c >> 1) as u8),
        Some(c) => Err(format!("QEMU failed (exit status {c})")),
        None => Err("QEMU was killed by a signal".into()),
    }
}

/// Whether QEMU can use KVM here.
pub fn kvm_usable() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

/// Whether /dev/kvm is PVM (Linux's page-table-based software virtualization, as on some nested
/// cloud hosts), where a guest kernel runs about one instruction per microsecond.
pub fn kvm_is_software() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

fn check_qemu() -> Outcome {
    match Command::new(QEMU).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(s) if s.success() => Ok(()),
        _ => Err(Failure::new(format!(
            "{QEMU} not found: install QEMU with `sudo apt-get install qemu-system-x86`"
        ))),
    }
}

fn linker_script(root: &Path) -> PathBuf {
    root.join("impls/virtio/link.ld")
}

/// Where cargo puts image `name` (`example` for the conformance image).
fn image_path(root: &Path, name: &str, example: bool) -> PathBuf {
    let dir = root.join("target").join(NO_STD_TARGET).join(PROFILE);
    if example { dir.join("examples").join(name) } else { dir.join(name) }
}

/// Build the images of `apps` (and the conformance image if `conformance`).
fn build_images(root: &Path, apps: &[&str], conformance: bool) -> Outcome {
    crate::test::ensure_no_std_target()?;
    let image_build = || {
        let mut c = cargo();
        // Static, non-PIE, linked at 1 MiB. Applied to the bare-metal target only, so host builds
        // and the no_std library checks are untouched.
        c.env(
            "CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS",
            format!("-C relocation-model=static -C link-arg=-T{}", linker_script(root).display()),
        );
        c.args(["build", "--quiet", "--target", NO_STD_TARGET, "--profile", PROFILE]);
        c
    };
    // One build per app: built together, cargo would unify their features (www's `getrandom`
    // hook would land in every image), and an image would differ from what
    // `cargo xtask build APP` makes. Cargo keeps both variants, so switching is cheap.
    for app in apps {
        exec(image_build().args(["-p", app, "--bin", app]))?;
    }
    if conformance {
        // Separately: an example turns on its package's dev-dependencies, and the apps' (which
        // use std) must not leak into their images through feature unification.
        exec(image_build().args(["-p", "morgana-virtio", "--example", "conformance"]))?;
    }
    Ok(())
}

fn size_kib(path: &Path) -> f64 {
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
    let status = vm.command().status().map_err(|e| Failure::new(format!("cannot start {QEMU}: {e}")))?;
    match guest_status(status) {
        Ok(0) => Ok(()),
        Ok(s) => Err(Failure { message: String::new(), code: s }),
        Err(e) => Err(Failure::new(format!("{app}: {e}"))),
    }
}

/// What a boot printed and how it ended.
struct Boot {
    /// Lines (without `\r`) and when the host read each, from launch.
    lines: Vec<(Duration, String)>,
    /// Guest status, or why there is none.
    status: Result<u8, String>,
    /// Launch to exit.
    elapsed: Duration,
    /// What QEMU (or xtask) printed on stderr.
    stderr: String,
}

impl Boot {
    fn text(&self) -> String {
        self.lines.iter().map(|(_, l)| format!("  | {l}\n")).collect()
    }

    fn find(&self, needle: &str) -> Vec<&(Duration, String)> {
        self.lines.iter().filter(|(_, l)| l.contains(needle)).collect()
    }
}

/// How a test starts a guest.
enum Launch {
    /// QEMU directly.
    Qemu(Vm),
    /// `cargo xtask run ...` (this very binary), as a user types it; its status is the guest's.
    Xtask(Vec<String>),
}

/// Boot `vm`, capturing its console, killing it after `timeout`.
fn boot(vm: &Vm, timeout: Duration) -> Result<Boot, String> {
    boot_with(&Launch::Qemu(vm.clone()), timeout)
}

fn boot_with(launch: &Launch, timeout: Duration) -> Result<Boot, String> {
    let mut cmd = match launch {
        Launch::Qemu(vm) => vm.command(),
        Launch::Xtask(args) => {
            let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            c.args(args);
            c
        }
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {QEMU}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send((start.elapsed(), line.trim_end_matches('\r').to_string()));
        }
    });
    let deadline = start + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    let _ = reader.join();
    let lines: Vec<_> = rx.try_iter().collect();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let status = match (status, launch) {
        (Some(s), Launch::Qemu(_)) => {
            guest_status(s).map_err(|e| format!("{e}; QEMU said: {}", stderr.trim()))
        }
        (Some(s), Launch::Xtask(_)) => s
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .ok_or_else(|| format!("xtask failed: {}", stderr.trim())),
        (None, _) => Err(format!("timed out after {timeout:?}")),
    };
    Ok(Boot { lines, status, elapsed, stderr })
}

/// Guest timestamp of a log line: `[    1.000123] INFO ...` in seconds.
fn guest_time(line: &str) -> Option<f64> {
    let inner = line.strip_prefix('[')?.split(']').next()?;
    inner.trim().parse().ok()
}

/// `cargo xtask run APP --target virtio EXTRA... [-- APP_ARGS...]`, as a launch.
fn xtask_run(app: &str, extra: &[&str], app_args: &[&str]) -> Launch {
    let mut a: Vec<String> = ["run", app, "--target", "virtio"].map(String::from).into();
    a.extend(extra.iter().map(|s| s.to_string()));
    if !app_args.is_empty() {
        a.push("--".into());
        a.extend(app_args.iter().map(|s| s.to_string()));
    }
    Launch::Xtask(a)
}

/// Checks what a boot printed and how it ended.
type Check = Box<dyn Fn(&Boot) -> Result<(), String>>;

/// One QEMU test: a name, a VM, and a check of what it printed.
struct Case {
    name: String,
    launch: Launch,
    timeout: Duration,
    check: Check,
}

fn expect_status(b: &Boot, want: u8) -> Result<(), String> {
    match &b.status {
        Ok(s) if *s == want => Ok(()),
        Ok(s) => Err(format!("exit status {s}, expected {want}")),
        Err(e) => Err(e.clone()),
    }
}

/// `count` hello lines, `interval` apart on the guest clock (each pair, within 25%) and on the
/// host's (first to last, within 25%: a host starved by other work delays single lines).
fn check_hello(b: &Boot, count: usize, interval: Duration) -> Result<(), String> {
    expect_status(b, 0)?;
    let hellos = b.find("INFO  hello: hello");
    if hellos.len() != count {
        return Err(format!("{} hello lines, expected {count}", hellos.len()));
    }
    let want = interval.as_secs_f64();
    for pair in hellos.windows(2) {
        let guest =
            guest_time(&pair[1].1).zip(guest_time(&pair[0].1)).map(|(a, b)| a - b).ok_or("no timestamp")?;
        if (guest - want).abs() > want * 0.25 {
            return Err(format!("hello lines {guest:.3}s apart on the guest clock, expected {want:.3}s"));
        }
    }
    if let (Some(first), Some(last)) = (hellos.first(), hellos.last()) {
        let host = (last.0 - first.0).as_secs_f64();
        let span = want * (count - 1) as f64;
        if (host - span).abs() > span * 0.25 {
            return Err(format!(
                "first to last hello took {host:.3}s on the host clock, expected {span:.3}s"
            ));
        }
    }
    Ok(())
}

/// Disk images for the `block` app's runs.
struct BlockImages {
    /// 256 KiB of zeros.
    good: PathBuf,
    /// No sectors at all.
    empty: PathBuf,
    /// 1000 bytes: not a whole number of sectors.
    ragged: PathBuf,
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// POSIX seconds of an RFC 3339 UTC time `2026-01-01T00:00:03.000Z` (seconds precision).
fn rfc3339_secs(s: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    if s.len() < 20 || &s[4..5] != "-" || &s[10..11] != "T" {
        return None;
    }
    let days = days_from_civil(n(0..4)?, n(5..7)?, n(8..10)?);
    Some(days * 86_400 + n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?)
}

/// `clock --count N`: N lines, wall time near the host's, monotonic time one second apart.
fn check_clock(b: &Boot, count: usize) -> Result<(), String> {
    expect_status(b, 0)?;
    let lines = b.find("(monotonic: ");
    if lines.len() != count {
        return Err(format!("{} clock lines, expected {count}", lines.len()));
    }
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    for (i, (_, line)) in lines.iter().enumerate() {
        let text = line.split("clock: ").nth(1).ok_or_else(|| format!("unreadable: {line}"))?;
        let wall = rfc3339_secs(text).ok_or_else(|| format!("not RFC 3339: {line}"))?;
        if (wall - host).abs() > 30 {
            return Err(format!("guest wall clock {text} is {}s off the host's", wall - host));
        }
        let mono: f64 = text
            .split("(monotonic: ")
            .nth(1)
            .and_then(|m| m.split('s').next())
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| format!("no monotonic time: {line}"))?;
        if (mono - i as f64).abs() > 0.25 {
            return Err(format!("tick {i} at {mono}s monotonic, expected {i}s"));
        }
    }
    Ok(())
}

fn cases(root: &Path, kvm: bool, disk: &Path, images: &BlockImages) -> Vec<Case> {
    let img = |app: &str| image_path(root, app, false);
    let conf = image_path(root, "conformance", true);
    let mut cases = Vec::new();
    let mut add = |name: &str, launch: Launch, secs: u64, check: Check| {
        cases.push(Case { name: name.to_string(), launch, timeout: Duration::from_secs(secs), check });
    };
    // The done-when runs, through the command users type: the default four hellos a second
    // apart, then every machine and accelerator with the spacing shortened (checked
    // proportionally). Without KVM, the default falls back to TCG.
    let run = |extra: &[&'static str], app_args: &[&'static str]| xtask_run("hello", extra, app_args);
    add(
        "cargo xtask run hello --target virtio: four lines a second apart",
        run(&[], &[]),
        60,
        Box::new(|b| check_hello(b, 4, Duration::from_secs(1))),
    );
    let fast = ["--interval-ms", "250"];
    let mut combos = vec![
        ("--accel tcg", vec!["--accel", "tcg"]),
        ("--machine q35 --accel tcg", vec!["--machine", "q35", "--accel", "tcg"]),
    ];
    if kvm {
        combos.push(("--machine q35 --accel kvm", vec!["--machine", "q35", "--accel", "kvm"]));
    }
    for (what, extra) in combos {
        add(
            &format!("cargo xtask run hello --target virtio {what}: 250 ms apart"),
            run(&extra, &fast),
            60,
            Box::new(|b| check_hello(b, 4, Duration::from_millis(250))),
        );
    }
    add(
        "heads: two sleeps overlap",
        Launch::Qemu(Vm::new(&img("heads"), kvm)),
        30,
        Box::new(|b| {
            expect_status(b, 0)?;
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
        }),
    );
    add(
        "timeout: the task wins",
        Launch::Qemu(Vm::new(&img("timeout"), kvm).args(["--task-ms", "100", "--timeout-ms", "400"])),
        30,
        Box::new(|b| {
            expect_status(b, 0)?;
            if b.find("Returned Heads after").is_empty() { Err("no 'Returned Heads'".into()) } else { Ok(()) }
        }),
    );
    add(
        "timeout: the timeout wins",
        Launch::Qemu(Vm::new(&img("timeout"), kvm).args(["--task-ms", "3000", "--timeout-ms", "150"])),
        30,
        Box::new(|b| {
            expect_status(b, 0)?;
            if b.find("Cancelled: timed out after").is_empty() {
                Err("no 'Cancelled'".into())
            } else {
                Ok(())
            }
        }),
    );
    add(
        "noop: exits 0 silently",
        Launch::Qemu(Vm::new(&img("noop"), kvm)),
        30,
        Box::new(|b| {
            expect_status(b, 0)?;
            if b.lines.is_empty() { Ok(()) } else { Err("printed something".into()) }
        }),
    );
    add(
        "bad argument: one line, status 2",
        Launch::Qemu(Vm::new(&img("hello"), kvm).args(["--count", "many"])),
        30,
        Box::new(|b| {
            expect_status(b, 2)?;
            let want = "hello: --count: expected a number from 0 to 4294967295, got \"many\"";
            if b.lines.len() == 1 && b.lines[0].1 == want {
                Ok(())
            } else {
                Err(format!("expected only: {want}"))
            }
        }),
    );
    add(
        "--help: usage, status 0",
        Launch::Qemu(Vm::new(&img("hello"), kvm).args(["--help"])),
        30,
        Box::new(|b| {
            expect_status(b, 0)?;
            if b.find("--interval-ms MS").is_empty() { Err("no usage".into()) } else { Ok(()) }
        }),
    );
    add(
        "echo --help on bare metal: only what the kernel reads (no --net, --block, --kv)",
        Launch::Qemu(Vm::new(&img("echo"), kvm).args(["--help"])),
        30,
        Box::new(|b| {
            expect_status(b, 0)?;
            if b.find("--ipv4 ADDR/PREFIX").is_empty() || b.find("--port PORT").is_empty() {
                return Err("no --ipv4 or --port in the usage".into());
            }
            match ["--net", "--block", "--kv", "--tap-no-offload"].iter().find(|a| !b.find(a).is_empty()) {
                Some(a) => Err(format!("the usage lists {a}, which the kernel does not read")),
                None => Ok(()),
            }
        }),
    );
    add(
        "guest panic: readable message, status 101",
        Launch::Qemu(Vm::new(&conf, kvm).args(["--check", "panic"])),
        30,
        Box::new(|b| {
            expect_status(b, 101)?;
            let ok = b.lines.iter().any(|(_, l)| {
                l.starts_with("panicked at ")
                    && l.contains("conformance.rs")
                    && l.ends_with("deliberate panic from the conformance image")
            });
            if ok { Ok(()) } else { Err("no 'panicked at ...: deliberate panic' line".into()) }
        }),
    );
    add(
        "out of memory: one line with the heap's size and use, status 101",
        Launch::Qemu(Vm { mem: "8M".into(), ..Vm::new(&conf, kvm).args(["--check", "out-of-memory"]) }),
        60,
        Box::new(|b| {
            expect_status(b, 101)?;
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
        }),
    );
    add(
        "CPU exception: vector and RIP, status 3",
        Launch::Qemu(Vm::new(&conf, kvm).args(["--check", "exception"])),
        30,
        Box::new(|b| {
            expect_status(b, 3)?;
            let want = "CPU exception 14 (page fault), error code 0x0, at RIP 0x";
            if b.find(want).is_empty() || b.find("CR2 0x1000000000)").is_empty() {
                Err(format!("no '{want}... CR2 0x1000000000)' line"))
            } else {
                Ok(())
            }
        }),
    );
    add(
        "stack overflow: the guard page faults, reported, status 3",
        Launch::Qemu(Vm::new(&conf, kvm).args(["--check", "stack-overflow"])),
        30,
        Box::new(|b| {
            expect_status(b, 3)?;
            let fault = "CPU exception 14 (page fault), error code 0x2, at RIP 0x";
            // A write (error code 2, page not present) into the guard page at 1 MiB.
            if b.find(fault).is_empty() || b.find("CR2 0x100").is_empty() {
                return Err(format!("no '{fault}... CR2 0x100...' line (a write to the guard page)"));
            }
            let want = "stack overflow: the app used more than the 256 KiB boot stack";
            if b.find(want).is_empty() { Err(format!("no '{want}' line")) } else { Ok(()) }
        }),
    );
    let mut no_rng = Vm::new(&img("hello"), false);
    no_rng.cpu = Some("qemu64");
    add(
        "a CPU without RDRAND/RDSEED: refuses to start, one line",
        Launch::Qemu(no_rng),
        30,
        Box::new(|b| {
            expect_status(b, 1)?;
            let want = "hello: cannot start: the CPU has neither RDRAND nor RDSEED";
            if b.lines.len() == 1 && b.lines[0].1.starts_with(want) {
                Ok(())
            } else {
                Err(format!("expected only: {want}..."))
            }
        }),
    );
    // The clock without KVM's pvclock: the TSC at a frequency from CPUID or the PIT, with the
    // TSC-deadline timer. And wall-clock time from the CMOS clock, against the host's.
    let mut no_pvclock = Vm::new(&conf, kvm).args(["--check", "clock"]);
    if kvm {
        no_pvclock.cpu = Some("host,-arch-capabilities,-kvmclock");
    }
    for (name, vm) in [
        ("clock: kvm-pvclock (or TCG)", Vm::new(&conf, kvm).args(["--check", "clock"])),
        ("clock: TSC without pvclock", no_pvclock),
    ] {
        add(
            name,
            Launch::Qemu(vm),
            30,
            Box::new(|b| {
                expect_status(b, 0)?;
                let line = b.find("clock: unix ").first().map(|(_, l)| l.clone()).ok_or("no clock line")?;
                let nums: Vec<u64> = line
                    .split("clock: unix ")
                    .nth(1)
                    .unwrap_or("")
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|w| w.parse().ok())
                    .collect();
                let [unix, mono, wall] = nums[..] else { return Err(format!("unreadable: {line}")) };
                let host = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| e.to_string())?
                    .as_secs();
                if unix.abs_diff(host) > 10 {
                    return Err(format!(
                        "guest wall clock {unix} is {}s off the host's",
                        unix.abs_diff(host)
                    ));
                }
                if !(200..300).contains(&mono) || !(200..300).contains(&wall) {
                    return Err(format!("a 200 ms sleep took {mono} ms monotonic, {wall} ms wall"));
                }
                Ok(())
            }),
        );
    }
    let conformance = |b: &Boot| {
        expect_status(b, 0)?;
        for want in ["block: check_rw passed on 2048 sectors", "net: check_pair passed"] {
            if b.find(want).is_empty() {
                return Err(format!("no '{want}'"));
            }
        }
        Ok(())
    };
    for (name, q35, modern) in [
        ("conformance, virtio-mmio (legacy, microvm)", false, false),
        ("conformance, virtio-mmio (modern, microvm)", false, true),
        ("conformance, virtio-pci (q35)", true, false),
    ] {
        let mut vm = Vm::new(&conf, kvm).args(["--check", "block,net"]);
        vm.q35 = q35;
        vm.mmio_modern = modern;
        vm.net = Some(NetSpec::HubPair);
        vm.block = Some(disk.to_path_buf());
        add(name, Launch::Qemu(vm), 60, Box::new(conformance));
    }
    add(
        "cargo xtask run hello-key --target virtio -- --hello \"Bonjour tout le monde\": a quoted word",
        xtask_run("hello-key", &[], &["--hello", "Bonjour tout le monde"]),
        60,
        Box::new(|b| {
            expect_status(b, 0)?;
            let n = b.find("INFO  hello_key: Bonjour tout le monde").len();
            if n == 4 { Ok(()) } else { Err(format!("{n} greetings, expected 4")) }
        }),
    );
    add(
        "cargo xtask run kv_ro --target virtio: the compiled-in store holds what it should",
        xtask_run("kv_ro", &[], &[]),
        60,
        Box::new(|b| {
            expect_status(b, 0)?;
            let n = b.find(" bytes, as expected").len();
            if n == 3 { Ok(()) } else { Err(format!("{n} keys as expected, want 3")) }
        }),
    );
    add(
        "kv_ro --kv DIR on bare metal: one line, status 1",
        xtask_run("kv_ro", &[], &["--kv", "/tmp"]),
        60,
        Box::new(|b| {
            expect_status(b, 1)?;
            let want = "kv_ro: --kv /tmp: bare metal has no directories to read";
            if b.lines.len() == 1 && b.lines[0].1.starts_with(want) {
                Ok(())
            } else {
                Err(format!("expected only: {want}..."))
            }
        }),
    );
    // A host port already taken: QEMU would exit 1, which reads as the guest's status 0.
    if let Ok(taken) = std::net::TcpListener::bind("127.0.0.1:0")
        && let Ok(addr) = taken.local_addr()
    {
        let port = addr.port();
        add(
            "echo with its forwarded host port taken: one line, status 1",
            xtask_run("echo", &["--forward", &format!("{port}:7")], &[]),
            60,
            Box::new(move |b| {
                let _held = &taken;
                expect_status(b, 1)?;
                let want = format!("cannot forward 127.0.0.1:{port} to the guest's port 7: ");
                if b.stderr.lines().any(|l| l.starts_with(&want)) && b.lines.is_empty() {
                    Ok(())
                } else {
                    Err(format!("expected only '{want}...' on stderr: {}", b.stderr))
                }
            }),
        );
    }
    add(
        "cargo xtask run clock --target virtio -- --count 3: wall and monotonic time",
        xtask_run("clock", &[], &["--count", "3"]),
        60,
        Box::new(|b| check_clock(b, 3)),
    );
    let good = images.good.clone();
    add(
        "cargo xtask run block --target virtio -- --block FILE: every sector verified, and on the disk",
        xtask_run("block", &[], &["--block", &images.good.display().to_string()]),
        120,
        Box::new(move |b| {
            expect_status(b, 0)?;
            for want in ["block device: 512 sectors of 512 bytes (256 KiB)", "checked 512 sectors: 0 errors"]
            {
                if b.find(want).is_empty() {
                    return Err(format!("no '{want}'"));
                }
            }
            // The pattern really reached the file: sector 5 starts with its own index.
            let bytes = std::fs::read(&good).map_err(|e| e.to_string())?;
            if bytes.get(5 * 512..5 * 512 + 8) != Some(&5u64.to_le_bytes()[..]) {
                return Err("sector 5 of the image does not start with its index".into());
            }
            Ok(())
        }),
    );
    add(
        "block on an empty image: one error line, status 1",
        xtask_run("block", &[], &["--block", &images.empty.display().to_string()]),
        60,
        Box::new(|b| {
            expect_status(b, 1)?;
            if b.find("error: the block device has no sectors").len() == 1 {
                Ok(())
            } else {
                Err("no error line".into())
            }
        }),
    );
    let ragged = images.ragged.display().to_string();
    add(
        "block on a ragged image: xtask refuses it in one line, status 2",
        xtask_run("block", &[], &["--block", &ragged]),
        60,
        Box::new(move |b| {
            expect_status(b, 2)?;
            let want = format!("--block {ragged}: 1000 bytes is not a whole number of 512-byte sectors");
            if b.stderr.lines().any(|l| l.starts_with(&want)) {
                Ok(())
            } else {
                Err(format!("no '{want}...' on stderr: {}", b.stderr))
            }
        }),
    );
    add(
        "block without a disk: one line saying how to attach one, status 1",
        xtask_run("block", &[], &[]),
        60,
        Box::new(|b| {
            expect_status(b, 1)?;
            let want = "block: no virtio-blk disk: attach a disk image";
            if b.lines.len() == 1 && b.lines[0].1.starts_with(want) {
                Ok(())
            } else {
                Err(format!("expected only: {want}..."))
            }
        }),
    );
    cases
}

/// Boot the apps and the conformance image in QEMU (part of `cargo xtask test`).
pub fn test(root: &Path, filter: Option<&str>) -> Outcome {
    println!("==> clippy -D warnings for {NO_STD_TARGET}");
    exec(
        cargo()
            .args([
                "clippy",
                "--quiet",
                "--target",
                NO_STD_TARGET,
                "-p",
                "morgana-virtio",
                "--lib",
                "--examples",
            ])
            .args(["--", "-D", "warnings"]),
    )?;
    let all_apps = virtio_apps(root)?;
    let app_list: Vec<&str> = all_apps.iter().map(String::as_str).collect();
    let mut c = cargo();
    c.args(["clippy", "--quiet", "--target", NO_STD_TARGET, "--bins"]);
    for a in &app_list {
        c.args(["-p", a]);
    }
    exec(c.args(["--", "-D", "warnings"]))?;
    println!("==> QEMU boots ({NO_STD_TARGET} images)");
    check_qemu()?;
    build_images(root, &app_list, true)?;
    let kvm = kvm_usable();
    if !kvm {
        println!("/dev/kvm not usable: QEMU tests run under TCG (slower)");
    }
    let tmp =
        |tag: &str| std::env::temp_dir().join(format!("morgana-virtio-{tag}-{}.img", std::process::id()));
    let disk = tmp("test");
    let images = BlockImages { good: tmp("block"), empty: tmp("empty"), ragged: tmp("ragged") };
    let _cleanup = [&disk, &images.good, &images.empty, &images.ragged].map(|p| RemoveOnDrop(p.clone()));
    for (file, len) in
        [(&disk, 1 << 20), (&images.good, 256 << 10), (&images.empty, 0), (&images.ragged, 1000)]
    {
        std::fs::File::create(file)
            .and_then(|f| f.set_len(len))
            .map_err(|e| Failure::new(format!("cannot create {}: {e}", file.display())))?;
    }
    let wanted = |name: &str| filter.is_none_or(|f| name.contains(f));
    let all: Vec<Case> = cases(root, kvm, &disk, &images).into_iter().filter(|c| wanted(&c.name)).collect();
    let started = Instant::now();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for case in &all {
        let t = Instant::now();
        let result = boot_with(&case.launch, case.timeout)
            .and_then(|b| (case.check)(&b).map_err(|e| format!("{e}\n{}", b.text())));
        match result {
            Ok(()) => {
                passed += 1;
                println!("  ok    {} ({:.2}s)", case.name, t.elapsed().as_secs_f64());
            }
            Err(e) => {
                failed += 1;
                println!("  FAIL  {}: {e}", case.name);
            }
        }
    }
    for (name, test) in live::tests(root, kvm).into_iter().filter(|(name, _)| wanted(name)) {
        let t = Instant::now();
        match test() {
            Ok(true) => {
                passed += 1;
                println!("  ok    {name} ({:.2}s)", t.elapsed().as_secs_f64());
            }
            Ok(false) => {
                skipped += 1;
                println!("  skip  {name} (MORGANA_SKIP_ROOT_TESTS=1)");
            }
            Err(e) => {
                failed += 1;
                println!("  FAIL  {name}: {e}");
            }
        }
    }
    println!(
        "qemu: {passed} passed, {failed} failed, {skipped} skipped ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    if let Some(f) = filter
        && passed + failed + skipped == 0
    {
        return Err(Failure::usage(format!("no QEMU test name contains '{f}'")));
    }
    if failed > 0 { Err(Failure::new("xtask test: QEMU boots failed")) } else { Ok(()) }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `cargo xtask bench boot`.
pub fn bench(root: &Path, what: &str, runs: usize) -> Outcome {
    if what != "boot" {
        return Err(Failure::usage(format!("unknown benchmark '{what}'; valid: boot")));
    }
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
    let hello = image_path(root, "hello", false);
    let quick = ["--count", "4", "--interval-ms", "0"];
    let timeout = Duration::from_secs(30);
    let (mut t_floor, mut t_hello) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for (image, args, out) in [(&floor, &[][..], &mut t_floor), (&hello, &quick[..], &mut t_hello)] {
            let b = boot(&Vm::new(image, kvm).args(args.iter().copied()), timeout).map_err(Failure::new)?;
            expect_status(&b, 0).map_err(|e| Failure::new(format!("{}: {e}", image.display())))?;
            out.push(b.elapsed.as_secs_f64() * 1000.0);
        }
    }
    let (f, h) = (median(&mut t_floor), median(&mut t_hello));
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
        median(&mut guest)
    );
    println!("smallest --mem each app runs in (microvm, {accel}; servers must answer a request):");
    let disk = std::env::temp_dir().join(format!("morgana-virtio-bench-{}.img", std::process::id()));
    let _cleanup = RemoveOnDrop(disk.clone());
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
            "ping" | "http-fetch" => {
                println!("  {app:<12} not measured (it needs a peer: see cargo xtask test)");
                continue;
            }
            _ => &[],
        };
        let image = image_path(root, app, false);
        let server = matches!(*app, "echo" | "www");
        let fits = |mib: u64| {
            let mut vm = Vm::new(&image, kvm).args(args.iter().copied());
            vm.mem = format!("{mib}M");
            if *app == "block" {
                vm.block = Some(disk.clone());
            }
            if *app == "dns" {
                vm.net = Some(NetSpec::User(Vec::new()));
            }
            if server {
                let Ok(port) = live::free_port() else { return false };
                let guest = if *app == "echo" { 7 } else { 443 };
                vm.net = Some(NetSpec::User(vec![(port, guest)]));
                return live::serves(root, app, vm.command(), port, Duration::from_secs(60));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_words_with_spaces() {
        assert_eq!(
            cmdline(&["--hello".into(), "a b".into(), "--n".into(), "1".into()]),
            "--hello \"a b\" --n 1"
        );
    }

    #[test]
    fn guest_timestamps_parse() {
        assert_eq!(guest_time("[    1.250000] INFO  hello: hello"), Some(1.25));
        assert_eq!(guest_time("hello"), None);
    }

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

    #[test]
    fn floor_kernel_is_a_pvh_elf() {
        let k = floor_kernel();
        assert_eq!(&k[..4], b"\x7fELF");
        let note = k.windows(4).position(|w| w == b"Xen\0").unwrap();
        let entry = u64::from_le_bytes(k[note + 4..note + 12].try_into().unwrap());
        assert_eq!(entry, u64::from_le_bytes(k[24..32].try_into().unwrap()));
        assert_eq!(&k[(entry - 0x10_0000) as usize..][..4], &[0xb0, 0x00, 0xe6, 0xf4]);
    }

    #[test]
    fn qemu_status_maps_back() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(guest_status(ExitStatus::from_raw(1 << 8)), Ok(0));
        assert_eq!(guest_status(ExitStatus::from_raw(203 << 8)), Ok(101));
        assert!(guest_status(ExitStatus::from_raw(0)).is_err());
    }
}
