//! The operating system's random number generator.

use morgana_rt::Entropy;
use rand_core::{OsRng, TryRngCore, UnwrapErr};

/// Entropy from `getrandom(2)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    type Rng = UnwrapErr<OsRng>;
    fn rng(&self) -> Self::Rng {
        OsRng.unwrap_err()
    }
}
