//! The run loop, tasks, timers and the handle apps hold.

use alloc::boxed::Box;
use alloc::collections::BinaryHeap;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::cmp::Reverse;
use core::fmt;
use core::future::Future;
use core::pin::{Pin, pin};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use morgana::rand_core::{CryptoRng, RngCore};
use morgana::{Clock, HeapUsage, Instant, Platform, Spawn, WallClock};

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

/// Tasks per [`ReadyBits`] chunk.
const CHUNK: usize = 4096;

/// Which of [`CHUNK`] tasks were woken: one bit each. A wake sets one bit (one cache line, as a
/// flag would), and the run loop finds the woken tasks by scanning words, 64 tasks at a time,
/// instead of visiting every task: with ten thousand tasks (a server's connections) that is 157
/// words, not ten thousand cache misses per pass.
struct ReadyBits {
    words: [AtomicU64; CHUNK / 64],
}

impl ReadyBits {
    fn new() -> Arc<Self> {
        Arc::new(Self { words: [const { AtomicU64::new(0) }; CHUNK / 64] })
    }
}

/// A task's waker: sets its bit.
struct TaskWaker {
    bits: Arc<ReadyBits>,
    /// The task's index within the chunk.
    bit: usize,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.bits.words[self.bit / 64].fetch_or(1 << (self.bit % 64), Ordering::Release);
    }
}

struct Task {
    future: Pin<Box<dyn Future<Output = ()>>>,
    waker: Waker,
}

/// A waker's identity, as `Waker::will_wake` compares it: its data and vtable pointers.
type WakerId = (usize, usize);

fn waker_id(w: &Waker) -> WakerId {
    (w.data() as usize, core::ptr::from_ref(w.vtable()) as usize)
}

/// The timer queue: one entry per waker, at the earliest deadline asked for (a woken task polls
/// all its futures again and each re-registers, so later deadlines are not lost). A binary heap
/// orders the deadlines and a hash table indexed by waker holds the live entry of each, so that
/// registering, firing and finding the next deadline cost O(log n) with thousands of timers (one
/// per open connection). A deadline moved earlier leaves its old heap entry behind, stale (its
/// sequence number no longer matches), to be dropped when it reaches the top. (Not `BTreeMap`:
/// two of them cost a bare-metal image 15 KiB.)
#[derive(Default)]
struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, WakerId)>>,
    live: WakerTable,
    /// Registrations so far: orders timers with the same deadline.
    seq: u64,
}

impl Timers {
    fn len(&self) -> usize {
        self.live.len
    }

    /// Drop stale entries from the top of the heap.
    fn prune(&mut self) {
        while let Some(Reverse((_, seq, id))) = self.heap.peek() {
            match self.live.find(*id) {
                Some(i) if self.live.entry(i).2 == *seq => return,
                _ => {
                    self.heap.pop();
                }
            }
        }
    }

    fn next(&mut self) -> Option<Instant> {
        self.prune();
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    fn add(&mut self, at: Instant, waker: &Waker) {
        let id = waker_id(waker);
        let seq = self.seq;
        match self.live.find(id) {
            Some(i) if self.live.entry(i).1 <= at => return,
            Some(i) => {
                // Earlier than before: the old heap entry goes stale; the waker stored first stays.
                let e = self.live.entry_mut(i);
                (e.1, e.2) = (at, seq);
            }
            None => self.live.insert((id, at, seq, waker.clone())),
        }
        self.heap.push(Reverse((at, seq, id)));
        self.seq += 1;
    }

    /// Remove the timers due at `now`, in deadline order, into `due`.
    fn take_due(&mut self, now: Instant, due: &mut Vec<Waker>) {
        loop {
            self.prune();
            match self.heap.peek() {
                Some(Reverse((at, _, id))) if *at <= now => {
                    let id = *id;
                    self.heap.pop();
                    if let Some(i) = self.live.find(id) {
                        due.push(self.live.remove(i).3);
                    }
                }
                _ => return,
            }
        }
    }
}

/// A hash table of live timers keyed by waker: open addressing, linear probing, and
/// backward-shift deletion (no tombstones), at most half full.
#[derive(Default)]
struct WakerTable {
    slots: Vec<Option<(WakerId, Instant, u64, Waker)>>,
    len: usize,
}

impl WakerTable {
    fn home(&self, id: WakerId) -> usize {
        let h = (id.0 as u64 ^ (id.1 as u64).rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 32) as usize & (self.slots.len() - 1)
    }

    fn find(&self, id: WakerId) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(id);
        loop {
            match &self.slots[i] {
                None => return None,
                Some(e) if e.0 == id => return Some(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    fn entry(&self, i: usize) -> &(WakerId, Instant, u64, Waker) {
        self.slots[i].as_ref().expect("a found slot is occupied")
    }

    fn entry_mut(&mut self, i: usize) -> &mut (WakerId, Instant, u64, Waker) {
        self.slots[i].as_mut().expect("a found slot is occupied")
    }

    /// Insert an entry whose key is absent.
    fn insert(&mut self, e: (WakerId, Instant, u64, Waker)) {
        if (self.len + 1) * 2 > self.slots.len() {
            let size = (self.slots.len() * 2).max(16);
            let old = core::mem::replace(&mut self.slots, (0..size).map(|_| None).collect());
            self.len = 0;
            old.into_iter().flatten().for_each(|e| self.insert(e));
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(e.0);
        while self.slots[i].is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = Some(e);
        self.len += 1;
    }

    fn remove(&mut self, i: usize) -> (WakerId, Instant, u64, Waker) {
        let removed = self.slots[i].take().expect("a found slot is occupied");
        self.len -= 1;
        let mask = self.slots.len() - 1;
        let (mut hole, mut j) = (i, (i + 1) & mask);
        // Move back every entry of the run after the hole that may live there.
        while let Some(e) = &self.slots[j] {
            let home = self.home(e.0);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
            j = (j + 1) & mask;
        }
        removed
    }
}

struct Core<T> {
    time: T,
    timers: RefCell<Timers>,
    /// Tasks by index; `None` slots are free.
    tasks: RefCell<Vec<Option<Task>>>,
    /// The free slots, lowest first (a new task takes the lowest free index).
    free: RefCell<BinaryHeap<Reverse<usize>>>,
    /// Woken bits for the tasks: chunk `i / CHUNK`, bit `i % CHUNK`.
    ready: RefCell<Vec<Arc<ReadyBits>>>,
    /// Spawned since the last pass, not yet given a slot.
    spawned: RefCell<Vec<Pin<Box<dyn Future<Output = ()>>>>>,
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
                timers: RefCell::default(),
                tasks: RefCell::new(Vec::new()),
                free: RefCell::default(),
                ready: RefCell::new(Vec::new()),
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
            if core.fire_timers() > 0 {
                continue;
            }
            let next = core.timers.borrow_mut().next();
            park.park(next)?;
            core.fire_timers();
        }
    }

    /// Tasks spawned and not yet finished.
    pub fn live_tasks(&self) -> usize {
        self.core.live_tasks.get()
    }

    /// Poll the woken tasks and fire the due timers until nothing is runnable, without parking:
    /// for a loop that drives several executors on one clock (a simulated world of nodes, each
    /// with its own executor). What it did is returned; [`next_deadline`](Self::next_deadline)
    /// says when to call it again.
    pub fn run_until_idle(&self) -> Idle {
        let core = &*self.core;
        let mut idle = Idle::default();
        loop {
            idle.polls += core.poll_tasks();
            if core.any_woken() {
                continue;
            }
            match core.fire_timers() {
                0 => return idle,
                fired => idle.timers += fired,
            }
        }
    }

    /// Whether a task was spawned or woken and waits to be polled (a cheap check, for a loop
    /// that skips executors with nothing to do).
    pub fn is_woken(&self) -> bool {
        self.core.any_woken()
    }

    /// The earliest registered timer, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.core.timers.borrow_mut().next()
    }
}

/// What one [`Executor::run_until_idle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Idle {
    /// Task polls.
    pub polls: usize,
    /// Timers that fired.
    pub timers: usize,
}

impl<T: TimeSource> Drop for Executor<T> {
    /// Drop the tasks still running. A task may hold a [`Handle`] (a stack's runner holds its
    /// clock), and a handle keeps the core alive: left in the core, such tasks would keep it,
    /// and themselves, for ever (found by the tcpip fuzz target's leak check).
    fn drop(&mut self) {
        loop {
            // Taken out first: dropping a task may spawn or wake, which borrows these.
            let tasks = core::mem::take(&mut *self.core.tasks.borrow_mut());
            let spawned = core::mem::take(&mut *self.core.spawned.borrow_mut());
            if tasks.is_empty() && spawned.is_empty() {
                break;
            }
            drop((tasks, spawned));
        }
    }
}

impl<T: TimeSource> Core<T> {
    /// Give each spawned task a slot (the lowest free one) and mark it woken.
    fn place_spawned(&self) {
        let new = core::mem::take(&mut *self.spawned.borrow_mut());
        let mut tasks = self.tasks.borrow_mut();
        let mut free = self.free.borrow_mut();
        let mut ready = self.ready.borrow_mut();
        for future in new {
            let i = match free.pop() {
                Some(Reverse(i)) => i,
                None => {
                    tasks.push(None);
                    tasks.len() - 1
                }
            };
            if ready.len() <= i / CHUNK {
                ready.push(ReadyBits::new());
            }
            let bits = ready[i / CHUNK].clone();
            bits.words[(i % CHUNK) / 64].fetch_or(1 << (i % 64), Ordering::Release);
            let waker = Waker::from(Arc::new(TaskWaker { bits, bit: i % CHUNK }));
            tasks[i] = Some(Task { future, waker });
        }
    }

    /// Poll every woken task once, in index order; a task woken during the pass by one before it
    /// runs in the same pass, one woken by a task after it in the next.
    fn poll_tasks(&self) -> usize {
        if !self.spawned.borrow().is_empty() {
            self.place_spawned();
        }
        let count = self.tasks.borrow().len();
        let mut polled = 0;
        let mut i = 0;
        while i < count {
            let bits = self.ready.borrow()[i / CHUNK].clone();
            let word = &bits.words[(i % CHUNK) / 64];
            // The woken tasks of this word at or after `i`.
            let pending = word.load(Ordering::Acquire) & (u64::MAX << (i % 64));
            if pending == 0 {
                i = (i / 64 + 1) * 64;
                continue;
            }
            let at = (i / 64) * 64 + pending.trailing_zeros() as usize;
            if at >= count {
                break;
            }
            i = at + 1;
            let bit = 1u64 << (at % 64);
            if word.fetch_and(!bit, Ordering::AcqRel) & bit == 0 {
                continue;
            }
            // Take the task out while it runs: it may spawn (which borrows `spawned`, not
            // `tasks`) or drop other handles. A free slot's bit is a stale wake: ignored.
            let task = self.tasks.borrow_mut()[at].take();
            let Some(mut task) = task else { continue };
            polled += 1;
            let done = task.future.as_mut().poll(&mut Context::from_waker(&task.waker)).is_ready();
            if done {
                self.live_tasks.set(self.live_tasks.get() - 1);
                self.free.borrow_mut().push(Reverse(at));
            } else {
                self.tasks.borrow_mut()[at] = Some(task);
            }
        }
        polled
    }

    /// Whether a task was spawned or woken (during a pass, a task may wake one polled before it).
    fn any_woken(&self) -> bool {
        if !self.spawned.borrow().is_empty() {
            return true;
        }
        let count = self.tasks.borrow().len();
        let ready = self.ready.borrow();
        // Bits of free slots may be set (stale wakes): they count, at the cost of one extra pass.
        ready
            .iter()
            .flat_map(|b| b.words.iter())
            .take(count.div_ceil(64))
            .any(|w| w.load(Ordering::Acquire) != 0)
    }

    /// Wake every timer that is due; how many were.
    fn fire_timers(&self) -> usize {
        let now = self.time.now();
        let mut due = Vec::new();
        self.timers.borrow_mut().take_due(now, &mut due);
        let fired = due.len();
        due.into_iter().for_each(Waker::wake);
        fired
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
        self.core.live_tasks.set(self.core.live_tasks.get() + 1);
        self.core.spawned.borrow_mut().push(Box::pin(task));
    }
}

impl<T: TimeSource> Clock for Handle<T> {
    fn now(&self) -> Instant {
        self.core.time.now()
    }

    fn wake_at(&self, at: Instant, waker: &Waker) {
        self.core.timers.borrow_mut().add(at, waker);
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
    heap: Option<fn() -> Option<HeapUsage>>,
}

impl<T: TimeSource, E: Entropy> RtPlatform<T, E> {
    /// Bundle `handle` with `entropy`.
    pub fn new(handle: Handle<T>, entropy: E) -> Self {
        Self { handle, entropy: Rc::new(entropy), heap: None }
    }

    /// The same, with `heap` answering [`Platform::heap`] (a target whose heap has a known size).
    pub fn with_heap(self, heap: fn() -> Option<HeapUsage>) -> Self {
        Self { heap: Some(heap), ..self }
    }

    /// The executor handle.
    pub fn handle(&self) -> &Handle<T> {
        &self.handle
    }
}

impl<T: TimeSource, E: Entropy> Clone for RtPlatform<T, E> {
    fn clone(&self) -> Self {
        Self { handle: self.handle.clone(), entropy: self.entropy.clone(), heap: self.heap }
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

    fn heap(&self) -> Option<HeapUsage> {
        self.heap.and_then(|f| f())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Noop;

    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    #[test]
    fn timers_match_a_simple_model_under_random_registrations_and_firings() {
        let mut timers = Timers::default();
        let wakers: Vec<Waker> = (0..3000).map(|_| Waker::from(Arc::new(Noop))).collect();
        let index: alloc::collections::BTreeMap<usize, usize> =
            wakers.iter().enumerate().map(|(i, w)| (w.data() as usize, i)).collect();
        // The model: waker -> earliest deadline.
        let mut model: alloc::collections::BTreeMap<usize, u64> = alloc::collections::BTreeMap::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut now = 0u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w = (x % 3000) as usize;
            if x.is_multiple_of(10) {
                now += x % 50;
                let mut due = Vec::new();
                timers.take_due(Instant::from_millis(now), &mut due);
                let mut got: Vec<usize> = due.iter().map(|w| index[&(w.data() as usize)]).collect();
                let mut want: Vec<usize> =
                    model.iter().filter(|(_, at)| **at <= now).map(|(w, _)| *w).collect();
                model.retain(|_, at| *at > now);
                got.sort_unstable();
                want.sort_unstable();
                assert_eq!(got, want, "due at {now}");
            } else {
                let at = now + x % 1000;
                timers.add(Instant::from_millis(at), &wakers[w]);
                let e = model.entry(w).or_insert(at);
                *e = (*e).min(at);
            }
            assert_eq!(timers.len(), model.len());
            assert_eq!(timers.next(), model.values().min().map(|at| Instant::from_millis(*at)));
        }
    }
}
