//! The empty unikernel: it starts and exits 0. The floor for image size and boot time.
#![no_std]
#![forbid(unsafe_code)]

use core::convert::Infallible;

use morgana::Platform;
use morgana_args::ArgSpec;

/// `noop` takes no arguments of its own.
pub const ARGS: &[ArgSpec] = &[];

/// Do nothing, successfully.
pub async fn start<P: Platform>(_platform: P) -> Result<(), Infallible> {
    Ok(())
}
