//! # morgana-fuzz: hostile input for every parser that meets outside bytes
//!
//! One module per fuzz target, each with `run(data)` (what libFuzzer calls, and what the
//! replay tests call with the kept crash inputs under `crashes/TARGET/`) and `seeds()` (a seed
//! corpus made by Morgana's own code: real exchanges recorded between its stacks, its own
//! requests and responses, its own argument lists). Every harness asserts more than "no panic"
//! where it can: see each module.
//!
//! `cargo xtask fuzz [TARGET] [--time SECONDS]` writes the seeds and runs the targets with
//! cargo-fuzz on the nightly toolchain.
#![forbid(unsafe_code)]

pub mod args;
pub mod crunch;
pub mod http_client;
pub mod http_server;
pub mod key;
pub mod store;
pub mod tcpip;
pub mod tls_client;
pub mod tls_server;
mod util;

/// A seed corpus: (file name, input).
pub type Seeds = Vec<(String, Vec<u8>)>;

/// One fuzz target: its name (that of `fuzz_targets/NAME.rs`), its harness and its seeds.
pub struct Target {
    /// The name.
    pub name: &'static str,
    /// The harness: panics on a finding.
    pub run: fn(&[u8]),
    /// The seed corpus generator.
    pub seeds: fn() -> Seeds,
}

macro_rules! targets {
    ($($m:ident),*) => { &[$(Target { name: stringify!($m), run: $m::run, seeds: $m::seeds }),*] };
}

/// Every target, in the order `cargo xtask fuzz` runs them.
pub const TARGETS: &[Target] =
    targets!(args, key, crunch, store, http_server, http_client, tls_server, tls_client, tcpip);
