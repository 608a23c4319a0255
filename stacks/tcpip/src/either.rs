//! The default stack for a target, Mirage's `generic_stackv4v6`: one type for "whichever stack
//! `--net` picked".
//!
//! The hosted target can serve an app from host sockets (no root) or from this stack on a TAP
//! device, chosen at run time by `--net`. An app is generic over one `S: TcpStack`, so the
//! target hands it an [`Either`] of the two: every trait is implemented by a `match`, with no
//! `dyn` and no allocation on the data path, and connections, listeners, halves and UDP sockets
//! are `Either`s too (the signature crate's [`morgana::Either`], re-exported). The choice itself (`--net socket|tap:IFNAME`) is the hosted target's
//! (`morgana-unix`): a stack crate reads no device arguments.

pub use morgana::Either;
