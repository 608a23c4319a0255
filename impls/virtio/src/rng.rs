//! Entropy from the CPU: RDRAND, or RDSEED where only it exists.

use morgana::rand_core::{CryptoRng, RngCore};
use morgana_rt::Entropy;

use crate::sys::cpu;

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
            return Ok(Self { source: Source::Rdrand });
        }
        if cpu::cpuid(0, 0)[0] >= 7 && cpu::cpuid(7, 0)[1] & (1 << 18) != 0 {
            return Ok(Self { source: Source::Rdseed });
        }
        Err(
            "the CPU has neither RDRAND nor RDSEED, so there is no entropy: run QEMU with -cpu host (KVM) or -cpu max (TCG)",
        )
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

impl RngCore for HwRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        // Intel's guidance: RDRAND failing ten times in a row means the generator is broken.
        // RDSEED may need more patience while the conditioner refills.
        let tries = if self.source == Source::Rdrand { 10 } else { 10_000 };
        for _ in 0..tries {
            let v = match self.source {
                Source::Rdrand => cpu::rdrand64(),
                Source::Rdseed => cpu::rdseed64(),
            };
            if let Some(v) = v {
                return v;
            }
            core::hint::spin_loop();
        }
        panic!("the CPU's random number generator failed {tries} times in a row")
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

impl CryptoRng for HwRng {}
