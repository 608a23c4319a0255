//! # morgana-layers: what an app puts between itself and its devices
//!
//! Layers are functors in Mirage's sense: each takes a device and gives a device of the same
//! trait, so an app or a target stacks them without the app's code changing.
//!
//! - [`PcapWriter`]: any [`morgana::Net`], with every frame it receives and sends written as a
//!   classic libpcap record (Ethernet, nanosecond timestamps from a [`morgana::Clock`]) to an
//!   [`embedded_io::Write`]: a `Vec<u8>`, a `std::fs::File` through embedded-io-adapters'
//!   `FromStd`, a serial port. A write that fails stops the capture, never the network.
//! - [`Either`]: one of two devices chosen at run time (a directory or the compiled-in site),
//!   as one type that implements each device trait both sides do ([`morgana::KvRo`], and
//!   [`morgana::KvRw`] when both sides are writable): no `dyn`, no allocation. It is the
//!   signature crate's [`morgana::Either`], re-exported.
//! - [`Metered`]: any [`morgana::Block`], counting the reads, writes and flushes that reach it
//!   and their bytes (a store's write amplification), read through a [`Meter`] kept beside it.
//!
//! Fault injection under a stack is `morgana_mem::FaultyNet` (seeded loss, duplication,
//! reordering, corruption and delay on what a `Net` receives), which is `no_std` too.
//!
//! `no_std` + `alloc`, no unsafe code.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod either;
pub mod meter;
pub mod pcap;

pub use either::Either;
pub use meter::{BlockCounts, Meter, Metered};
pub use pcap::{CaptureStats, PcapWriter};
