//! The kernel command line: app arguments and the devices a hypervisor announces on it.
//!
//! QEMU `microvm` appends one `virtio_mmio.device=SIZE@BASE:IRQ` word per virtio-mmio device (the
//! Linux syntax); every other word belongs to the app and goes to the shared argument parser.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use morgana_args::split_cmdline;

/// A virtio-mmio device announced on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioDevice {
    /// Physical base address of its register window.
    pub base: u64,
    /// Size of the register window in bytes.
    pub size: u64,
    /// Interrupt line (a GSI of the IOAPIC).
    pub irq: u32,
}

/// A command line split into the app's words and the devices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline<'a> {
    /// Words for the app's argument parser (borrowed from the line unless quotes were removed).
    pub args: Vec<Cow<'a, str>>,
    /// virtio-mmio devices, in command-line order.
    pub mmio: Vec<MmioDevice>,
}

/// Why a device word was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDevice(pub String);

impl core::fmt::Display for BadDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: expected virtio_mmio.device=SIZE@BASE:IRQ (like 512@0xfeb00e00:12)", self.0)
    }
}

impl<'a> Cmdline<'a> {
    /// Split `line` into app words and device announcements.
    pub fn parse(line: &'a str) -> Result<Self, BadDevice> {
        let mut out = Self::default();
        if line.contains('"') || !line.is_ascii() {
            for word in split_cmdline(line) {
                out.push(Cow::Owned(word))?;
            }
        } else {
            // Without quotes the words are slices of the line: no copy, and no per-character
            // work (every instruction counts at boot under an emulating hypervisor).
            for word in line.split_ascii_whitespace() {
                out.push(Cow::Borrowed(word))?;
            }
        }
        Ok(out)
    }

    fn push(&mut self, word: Cow<'a, str>) -> Result<(), BadDevice> {
        match word.strip_prefix("virtio_mmio.device=") {
            Some(spec) => self.mmio.push(parse_mmio(spec).ok_or_else(|| BadDevice(String::from(&*word)))?),
            None => self.args.push(word),
        }
        Ok(())
    }
}

/// `512@0xfeb00e00:12`, `4K@0xd0000000:5` (sizes take K/M/G suffixes, numbers may be hex).
fn parse_mmio(spec: &str) -> Option<MmioDevice> {
    let (size, rest) = spec.split_once('@')?;
    let (base, irq) = rest.split_once(':')?;
    // Linux also accepts `:IRQ:ID`; the platform ID is of no use here.
    let irq = irq.split(':').next()?;
    Some(MmioDevice {
        base: number(base)?,
        size: size_with_suffix(size)?,
        irq: u32::try_from(number(irq)?).ok()?,
    })
}

fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn size_with_suffix(s: &str) -> Option<u64> {
    let (digits, shift) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 10),
        b'm' | b'M' => (&s[..s.len() - 1], 20),
        b'g' | b'G' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    number(digits)?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_taken_out_of_the_app_words() {
        let c = Cmdline::parse(
            "--count 4 virtio_mmio.device=512@0xfeb00e00:12 --hello \"a b\" virtio_mmio.device=4K@0xfeb00c00:11",
        )
        .unwrap();
        assert_eq!(c.args, ["--count", "4", "--hello", "a b"]);
        assert_eq!(
            c.mmio,
            [
                MmioDevice { base: 0xfeb0_0e00, size: 512, irq: 12 },
                MmioDevice { base: 0xfeb0_0c00, size: 4096, irq: 11 }
            ]
        );
        let c = Cmdline::parse("  --count\t4  virtio_mmio.device=512@0xfeb00e00:12 --log=debug ").unwrap();
        assert_eq!(c.args, ["--count", "4", "--log=debug"]);
        assert!(c.args.iter().all(|a| matches!(a, Cow::Borrowed(_))), "no quotes: borrowed");
        assert_eq!(c.mmio.len(), 1);
    }

    #[test]
    fn malformed_devices_are_refused() {
        for bad in ["virtio_mmio.device=512", "virtio_mmio.device=x@0x1:2", "virtio_mmio.device=512@0x1:z"] {
            let e = Cmdline::parse(bad).unwrap_err();
            assert!(e.to_string().contains("expected virtio_mmio.device=SIZE@BASE:IRQ"), "{e}");
        }
        assert_eq!(Cmdline::parse("").unwrap(), Cmdline::default());
        assert_eq!(Cmdline::parse("virtio_mmio.device=1K@0x10:5:3").unwrap().mmio[0].irq, 5);
    }
}
