//! # morgana-virtio: the bare-metal x86_64 target
//!
//! Turns a Morgana app into a kernel image that a hypervisor boots directly: QEMU (`microvm` or
//! `q35`) loads it through its PVH note (as Firecracker and cloud-hypervisor could; only QEMU is
//! tested), and it runs with no operating system under it, like Mirage's Solo5 targets. The app's
//! source does not change: `Virtio` implements [`morgana_target::Target`], and `morgana-app`
//! picks it for a bare-metal build, so an app's one `main.rs` body runs here as it does on a host.
//!
//! What the kernel does, in order: PVH entry (TSC read, identity page tables for the first
//! 4 GiB with 2 MiB pages, long mode), IDT (CPU exceptions print vector, error code and RIP and
//! exit 3), heap over the largest free RAM in the PVH memory map, kernel command line split into
//! `virtio_mmio.device=` announcements and the app's arguments (parsed by the shared skeleton,
//! [`morgana_target::run`], against what this target reads for the app's devices: `specs`), entropy from RDRAND/RDSEED (the
//! kernel refuses to start without), a clock (KVM pvclock, else the TSC at a frequency from
//! CPUID or the PIT), the local APIC (TSC-deadline timer, else a calibrated one-shot) and the
//! IOAPIC, then the shared [`morgana_rt::Executor`] with `HaltPark`, which halts until an
//! interrupt or the next deadline. Interrupt handlers only record which line fired; the park
//! path wakes the tasks of the devices on it.
//!
//! Devices (probed when the app first asks for one): `VirtioNet`
//! ([`morgana::Net`]) and `VirtioBlock` ([`morgana::Block`]), the drivers of
//! `morgana-virtio-drivers` (tested on the host against a fake device) on this kernel's
//! `KernelHal`, its interrupt lines (`IrqLine`) and virtio-drivers' transports: virtio-mmio
//! (from the command line) and virtio-pci (bus 0 through ports 0xcf8/0xcfc; BARs the firmware
//! left unassigned are placed). What a device lacks (a disk without a flush command) is said
//! once, at start. A missing device is a [`StartError::Device`]: one line, exit status 1. A
//! store or file argument (`--kv DIR`) is refused the same way: there are no directories here.
//!
//! Network apps take the target's default stack, `stack`: `morgana-tcpip` on the first NIC,
//! configured by [`morgana_tcpip::ARGS`] (DHCP when no address is given), seeded from RDRAND,
//! its runner spawned.
//!
//! Feature `getrandom`: answer getrandom 0.2's custom hook from RDRAND, for crates that draw
//! their randomness there (rustls-rustcrypto, in `www`).
//!
//! Exit status through QEMU's `isa-debug-exit` (port 0xf4): the kernel writes `s` and QEMU exits
//! with `(s << 1) | 1`; `cargo xtask run` turns that back into `s`. `s` is 0 for success, 1 for an
//! app error or a failed start, 2 for a bad argument, 3 for a CPU exception, 101 for a panic.
//! An allocation the heap cannot give is a panic reported in one line with the heap's size and
//! use (`out of memory: a 65536-byte allocation failed with 6.5 of 6.6 MiB in use`).
//! QEMU exiting 0 means the guest reset without reporting (a triple fault). A panic and a CPU
//! exception are followed by a backtrace, `backtrace: #N 0xADDR` lines from a walk of the frame
//! pointers (images are built with them), which `cargo xtask run` and the QEMU suite resolve to
//! functions and lines from the image's unstripped copy, `APP.debug`.
//!
//! Build with `cargo xtask build APP --target virtio`. An image needs two flags for its target,
//! which `cargo xtask` passes and a crate of your own puts in its `.cargo/config.toml`:
//!
//! ```toml
//! [target.x86_64-unknown-none]
//! rustflags = ["-C", "relocation-model=static", "-C", "force-frame-pointers=yes", "-C", "link-arg=-Tmorgana-virtio.ld"]
//! ```
//!
//! Static code, linked by this crate's `link.ld` at 1 MiB: its build script puts the script on
//! the linker's search path as `morgana-virtio.ld` (no path into this crate's source), and stops
//! a bare-metal build that lacks either flag with one line saying so. On the host this crate is
//! only its pure logic (command line, memory map, clock arithmetic, PCI layout), unit-tested there.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod cmdline;
#[cfg(any(test, target_os = "none"))]
mod logline;
pub mod memmap;
pub mod pci;
pub mod specs;
pub mod time;

#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod devices;
#[cfg(target_os = "none")]
mod irq;
#[cfg(target_os = "none")]
mod rng;
#[cfg(target_os = "none")]
mod run;
#[cfg(target_os = "none")]
mod stack;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod sys;

#[cfg(target_os = "none")]
pub use devices::{Devices, VirtioBlock, VirtioNet, VirtioRx, VirtioTx};
#[cfg(target_os = "none")]
pub use irq::{HaltPark, IrqLine, Irqs, Timer};
pub use morgana_target::StartError;
#[cfg(target_os = "none")]
pub use rng::{HwEntropy, HwRng};
#[cfg(target_os = "none")]
pub use run::{
    EXIT_EXCEPTION, EXIT_FAILURE, EXIT_PANIC, EXIT_SUCCESS, EXIT_USAGE, Virtio, VirtioClock, VirtioPlatform,
    run,
};
#[cfg(target_os = "none")]
pub use stack::{VirtioStack, net, stack, tcpip_config};
#[cfg(target_os = "none")]
pub use sys::virtio::{AnyTransport, KernelHal};
#[cfg(target_os = "none")]
pub use time::KernelTime;

/// Read an unmapped address: a page fault (vector 14), which the kernel reports (vector, error
/// code, RIP, faulting address) before exiting with status 3. For tests of the exception path.
#[cfg(target_os = "none")]
pub fn page_fault() {
    sys::cpu::read_unmapped();
}

/// Recurse until the boot stack overflows: the write to the guard page below it faults, and
/// the kernel reports a stack overflow before exiting with status 3. For tests of the guard.
#[cfg(target_os = "none")]
pub fn stack_overflow() -> u64 {
    fn deeper(n: u64) -> u64 {
        let frame = core::hint::black_box([n; 64]);
        if core::hint::black_box(n < u64::MAX) { deeper(n + 1).wrapping_add(frame[1]) } else { frame[0] }
    }
    deeper(0)
}

/// Make `$main` (a `fn() -> !` that calls `run`) the kernel's entry,
/// and record the crate's name for messages.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        // No `allow(unsafe_code)` here: the lint does not fire in an external macro's expansion,
        // and an app may `forbid` it (which an `allow` would contradict).
        #[doc(hidden)]
        #[unsafe(export_name = "morgana_virtio_main")]
        pub fn __morgana_virtio_main() -> ! {
            $main()
        }

        #[doc(hidden)]
        #[unsafe(export_name = "morgana_virtio_program")]
        pub static __MORGANA_VIRTIO_PROGRAM: &str = env!("CARGO_PKG_NAME");
    };
}
