//! The scenarios `cargo xtask sim` runs, by name.

pub mod kv;
pub mod tcp;
pub mod www;

use morgana::Duration;

use crate::{Outcome, WorldConfig};

/// A scenario: a world, its nodes and its director, built from a configuration.
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// One line on what it checks.
    pub about: &'static str,
    /// Seeds `cargo test` runs (0: too long for CI; `cargo xtask sim` and the bench run it).
    pub ci_seeds: u64,
    /// Build and run it.
    pub run: fn(WorldConfig) -> Outcome,
}

/// Every scenario.
pub const ALL: &[Scenario] = &[
    Scenario {
        name: "www",
        about: "www serving 50 http-fetch clients for 10 simulated minutes over lossy links (think time exp, mean 1 s)",
        ci_seeds: 0,
        run: |c| {
            let shape = www::Shape {
                clients: 50,
                duration: Duration::from_secs(600),
                think: Duration::from_secs(1),
                timeout_ms: 20_000,
            };
            www::serve(c, shape)
        },
    },
    Scenario {
        name: "www-small",
        about: "www serving 6 http-fetch clients for 40 simulated seconds over lossy links (the CI-sized www)",
        ci_seeds: 1,
        run: |c| {
            let shape = www::Shape {
                clients: 6,
                duration: Duration::from_secs(40),
                think: Duration::from_secs(1),
                timeout_ms: 20_000,
            };
            www::serve(c, shape)
        },
    },
    Scenario {
        name: "partition",
        about: "clients cut off www both ways, then one way; after each heal every client fetches again",
        ci_seeds: 1,
        run: www::partition,
    },
    Scenario {
        name: "tcp",
        about: "echo transfers across loss 0/1/5 % x latency 1/20 ms x buffers 16/256 KiB, byte-exact",
        ci_seeds: 2,
        run: |c| tcp::matrix(c, 256 * 1024),
    },
    Scenario {
        name: "kv",
        about: "a key-value server in memory and 4 clients over lossy links: the history is linearizable",
        ci_seeds: 3,
        run: |c| kv::memory(c, kv::Fault::None),
    },
    Scenario {
        name: "kv-store",
        about: "the key-value server on morgana-store over its disk, crashed and restarted every 2-6 s: linearizable",
        ci_seeds: 2,
        run: kv::store,
    },
    Scenario {
        name: "selftest-broken",
        about: "fixture: a key-value server that drops every 1000th acknowledged write; the runner must find a failing seed",
        ci_seeds: 0,
        run: |c| kv::memory(c, kv::Fault::DropEvery(1000)),
    },
];

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    ALL.iter().find(|s| s.name == name)
}
