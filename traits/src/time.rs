//! `Clock` and `WallClock`: monotonic time, timers, and POSIX time.
//!
//! A clock has one primitive besides `now`: [`Clock::wake_at`] registers a waker for a deadline
//! (register and forget; spurious wake-ups are allowed). Sleeping is built on it, and so is a
//! network stack's runner, which lives inside a `poll_fn` and can only hand over a waker. The
//! timer list belongs to the executor (or to a virtual clock), so a simulation can jump straight
//! to the next deadline.
//!
//! ```
//! use morgana::time::{Clock, Duration};
//!
//! /// Log `msg` `n` times, one second apart.
//! async fn repeat<C: Clock>(clock: &C, msg: &str, n: u32) {
//!     for _ in 0..n {
//!         log::info!("{msg}");
//!         clock.sleep(Duration::from_secs(1)).await;
//!     }
//! }
//! # mod log { macro_rules! info { ($($t:tt)*) => {} } pub(crate) use info; }
//! ```
//!
//! [`timeout`] and [`deadline`] bound any future by the clock: the future's output, or
//! [`TimedOut`] once the time is up (the future is then dropped, which cancels it).
//!
//! ```
//! use morgana::time::{Clock, Duration, TimedOut, timeout};
//!
//! /// Wait at most five seconds for `answer`.
//! async fn ask<C: Clock>(clock: &C, answer: impl Future<Output = u32>) -> Result<u32, TimedOut> {
//!     timeout(clock, Duration::from_secs(5), answer).await
//! }
//! ```

use core::fmt;
use core::future::{Future, poll_fn};
use core::ops::{Add, AddAssign, Sub};
use core::pin::pin;
use core::task::{Poll, Waker};

pub use core::time::Duration;

/// A point on a clock's monotonic timeline, in nanoseconds since the clock's origin (boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant(0);
    /// The furthest representable instant.
    pub const MAX: Instant = Instant(u64::MAX);

    /// The instant `ns` nanoseconds after the origin.
    pub const fn from_nanos(ns: u64) -> Self {
        Self(ns)
    }

    /// The instant `us` microseconds after the origin.
    pub const fn from_micros(us: u64) -> Self {
        Self(us.saturating_mul(1_000))
    }

    /// The instant `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms.saturating_mul(1_000_000))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0 / 1_000
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Time since the origin.
    pub const fn since_origin(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, clamped to [`Instant::MAX`].
    pub fn saturating_add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(nanos(d)))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl fmt::Display for Instant {
    /// Seconds since the origin with microsecond precision, e.g. `12.000345s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000_000, (self.0 % 1_000_000_000) / 1_000)
    }
}

/// A monotonic clock that can wake a task at a deadline.
pub trait Clock {
    /// The current instant; never goes backwards.
    fn now(&self) -> Instant;

    /// Wake `waker` once `now() >= at` (or earlier: spurious wake-ups are allowed).
    fn wake_at(&self, at: Instant, waker: &Waker);

    /// Complete once `now() >= at`.
    async fn sleep_until(&self, at: Instant) {
        poll_fn(|cx| {
            if self.now() >= at {
                Poll::Ready(())
            } else {
                self.wake_at(at, cx.waker());
                Poll::Pending
            }
        })
        .await
    }

    /// Complete after `d` has elapsed.
    async fn sleep(&self, d: Duration) {
        let at = self.now() + d;
        self.sleep_until(at).await
    }
}

/// A clock of real (POSIX) time, for timestamps, certificates and logs.
pub trait WallClock {
    /// Time since 1970-01-01T00:00:00Z, ignoring leap seconds.
    fn now_unix(&self) -> Duration;
}

impl<T: Clock + ?Sized> Clock for &T {
    fn now(&self) -> Instant {
        T::now(self)
    }
    fn wake_at(&self, at: Instant, waker: &Waker) {
        T::wake_at(self, at, waker)
    }
}

impl<T: WallClock + ?Sized> WallClock for &T {
    fn now_unix(&self) -> Duration {
        T::now_unix(self)
    }
}

/// The time given to [`timeout`] or [`deadline`] ran out before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}

impl core::error::Error for TimedOut {}

impl From<TimedOut> for crate::stack::StackError {
    fn from(_: TimedOut) -> Self {
        Self::TimedOut
    }
}

/// Run `fut` until `at` on `clock`: its output, or [`TimedOut`] if `at` came first (then `fut`
/// is dropped). `fut` is polled first, so one that is ready at once wins even past `at`. No
/// allocation: the clock's [`Clock::wake_at`] is the only timer.
pub async fn deadline<C, F>(clock: &C, at: Instant, fut: F) -> Result<F::Output, TimedOut>
where
    C: Clock + ?Sized,
    F: Future,
{
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if clock.now() >= at {
            return Poll::Ready(Err(TimedOut));
        }
        clock.wake_at(at, cx.waker());
        Poll::Pending
    })
    .await
}

/// Run `fut` for at most `d` on `clock`, counted from this call: [`deadline`] at
/// `clock.now() + d`.
pub fn timeout<C, F>(clock: &C, d: Duration, fut: F) -> impl Future<Output = Result<F::Output, TimedOut>>
where
    C: Clock + ?Sized,
    F: Future,
{
    deadline(clock, clock.now() + d, fut)
}
