//! # morgana-app: one `main.rs` for every target
//!
//! Every app depends on this crate, and on no target crate: the target is chosen here at build
//! time (a host build gets `morgana-unix`, a bare-metal one `morgana-virtio`), so an app's
//! `Cargo.toml` does not change when a target is added. [`main!`] turns one body into the
//! program's entry on whichever target is built:
//!
//! ```ignore
//! #![no_std]
//! #![cfg_attr(target_os = "none", no_main)]
//!
//! morgana_app::main!(args: [echo::ARGS], devices: [TcpStack], |t| {
//!     let config = echo::Config::from_args(t.args())?;
//!     Ok(echo::start(t.platform(), t.tcp_stack()?, config))
//! });
//! ```
//!
//! `args` are the app's argument lists (several compose); `devices` are what it asks the
//! target for ([`Device`]'s variants, by name); `t` is the target ([`Target`]): its
//! `platform()`, `args()`, and a method per device, each a one-line [`StartError`] where the
//! target cannot provide it. `--help` lists the app's arguments, [`COMMON`](morgana_target::COMMON)
//! and the target's arguments for these devices, and nothing else.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub use morgana_target::{Absent, ArgError, ArgSpec, Args, Device, Or, StartError, Store, Target};

/// The target this build runs on (`morgana-unix`): for [`main!`].
#[cfg(unix)]
#[doc(hidden)]
pub use morgana_unix as __target;

/// The target this build runs on (`morgana-virtio`): for [`main!`].
#[cfg(target_os = "none")]
#[doc(hidden)]
pub use morgana_virtio as __target;

/// The target this build runs on.
#[cfg(unix)]
pub type Selected = morgana_unix::Unix;

/// The target this build runs on.
#[cfg(target_os = "none")]
pub type Selected = morgana_virtio::Virtio;

/// The target's TLS crypto provider: ring on a host, rustls-rustcrypto (randomness from RDRAND)
/// on bare metal.
#[cfg(feature = "tls")]
pub fn tls_provider() -> alloc::sync::Arc<rustls::crypto::CryptoProvider> {
    #[cfg(unix)]
    let provider = rustls::crypto::ring::default_provider();
    #[cfg(target_os = "none")]
    let provider = rustls_rustcrypto::provider();
    alloc::sync::Arc::new(provider)
}

/// The certificate store of a TLS server (`server.pem` and `server.key`, PEM): `--certs DIR`
/// where the target has directories. Without it the server serves the built-in development
/// certificate (`morgana_tls::Identity::from_certs_or_dev`), which says so in its log.
#[cfg(feature = "tls")]
pub const CERTS: Store = Store::new(
    "certs",
    "directory with server.pem and server.key [default: the built-in development certificate for localhost]",
    "drop --certs to serve the built-in development certificate",
);

/// The program's entry on the selected target: see the [crate documentation](crate).
#[macro_export]
macro_rules! main {
    (args: [$($args:expr),* $(,)?], |$t:ident| $body:expr $(,)?) => {
        $crate::main!(args: [$($args),*], devices: [], |$t| $body);
    };
    (args: [$($args:expr),* $(,)?], devices: [$($dev:expr),* $(,)?], |$t:ident| $body:expr $(,)?) => {
        $crate::__entry! {
            $crate::__target::run(
                &[$($args),*],
                {
                    const DEVICES: &[$crate::Device] = &[$({
                        #[allow(unused_imports)]
                        use $crate::Device::*;
                        $dev
                    }),*];
                    DEVICES
                },
                |$t| {
                    #[allow(unused_imports)]
                    use $crate::Target as _;
                    $body
                },
            )
        }
    };
}

/// The entry function around `$run` on a host: `fn main`.
#[cfg(unix)]
#[doc(hidden)]
#[macro_export]
macro_rules! __entry {
    ($run:expr) => {
        fn main() {
            $run
        }
    };
}

/// The entry function around `$run` on bare metal: the kernel's.
#[cfg(target_os = "none")]
#[doc(hidden)]
#[macro_export]
macro_rules! __entry {
    ($run:expr) => {
        $crate::__target::entry!(__morgana_app_main);
        fn __morgana_app_main() -> ! {
            $run
        }
    };
}
