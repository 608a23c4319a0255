//! Entropy from the CPU: RDRAND, or RDSEED where only it exists.

use core::sync::atomic::{AtomicU8, Ordering};

use morgana::rand_core::{CryptoRng, RngCore};
use morgana_rt::Entropy;

use crate::sys::cpu;

/// What [`HwEntropy::detect`] found: 0 not yet, 1 RDRAND, 2 RDSEED (for getrandom's hook, which
/// has no handle to carry it).
static DETECTED: AtomicU8 = AtomicU8::new(0);

/// Which instruction supplies entropy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Rdrand,
    Rdseed,
}

/// The CPU's random number generator, as a [`morgana_rt::Entropy`].
#[derive(Debug, Clone, Copy)]
pub struct HwEntropy {
    source: Source,
}

impl HwEntropy {
    /// Find RDRAND or RDSEED; `Err` is the one-line reason the kernel refuses to start.
    pub fn detect() -> Result<Self, &'static str> {
        if cpu::cpuid(1, 0)[2] & (1 << 30) != 0 {
            DETECTED.store(1, Ordering::Relaxed);
            return Ok(Self { source: Source::Rdrand });
        }
        if cpu::cpuid(0, 0)[0] >= 7 && cpu::cpuid(7, 0)[1] & (1 << 18) != 0 {
            DETECTED.store(2, Ordering::Relaxed);
            return Ok(Self { source: Source::Rdseed });
        }
        Err(
            "the CPU has neither RDRAND nor RDSEED, so there is no entropy: run QEMU with -cpu host (KVM) or -cpu max (TCG)",
        )
    }

    /// What the boot-time [`detect`](Self::detect) found, without asking the CPU again.
    pub fn detected() -> Option<Self> {
        match DETECTED.load(Ordering::Relaxed) {
            1 => Some(Self { source: Source::Rdrand }),
            2 => Some(Self { source: Source::Rdseed }),
            _ => None,
        }
    }
}

impl Entropy for HwEntropy {
    type Rng = HwRng;
    fn rng(&self) -> HwRng {
        HwRng { source: self.source }
    }
}

/// A handle onto the CPU's generator; every value comes straight from the hardware.
#[derive(Debug, Clone, Copy)]
pub struct HwRng {
    source: Source,
}

impl HwRng {
    /// Draws before giving up. Intel's guidance: RDRAND failing ten times in a row means the
    /// generator is broken. RDSEED may need more patience while the conditioner refills.
    fn tries(&self) -> u32 {
        if self.source == Source::Rdrand { 10 } else { 10_000 }
    }

    /// One 64-bit value, `None` if the hardware failed `tries()` times in a row.
    pub fn try_next_u64(&mut self) -> Option<u64> {
        for _ in 0..self.tries() {
            let v = match self.source {
                Source::Rdrand => cpu::rdrand64(),
                Source::Rdseed => cpu::rdseed64(),
            };
            if v.is_some() {
                return v;
            }
            core::hint::spin_loop();
        }
        None
    }

    /// Fill `dst`; `false` (and `dst` partly filled) if the hardware failed.
    pub fn try_fill(&mut self, dst: &mut [u8]) -> bool {
        for chunk in dst.chunks_mut(8) {
            let Some(v) = self.try_next_u64() else { return false };
            chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
        }
        true
    }
}

impl RngCore for HwRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        match self.try_next_u64() {
            Some(v) => v,
            None => panic!("the CPU's random number generator failed {} times in a row", self.tries()),
        }
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

impl CryptoRng for HwRng {}
