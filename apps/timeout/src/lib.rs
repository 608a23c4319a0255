//! `timeout`: a task raced against a timeout (mirage-skeleton tutorial/lwt/timeout1).
//!
//! The task sleeps a random time below three seconds (or `--task-ms`), the timeout fires after
//! two (or `--timeout-ms`); whichever completes first wins and the other is cancelled.
#![no_std]
#![forbid(unsafe_code)]

use core::convert::Infallible;
use core::pin::pin;

use futures::future::{Either, select};
use morgana::rand_core::RngCore;
use morgana::{Clock, Duration, Platform};
use morgana_args::{ArgError, ArgSpec, Args};

/// `--task-ms` (default: random below 3000) and `--timeout-ms` (default 2000).
pub const ARGS: &[ArgSpec] = &[
    ArgSpec::value("task-ms", "MS", "how long the task takes [default: random below 3000]"),
    ArgSpec::value("timeout-ms", "MS", "the timeout").default("2000"),
];

/// What `timeout` races.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    /// The task's duration; random below three seconds if `None`.
    pub task: Option<Duration>,
    /// The timeout.
    pub timeout: Duration,
}

impl Config {
    /// Read the configuration from the runtime arguments.
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        Ok(Self {
            task: args.get_opt::<u64>("task-ms")?.map(Duration::from_millis),
            timeout: Duration::from_millis(args.get("timeout-ms")?),
        })
    }
}

/// Which side of the race won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winner {
    /// The task completed first.
    Task,
    /// The timeout fired first and the task was cancelled.
    Timeout,
}

/// Race the task against the timeout and log which won.
pub async fn start<P: Platform>(platform: P, config: Config) -> Result<Winner, Infallible> {
    let clock = platform.clock();
    let task_time = config.task.unwrap_or_else(|| Duration::from_millis(platform.rng().next_u64() % 3000));
    log::info!("task takes {}ms, timeout after {}ms", task_time.as_millis(), config.timeout.as_millis());
    let started = clock.now();
    let task = pin!(async {
        clock.sleep(task_time).await;
        "Heads"
    });
    let timeout = pin!(clock.sleep(config.timeout));
    let winner = match select(task, timeout).await {
        Either::Left((value, _)) => {
            log::info!("Returned {value} after {}ms", (clock.now() - started).as_millis());
            Winner::Task
        }
        Either::Right(_) => {
            log::info!("Cancelled: timed out after {}ms", (clock.now() - started).as_millis());
            Winner::Timeout
        }
    };
    Ok(winner)
}
