//! # morgana-sim: a deterministic simulation target
//!
//! A [`World`] of nodes, each an unmodified Morgana app: its generic `start`, wired by a body
//! like its `main.rs` on a [`SimNode`] (a [`morgana_target::Target`]), with its own executor,
//! clock (the world's, through the node's skew and drift), seeded randomness (TLS included),
//! `morgana-tcpip` stack on the world's switch, and disk. A scenario, written in Rust, adds the
//! nodes and directs the run: it crashes and restarts nodes (memory lost, the disk keeping what
//! was flushed and each unflushed write lost, kept or torn), partitions the network both ways or
//! one way and heals it, and checks invariants, including linearizability of a key-value
//! service's history ([`check::linearizable`]).
//!
//! One seed drives everything: link faults (loss, duplication, reordering, corruption, a
//! latency distribution), skews, disk faults, every node's randomness, the workload; in swarm
//! mode it also chooses which faults are on and how strong ([`Swarm`]). Every run has an
//! event [`Trace`] and its hash; the same seed gives the same hash, in one process and across
//! processes, whatever the log level. [`runner`] runs scenarios over many seeds, checks that a
//! second run matches the first event for event, and on failure prints the replay command and
//! writes the trace and a pcap of the switch. `cargo xtask sim --list` lists the scenarios.
//!
//! ```
//! use morgana::{Clock, Duration};
//! use morgana_sim::{LinkFaults, NodeSpec, World, WorldConfig};
//!
//! let world = World::new(WorldConfig::new(7), LinkFaults::latency(Duration::from_millis(5)));
//! let ticker = world.node(NodeSpec::new("ticker"), &[], &[], |t| {
//!     let clock = morgana::Platform::clock(&morgana_target::Target::platform(t));
//!     Ok(async move {
//!         clock.sleep(Duration::from_secs(60)).await;
//!         Ok::<(), &str>(())
//!     })
//! });
//! let out = world.run(|ctl| async move {
//!     assert_eq!(ctl.wait_exit(ticker).await, 0);
//!     Ok(())
//! });
//! assert!(out.result.is_ok());
//! assert!(out.end.as_millis() >= 60_000);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
mod fabric;
mod node;
pub mod runner;
pub mod scenarios;
mod swarm;
pub mod time;
pub mod tls;
pub mod trace;
mod traced;
mod world;

pub use fabric::{Latency, LinkFaults, SimNet};
pub use node::{NodeBoot, NodeDisk, SimNode, SimPlatform};
pub use swarm::Swarm;
pub use trace::{Event, Record, Trace};
pub use traced::{Tap, Traced, Wait};
pub use world::{Ctl, DiskFaults, Failure, NodeId, NodeSpec, Outcome, World, WorldConfig, running};
