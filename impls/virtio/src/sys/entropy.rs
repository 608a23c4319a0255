//! getrandom 0.2's custom source: the CPU's RNG for crates that ask `getrandom` for entropy
//! (rustls-rustcrypto's `OsRng` draws its key shares, nonces and signatures from it).

use morgana_rt::Entropy;

use crate::rng::HwEntropy;

/// Fill `dest` from RDRAND (or RDSEED), as detected at boot.
fn fill(dest: &mut [u8]) -> Result<(), getrandom::Error> {
    // Boot refuses to start without a hardware RNG, so `detected` is only `None` if something
    // runs before boot; an error then, never predictable bytes.
    let entropy = HwEntropy::detected().ok_or(getrandom::Error::NO_RDRAND)?;
    if entropy.rng().try_fill(dest) { Ok(()) } else { Err(getrandom::Error::FAILED_RDRAND) }
}

// SAFETY: the macro exports `__getrandom_custom`, the symbol getrandom 0.2 (feature `custom`)
// calls with a pointer to `len` initialised, writable bytes; it forms the slice from those and
// calls `fill`, which is safe code and never keeps the slice. Exactly one crate in the image
// may define the symbol: this module, only with this crate's `getrandom` feature.
getrandom::register_custom_getrandom!(fill);
