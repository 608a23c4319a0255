//! Checkers: what a scenario asserts about a run beyond "no failure", including the
//! linearizability of a key-value service's history.

mod linearizability;

pub use linearizability::{Call, Op, Violation, linearizable};
