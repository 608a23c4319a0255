//! How many connections `www` serves at once, and what it does at the limit.
//!
//! At `--max-connections` the acceptors stop calling `accept` until a connection ends: new
//! connections wait in the listen backlog (on host sockets, the kernel's), and the ones already
//! open keep being served. Nothing is accepted only to be closed. Reaching the limit is logged at
//! most once per [`REPORT_EVERY`], with how often and for how long, not once per connection.

use alloc::rc::Rc;
use core::cell::RefCell;
use core::future::{Future, poll_fn};
use core::net::SocketAddr;
use core::pin::pin;
use core::task::{Context, Poll};

use morgana::task::Place;
use morgana::{Clock, Duration, Instant, Platform, StackError, TaskGroup, TcpListener};

/// Reports of a limit reached come at most this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// A warning that would repeat under load, logged at most once per [`REPORT_EVERY`] with a count
/// of the times it was suppressed.
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<Instant>,
    /// Occurrences since the last report, including the one being reported.
    count: u64,
}

impl Throttle {
    /// Count one occurrence at `now`; `Some(occurrences since the last report, including this
    /// one; time since the last report, `None` for the first)` when it is due to be logged.
    pub fn hit(&mut self, now: Instant) -> Option<(u64, Option<Duration>)> {
        self.count += 1;
        self.due(now, false)
    }

    /// Like [`Throttle::hit`] without counting an occurrence: a report is due if one was counted
    /// or `ongoing` (the condition still holds), and the last report is old enough.
    pub fn due(&mut self, now: Instant, ongoing: bool) -> Option<(u64, Option<Duration>)> {
        if self.count == 0 && !ongoing {
            return None;
        }
        let since = match self.last {
            Some(last) if now < last + REPORT_EVERY => return None,
            Some(last) => Some(now - last),
            None => None,
        };
        let count = core::mem::take(&mut self.count);
        self.last = Some(now);
        Some((count, since))
    }
}

/// A second limit an acceptor checks before it accepts (the TLS budget): room now, or the task
/// of `cx` is woken when there may be; a charge held for each connection taken.
pub trait Gate {
    /// Held while the connection lives; given back when dropped.
    type Charge;
    /// Whether one more connection fits now; if not, `cx`'s task is woken when it may.
    fn poll_room(&self, cx: &mut Context<'_>) -> bool;
    /// Charge one connection.
    fn take(&self) -> Self::Charge;
}

/// No second limit (plain HTTP).
impl Gate for () {
    type Charge = ();
    fn poll_room(&self, _: &mut Context<'_>) -> bool {
        true
    }
    fn take(&self) {}
}

/// The connections in service, shared by the HTTPS and plain HTTP acceptors: a
/// [`TaskGroup`] of `--max-connections` with the limit's report.
pub struct Admission<P: Platform> {
    tasks: TaskGroup<P>,
    clock: P::Clock,
    report: RefCell<Report>,
}

/// What is reported about the limit.
#[derive(Debug, Default)]
struct Report {
    /// The times the limit was reached, for the throttled log line.
    reached: Throttle,
    /// Since when every slot has been taken, if they are.
    full_since: Option<Instant>,
    /// Time spent at the limit since the last report, not counting the current stretch.
    full_for: Duration,
}

impl<P: Platform> Admission<P> {
    /// At most `max` connections at once (at least one), spawned and timed by `platform`.
    pub fn new(platform: &P, max: usize) -> Rc<Self> {
        Rc::new(Self {
            tasks: TaskGroup::new(platform.clone(), max),
            clock: platform.clock(),
            report: RefCell::default(),
        })
    }

    /// Connections in service now.
    pub fn live(&self) -> usize {
        self.tasks.live()
    }

    /// Serve a connection admitted with [`Admission::accept`] in its own task, in `place`.
    pub fn spawn(&self, place: Place, task: impl Future<Output = ()> + 'static) {
        self.tasks.spawn_in(place, task);
    }

    /// Whether a connection may be accepted now (fewer than the limit are open); if not, the
    /// task of `cx` is woken when one ends. While at the limit, it is reported once per
    /// [`REPORT_EVERY`].
    fn poll_room(&self, cx: &mut Context<'_>) -> bool {
        let now = self.clock.now();
        let room = self.tasks.poll_room(cx).is_ready();
        if room {
            // A stretch at the limit ends when an acceptor, woken by the connection that
            // ended, finds room (every acceptor waits here while the group is full).
            let mut r = self.report.borrow_mut();
            if let Some(at) = r.full_since.take() {
                r.full_for += now.saturating_duration_since(at);
            }
        }
        self.report_if_due(now);
        if room {
            return true;
        }
        // Wake up to report a long stretch at the limit, even if no connection ends.
        let last = self.report.borrow().reached.last.unwrap_or(now);
        self.clock.wake_at((last + REPORT_EVERY).max(now + Duration::from_millis(1)), cx.waker());
        false
    }

    /// Accept the next connection from `listener` once there is room for it here and in
    /// `gate` (the TLS budget, or `()`), with its place and its charge. While either is short,
    /// `accept` is not polled: connections wait in the listen backlog.
    pub async fn accept<L: TcpListener, G: Gate>(
        &self,
        listener: &mut L,
        gate: &G,
    ) -> Result<(L::Connection, SocketAddr, Place, G::Charge), StackError> {
        let mut accept = pin!(listener.accept());
        poll_fn(|cx| {
            if !self.poll_room(cx) || !gate.poll_room(cx) {
                return Poll::Pending;
            }
            // Room and a connection in the same poll: the place is taken before anyone else runs.
            accept.as_mut().poll(cx).map(|r| r.map(|(conn, peer)| (conn, peer, self.take(), gate.take())))
        })
        .await
    }

    fn take(&self) -> Place {
        let place = self.tasks.reserve();
        if self.tasks.live() == self.tasks.limit() {
            let now = self.clock.now();
            let due = {
                let mut r = self.report.borrow_mut();
                r.full_since = Some(now);
                r.reached.hit(now)
            };
            if let Some((times, since)) = due {
                self.log(times, since, now);
            }
        }
        place
    }

    fn report_if_due(&self, now: Instant) {
        let due = {
            let mut r = self.report.borrow_mut();
            let full = r.full_since.is_some();
            r.reached.due(now, full)
        };
        if let Some((times, since)) = due {
            self.log(times, since, now);
        }
    }

    /// Log that the limit was reached `times` in the `since` before `now`.
    fn log(&self, times: u64, since: Option<Duration>, now: Instant) {
        let max = self.tasks.limit();
        let Some(since) = since else {
            log::warn!(
                "{max} connections open, the --max-connections limit: accepting paused until one ends \
                 (new connections wait in the listen backlog; reported at most every {} s)",
                REPORT_EVERY.as_secs()
            );
            return;
        };
        let full = {
            let mut r = self.report.borrow_mut();
            let current = r.full_since.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
            // The current stretch is counted from now on in the next report.
            if r.full_since.is_some() {
                r.full_since = Some(now);
            }
            core::mem::take(&mut r.full_for) + current
        };
        let (since, full, live) = (since.as_secs_f64(), full.as_secs_f64(), self.live());
        if times == 0 {
            log::warn!(
                "still at --max-connections {max}: accepting paused for {full:.1} s of the last {since:.1} s; \
                 {live} connections open"
            );
        } else {
            log::warn!(
                "--max-connections {max} reached {times} time(s) in the last {since:.1} s, accepting paused \
                 for {full:.1} s of it; {live} connections open"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_warning_is_due_once_per_interval_with_its_count() {
        let at = |s: u64| Instant::ZERO + Duration::from_secs(s);
        let mut t = Throttle::default();
        assert_eq!(t.due(at(0), false), None, "nothing happened yet");
        assert_eq!(t.hit(at(1)), Some((1, None)), "the first is logged at once");
        for s in 2..11 {
            assert_eq!(t.hit(at(s)), None);
        }
        assert_eq!(t.due(at(10), true), None, "not yet due");
        assert_eq!(t.hit(at(11)), Some((10, Some(Duration::from_secs(10)))));
        assert_eq!(t.due(at(100), false), None, "nothing since");
        assert_eq!(t.due(at(100), true), Some((0, Some(Duration::from_secs(89)))), "still ongoing");
    }
}
