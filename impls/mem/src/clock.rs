//! A clock that a test moves by hand.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::task::Waker;

use morgana::{Clock, Duration, Instant, WallClock};

#[derive(Default)]
struct State {
    now: Instant,
    epoch: Duration,
    timers: Vec<(Instant, Waker)>,
}

/// A monotonic and wall clock that only moves when [`advance`](Self::advance) is called, which
/// wakes every timer that falls due. For driving a device or a stack step by step without an
/// executor; a whole app runs on the executor's [`morgana_rt::VirtualTime`] instead.
#[derive(Clone, Default)]
pub struct ManualClock {
    state: Rc<RefCell<State>>,
}

impl ManualClock {
    /// A clock at [`Instant::ZERO`] whose wall time is `epoch` (POSIX time).
    pub fn new(epoch: Duration) -> Self {
        Self { state: Rc::new(RefCell::new(State { epoch, ..State::default() })) }
    }

    /// Move forward by `d`, waking the timers that fall due.
    pub fn advance(&self, d: Duration) {
        let due: Vec<Waker> = {
            let mut s = self.state.borrow_mut();
            s.now += d;
            let now = s.now;
            let mut due = Vec::new();
            s.timers.retain(|(at, w)| {
                let fire = *at <= now;
                if fire {
                    due.push(w.clone());
                }
                !fire
            });
            due
        };
        due.into_iter().for_each(Waker::wake);
    }

    /// The earliest registered deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.state.borrow().timers.iter().map(|(at, _)| *at).min()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.state.borrow().now
    }

    fn wake_at(&self, at: Instant, waker: &Waker) {
        let mut s = self.state.borrow_mut();
        if at <= s.now {
            drop(s);
            waker.wake_by_ref();
            return;
        }
        match s.timers.iter_mut().find(|(_, w)| w.will_wake(waker)) {
            Some(t) => t.0 = t.0.min(at),
            None => s.timers.push((at, waker.clone())),
        }
    }
}

impl WallClock for ManualClock {
    fn now_unix(&self) -> Duration {
        let s = self.state.borrow();
        s.epoch + s.now.since_origin()
    }
}
