//! The run loop, tasks, timers and the handle apps hold.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::future::Future;
use core::pin::{Pin, pin};
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use morgana::rand_core::{CryptoRng, RngCore};
use morgana::{Clock, Instant, Platform, Spawn, WallClock};

/// Where time comes from: the system, the hardware, or a simulation.
pub trait TimeSource: 'static {
    /// Monotonic time since the origin.
    fn now(&self) -> Instant;
    /// POSIX time.
    fn now_unix(&self) -> Duration;
}

/// How a target waits when no task is runnable.
pub trait Park {
    /// Block until `deadline` (never, if `None`) or until an external event (an fd becoming
    /// ready, an interrupt) may have woken a task. Returning early is allowed.
    fn park(&mut self, deadline: Option<Instant>) -> Result<(), Stalled>;
}

/// The run loop cannot make progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stalled {
    /// No task is runnable and no timer is pending: every task waits on something that can
    /// never happen (in a simulation, a deadlock).
    Deadlock {
        /// When it was detected.
        at: Instant,
    },
    /// The next deadline lies beyond the simulation's time limit.
    TimeLimit {
        /// The limit.
        limit: Instant,
        /// The deadline that would have been jumped to.
        next: Instant,
    },
}

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Deadlock { at } => write!(f, "stalled at {at}: no runnable task and no timer"),
            Self::TimeLimit { limit, next } => {
                write!(f, "stalled: next timer at {next} is past the time limit {limit}")
            }
        }
    }
}

impl core::error::Error for Stalled {}

/// Set when a task is woken; read and cleared by the run loop. (One flag and nothing else: a
/// wake touches one cache line.)
struct Flag {
    woken: AtomicBool,
}

impl Flag {
    fn new() -> Arc<Self> {
        Arc::new(Self { woken: AtomicBool::new(true) })
    }

    fn is_set(&self) -> bool {
        self.woken.load(Ordering::Acquire)
    }

    fn take(&self) -> bool {
        // A plain load first: most tasks are not woken, and the swap is a locked instruction.
        self.woken.load(Ordering::Relaxed) && self.woken.swap(false, Ordering::AcqRel)
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
    }
}

struct Task {
    future: Pin<Box<dyn Future<Output = ()>>>,
    flag: Arc<Flag>,
    waker: Waker,
}

struct Core<T> {
    time: T,
    /// One entry per waker, at the earliest deadline asked for: a woken task polls all its
    /// futures again and each re-registers, so later deadlines are not lost.
    timers: RefCell<Vec<(Instant, Waker)>>,
    tasks: RefCell<Vec<Option<Task>>>,
    spawned: RefCell<Vec<Task>>,
    live_tasks: Cell<usize>,
}

/// A single-threaded executor over a time source.
pub struct Executor<T: TimeSource> {
    core: Rc<Core<T>>,
}

/// A cheap, cloneable handle onto an executor: its clock, its timers and its spawner.
pub struct Handle<T: TimeSource> {
    core: Rc<Core<T>>,
}

impl<T: TimeSource> Clone for Handle<T> {
    fn clone(&self) -> Self {
        Self { core: self.core.clone() }
    }
}

impl<T: TimeSource> Executor<T> {
    /// An executor whose clock reads `time`.
    pub fn new(time: T) -> Self {
        Self {
            core: Rc::new(Core {
                time,
                timers: RefCell::new(Vec::new()),
                tasks: RefCell::new(Vec::new()),
                spawned: RefCell::new(Vec::new()),
                live_tasks: Cell::new(0),
            }),
        }
    }

    /// A handle for the clock and the spawner.
    pub fn handle(&self) -> Handle<T> {
        Handle { core: self.core.clone() }
    }

    /// Run `main` (and every task spawned meanwhile) until `main` completes; tasks still running
    /// then are dropped.
    pub fn block_on<F: Future>(&self, park: &mut impl Park, main: F) -> Result<F::Output, Stalled> {
        let core = &*self.core;
        let flag = Flag::new();
        let waker = Waker::from(flag.clone());
        let mut main = pin!(main);
        loop {
            if flag.take()
                && let Poll::Ready(out) = main.as_mut().poll(&mut Context::from_waker(&waker))
            {
                return Ok(out);
            }
            core.poll_tasks();
            if flag.is_set() || core.any_woken() {
                continue;
            }
            if core.fire_timers() {
                continue;
            }
            let next = core.timers.borrow().iter().map(|(at, _)| *at).min();
            park.park(next)?;
            core.fire_timers();
        }
    }

    /// Tasks spawned and not yet finished.
    pub fn live_tasks(&self) -> usize {
        self.core.live_tasks.get()
    }
}

impl<T: TimeSource> Core<T> {
    fn poll_tasks(&self) {
        if !self.spawned.borrow().is_empty() {
            let new = core::mem::take(&mut *self.spawned.borrow_mut());
            let mut tasks = self.tasks.borrow_mut();
            for task in new {
                match tasks.iter_mut().find(|slot| slot.is_none()) {
                    Some(slot) => *slot = Some(task),
                    None => tasks.push(Some(task)),
                }
            }
        }
        let count = self.tasks.borrow().len();
        for i in 0..count {
            // Take a woken task out while it runs: it may spawn (which borrows `spawned`, not
            // `tasks`) or drop other handles.
            let task = match self.tasks.borrow_mut().get_mut(i) {
                Some(slot) if slot.as_ref().is_some_and(|t| t.flag.take()) => slot.take(),
                _ => None,
            };
            let Some(mut task) = task else { continue };
            let done = task.future.as_mut().poll(&mut Context::from_waker(&task.waker)).is_ready();
            if done {
                self.live_tasks.set(self.live_tasks.get() - 1);
            } else {
                self.tasks.borrow_mut()[i] = Some(task);
            }
        }
    }

    /// Whether a task was spawned or woken (during a pass, a task may wake one polled before it).
    fn any_woken(&self) -> bool {
        !self.spawned.borrow().is_empty() || self.tasks.borrow().iter().flatten().any(|t| t.flag.is_set())
    }

    /// Wake every timer that is due; whether any was.
    fn fire_timers(&self) -> bool {
        let now = self.time.now();
        let due: Vec<Waker> = {
            let mut timers = self.timers.borrow_mut();
            let mut due = Vec::new();
            timers.retain(|(at, w)| {
                if *at <= now {
                    due.push(w.clone());
                    false
                } else {
                    true
                }
            });
            due
        };
        let any = !due.is_empty();
        due.into_iter().for_each(Waker::wake);
        any
    }
}

impl<T: TimeSource> Handle<T> {
    /// The time source this executor reads.
    pub fn time(&self) -> &T {
        &self.core.time
    }

    /// Timers currently registered.
    pub fn pending_timers(&self) -> usize {
        self.core.timers.borrow().len()
    }
}

impl<T: TimeSource> Spawn for Handle<T> {
    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        let flag = Flag::new();
        let waker = Waker::from(flag.clone());
        self.core.live_tasks.set(self.core.live_tasks.get() + 1);
        self.core.spawned.borrow_mut().push(Task { future: Box::pin(task), flag, waker });
    }
}

impl<T: TimeSource> Clock for Handle<T> {
    fn now(&self) -> Instant {
        self.core.time.now()
    }

    fn wake_at(&self, at: Instant, waker: &Waker) {
        let mut timers = self.core.timers.borrow_mut();
        match timers.iter_mut().find(|(_, w)| w.will_wake(waker)) {
            Some(entry) => entry.0 = entry.0.min(at),
            None => timers.push((at, waker.clone())),
        }
    }
}

impl<T: TimeSource> WallClock for Handle<T> {
    fn now_unix(&self) -> Duration {
        self.core.time.now_unix()
    }
}

/// A target's source of randomness.
pub trait Entropy: 'static {
    /// The generator handed to apps.
    type Rng: RngCore + CryptoRng + 'static;
    /// A fresh generator.
    fn rng(&self) -> Self::Rng;
}

/// The [`Platform`] every target builds from an executor handle and its entropy.
pub struct RtPlatform<T: TimeSource, E: Entropy> {
    handle: Handle<T>,
    entropy: Rc<E>,
}

impl<T: TimeSource, E: Entropy> RtPlatform<T, E> {
    /// Bundle `handle` with `entropy`.
    pub fn new(handle: Handle<T>, entropy: E) -> Self {
        Self { handle, entropy: Rc::new(entropy) }
    }

    /// The executor handle.
    pub fn handle(&self) -> &Handle<T> {
        &self.handle
    }
}

impl<T: TimeSource, E: Entropy> Clone for RtPlatform<T, E> {
    fn clone(&self) -> Self {
        Self { handle: self.handle.clone(), entropy: self.entropy.clone() }
    }
}

impl<T: TimeSource, E: Entropy> Spawn for RtPlatform<T, E> {
    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        self.handle.spawn(task)
    }
}

impl<T: TimeSource, E: Entropy> Platform for RtPlatform<T, E> {
    type Clock = Handle<T>;
    type Rng = E::Rng;

    fn clock(&self) -> Handle<T> {
        self.handle.clone()
    }

    fn rng(&self) -> E::Rng {
        self.entropy.rng()
    }
}
