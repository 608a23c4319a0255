//! Seeded randomness: the same seed, the same run.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use morgana_rt::Entropy;

/// A cryptographically strong generator from a fixed seed, for reproducible tests only.
pub type SeededRng = ChaCha20Rng;

/// Entropy for a simulation: every generator it hands out is seeded from one master seed.
pub struct SeededEntropy {
    master: core::cell::RefCell<ChaCha20Rng>,
}

impl SeededEntropy {
    /// Entropy derived from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { master: core::cell::RefCell::new(ChaCha20Rng::seed_from_u64(seed)) }
    }
}

impl Entropy for SeededEntropy {
    type Rng = SeededRng;
    fn rng(&self) -> SeededRng {
        ChaCha20Rng::seed_from_u64(self.master.borrow_mut().next_u64())
    }
}
