//! # morgana-qemu: booting Morgana's bare-metal images in QEMU
//!
//! What `cargo xtask run --target virtio`, `cargo xtask bench boot` and the QEMU test suite
//! (`impls/virtio-tests`) share: the QEMU command line of a launch ([`Vm`]), the guest's exit
//! status ([`guest_status`]), whether KVM is usable, and a boot with its console captured line
//! by line with the time the host read each ([`Boot`]).
//!
//! A crash's backtrace (`backtrace: #N 0xADDR` lines, after a panic or a CPU exception) is
//! resolved to `FUNCTION at FILE:LINE` from the image's unstripped copy, `IMAGE.debug`
//! ([`debug_path`]), and printed under each raw line: in a [`boot`]'s lines, and by [`relay`],
//! which `cargo xtask run` passes the console through.
//!
//! Exit status: the kernel writes its status `s` to QEMU's `isa-debug-exit` port, and QEMU
//! exits with `(s << 1) | 1`; [`guest_status`] turns that back into `s` (0 ok, 1 app error or
//! failed start, 2 bad argument, 3 CPU exception, 101 panic). QEMU exiting 0 means the guest
//! reset without reporting a status (a triple fault).
//!
//! ```no_run
//! use std::time::Duration;
//! use morgana_qemu::{Vm, kvm_usable};
//!
//! let vm = Vm::new("target/x86_64-unknown-none/release-small/hello".as_ref(), kvm_usable())
//!     .args(["--count", "1"]);
//! let boot = morgana_qemu::boot(&vm, Duration::from_secs(30)).unwrap();
//! boot.expect_status(0).unwrap();
//! assert_eq!(boot.find("hello").len(), 1);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod symbolize;

pub use symbolize::{Address, BACKTRACE, Symbolizer, debug_path};

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";
/// Firmware for `q35`: qboot, which boots a PVH kernel in milliseconds (SeaBIOS takes seconds).
pub const QBOOT: &str = "/usr/share/qemu/bios-microvm.bin";

/// How a network interface is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetSpec {
    /// QEMU's user-mode stack, with TCP forwards `(host, guest)` from 127.0.0.1.
    User(Vec<(u16, u16)>),
    /// An existing TAP interface.
    Tap(String),
    /// Two NICs on one QEMU hub (the conformance image's `net` check).
    HubPair,
}

/// A disk attached as a virtio-blk device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disk {
    /// A raw image file.
    File(PathBuf),
    /// A drive URL QEMU opens itself, such as an NBD export (`nbd://HOST:PORT/NAME`,
    /// `nbd+unix:///NAME?socket=PATH`), QEMU being the NBD client.
    Url(String),
}

impl From<PathBuf> for Disk {
    fn from(file: PathBuf) -> Self {
        Self::File(file)
    }
}

impl Disk {
    /// The `file=` value of QEMU's `-drive`, its commas doubled (QEMU's option syntax).
    fn drive_file(&self) -> String {
        let file = match self {
            Self::File(path) => path.display().to_string(),
            Self::Url(url) => url.clone(),
        };
        file.replace(',', ",,")
    }
}

/// A QEMU launch of one image.
#[derive(Debug, Clone)]
pub struct Vm {
    /// The image (a PVH ELF), given to `-kernel`.
    pub image: PathBuf,
    /// KVM (`-accel kvm`) or TCG.
    pub kvm: bool,
    /// `q35` with qboot (virtio-pci) instead of `microvm` (virtio-mmio).
    pub q35: bool,
    /// Guest memory, as `-m` takes it (`64M`).
    pub mem: String,
    /// The network interface, if any.
    pub net: Option<NetSpec>,
    /// The disk attached as a virtio-blk device, if any.
    pub block: Option<Disk>,
    /// microvm: modern virtio-mmio (version 2) instead of QEMU 7.2's default legacy.
    pub mmio_modern: bool,
    /// A CPU model instead of the accelerator's default.
    pub cpu: Option<&'static str>,
    /// The app's arguments: the kernel command line.
    pub append: Vec<String>,
}

impl Vm {
    /// `image` on `microvm` with 64 MiB, no devices, no arguments.
    pub fn new(image: &Path, kvm: bool) -> Self {
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

    /// With these app arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.append = args.into_iter().map(Into::into).collect();
        self
    }

    /// The QEMU command (the console on stdout, the status through `isa-debug-exit`).
    pub fn command(&self) -> Command {
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
        if let Some(disk) = &self.block {
            // The default cache mode (writeback) shows the guest a write cache, so its
            // VIRTIO_BLK_T_FLUSH reaches the file (fdatasync) or the NBD server (NBD_CMD_FLUSH).
            c.arg("-drive").arg(format!("file={},if=none,id=blk0,format=raw", disk.drive_file()));
            c.args(["-device", &format!("{blk_dev},drive=blk0")]);
        }
        c
    }
}

/// Join app arguments into a kernel command line; words with spaces are double-quoted.
pub fn cmdline(args: &[String]) -> String {
    let words: Vec<String> = args
        .iter()
        .map(|a| if a.contains(char::is_whitespace) { format!("\"{a}\"") } else { a.clone() })
        .collect();
    words.join(" ")
}

/// The kernel's status from QEMU's exit status (see the crate documentation).
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

/// Whether QEMU runs here; else one line saying how to install it.
pub fn check_qemu() -> Result<(), String> {
    match Command::new(QEMU).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(s) if s.success() => Ok(()),
        _ => Err(format!("{QEMU} not found: install QEMU with `sudo apt-get install qemu-system-x86`")),
    }
}

/// What a boot printed and how it ended.
#[derive(Debug)]
pub struct Boot {
    /// Lines (without `\r`) and when the host read each, from launch.
    pub lines: Vec<(Duration, String)>,
    /// Guest status, or why there is none.
    pub status: Result<u8, String>,
    /// Launch to exit.
    pub elapsed: Duration,
    /// What QEMU (or the launcher) printed on stderr.
    pub stderr: String,
}

impl Boot {
    /// The console, one indented line each (for a failure's message).
    pub fn text(&self) -> String {
        self.lines.iter().map(|(_, l)| format!("  | {l}\n")).collect()
    }

    /// The lines containing `needle`.
    pub fn find(&self, needle: &str) -> Vec<&(Duration, String)> {
        self.lines.iter().filter(|(_, l)| l.contains(needle)).collect()
    }

    /// `Ok` if the guest exited with `want`; else what it did.
    pub fn expect_status(&self, want: u8) -> Result<(), String> {
        match &self.status {
            Ok(s) if *s == want => Ok(()),
            Ok(s) => Err(format!("exit status {s}, expected {want}")),
            Err(e) => Err(e.clone()),
        }
    }
}

/// How a captured command's exit status is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// QEMU's, decoded by [`guest_status`].
    Qemu,
    /// A launcher that passes the guest's status through as its own (`cargo xtask run`).
    Plain,
}

/// Boot `vm`, capturing its console, killing it after `timeout`; a backtrace's lines are
/// followed by what their addresses resolve to ([`Symbolizer`]).
pub fn boot(vm: &Vm, timeout: Duration) -> Result<Boot, String> {
    let mut boot = capture(vm.command(), Exit::Qemu, timeout)?;
    let symbols = Symbolizer::new(&vm.image);
    boot.lines = boot
        .lines
        .into_iter()
        .flat_map(|(t, line)| {
            let under = symbols.annotate(&line);
            std::iter::once((t, line)).chain(under.into_iter().map(move |u| (t, u)))
        })
        .collect();
    Ok(boot)
}

/// Copy a guest's console from `from` to `to` as it comes, and after each backtrace line what
/// its address resolves to (see [`Symbolizer`]).
pub fn relay(mut from: impl Read, mut to: impl Write, symbols: &Symbolizer) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    let mut line = Vec::new();
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return to.flush();
        }
        // Through at once, up to each line's end, the resolved addresses after it.
        let mut rest = &buf[..n];
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            to.write_all(&rest[..=end])?;
            line.extend_from_slice(&rest[..end]);
            let text = String::from_utf8_lossy(&line);
            for under in symbols.annotate(text.trim_end_matches('\r')) {
                // As the kernel ends its lines, for a terminal in raw mode.
                write!(to, "{under}\r\n")?;
            }
            line.clear();
            rest = &rest[end + 1..];
        }
        to.write_all(rest)?;
        line.extend_from_slice(rest);
        to.flush()?;
    }
}

/// Run `cmd` (QEMU, or a launcher of it), capturing its stdout line by line, killing it after
/// `timeout`.
pub fn capture(mut cmd: Command, exit: Exit, timeout: Duration) -> Result<Boot, String> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
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
    let status = match (status, exit) {
        (Some(s), Exit::Qemu) => guest_status(s).map_err(|e| format!("{e}; QEMU said: {}", stderr.trim())),
        (Some(s), Exit::Plain) => s
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .ok_or_else(|| format!("the launcher failed: {}", stderr.trim())),
        (None, _) => Err(format!("timed out after {timeout:?}")),
    };
    Ok(Boot { lines, status, elapsed, stderr })
}

/// Guest timestamp of a log line: `[    1.000123] INFO ...` in seconds.
pub fn guest_time(line: &str) -> Option<f64> {
    let inner = line.strip_prefix('[')?.split(']').next()?;
    inner.trim().parse().ok()
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
    fn qemu_status_maps_back() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(guest_status(ExitStatus::from_raw(1 << 8)), Ok(0));
        assert_eq!(guest_status(ExitStatus::from_raw(203 << 8)), Ok(101));
        assert!(guest_status(ExitStatus::from_raw(0)).is_err());
    }

    #[test]
    fn a_launch_names_its_devices() {
        let mut vm = Vm::new(Path::new("img"), false).args(["--port", "7"]);
        vm.net = Some(NetSpec::User(vec![(8007, 7)]));
        let args: Vec<String> = vm.command().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let has = |w: &str| args.iter().any(|a| a == w);
        assert!(has("tcg") && has("max") && has("--port 7"), "{args:?}");
        assert!(has("user,id=net0,hostfwd=tcp:127.0.0.1:8007-:7"), "{args:?}");
        vm.kvm = true;
        let args: Vec<String> = vm.command().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(args.iter().any(|a| a == "host,-arch-capabilities"), "nested KVM needs it: {args:?}");
    }

    #[test]
    fn a_disk_is_a_file_or_a_url_with_its_commas_doubled() {
        let drive = |disk: Disk| {
            let mut vm = Vm::new(Path::new("img"), false);
            vm.block = Some(disk);
            let args: Vec<String> =
                vm.command().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
            args.into_iter().find(|a| a.starts_with("file=")).unwrap_or_default()
        };
        assert_eq!(drive(PathBuf::from("a,b.img").into()), "file=a,,b.img,if=none,id=blk0,format=raw");
        assert_eq!(
            drive(Disk::Url("nbd+unix:///notes?socket=/tmp/s".into())),
            "file=nbd+unix:///notes?socket=/tmp/s,if=none,id=blk0,format=raw"
        );
    }
}
