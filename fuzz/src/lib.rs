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
pub mod tcpip;
pub mod tls_client;
pub mod tls_server;
mod util;

/// Every target's name with its seed generator, in the order `cargo xtask fuzz` runs them.
pub const TARGETS: &[(&str, fn() -> Vec<(String, Vec<u8>)>)] = &[
    ("args", args::seeds),
    ("key", key::seeds),
    ("crunch", crunch::seeds),
    ("http_server", http_server::seeds),
    ("http_client", http_client::seeds),
    ("tls_server", tls_server::seeds),
    ("tls_client", tls_client::seeds),
    ("tcpip", tcpip::seeds),
];
