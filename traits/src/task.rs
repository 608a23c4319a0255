//! `TaskGroup`: spawn tasks and know how many are still running, with a limit to wait on.
//!
//! A server spawns a task per connection and must not take more than it can serve. A group
//! counts its tasks while they live (a [`Place`] each, given back when the task completes or
//! is dropped) and lets the acceptor wait until fewer than the limit run. [`TaskGroup::admit`]
//! polls a future (an `accept`) only while there is room, and takes the place in the same poll,
//! so two acceptors sharing one group never go past the limit. No `Send`, no threads: the group
//! is an `Rc` onto a count and the wakers of those waiting for it to drop.
//!
//! ```
//! use morgana::prelude::*;
//! use morgana::task::TaskGroup;
//!
//! /// Serve at most 100 connections at once; the others wait in the listen backlog.
//! async fn serve<P: Platform, S: TcpStack>(p: P, stack: S) -> Result<(), StackError> {
//!     let mut listener = stack.listen(7, 128).await?;
//!     let tasks = TaskGroup::new(p, 100);
//!     loop {
//!         let (accepted, place) = tasks.admit(listener.accept()).await;
//!         let (conn, _peer) = accepted?;
//!         tasks.spawn_in(place, async move {
//!             let _ = conn.close().await;
//!         });
//!     }
//! }
//! ```

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use crate::platform::Spawn;

/// Tasks spawned through one spawner, counted while they run, with a limit to wait on.
///
/// Clones share the count: hand one to each acceptor.
pub struct TaskGroup<S> {
    spawner: S,
    shared: Rc<Shared>,
}

struct Shared {
    live: Cell<usize>,
    limit: usize,
    /// Tasks waiting for the count to drop.
    waiting: RefCell<Vec<Waker>>,
}

impl Shared {
    fn release(&self) {
        self.live.set(self.live.get() - 1);
        self.waiting.borrow_mut().drain(..).for_each(Waker::wake);
    }
}

/// One task's place in a [`TaskGroup`], counted until dropped.
#[must_use = "a place is given back when dropped: move it into the task with `spawn_in`"]
pub struct Place(Rc<Shared>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl fmt::Debug for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Place")
    }
}

impl<S: Clone> Clone for TaskGroup<S> {
    fn clone(&self) -> Self {
        Self { spawner: self.spawner.clone(), shared: self.shared.clone() }
    }
}

impl<S> fmt::Debug for TaskGroup<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup").field("live", &self.live()).field("limit", &self.limit()).finish()
    }
}

impl<S> TaskGroup<S> {
    /// A group spawning on `spawner` that [`TaskGroup::admit`] keeps to `limit` tasks (at least
    /// one).
    pub fn new(spawner: S, limit: usize) -> Self {
        let shared = Shared { live: Cell::new(0), limit: limit.max(1), waiting: RefCell::default() };
        Self { spawner, shared: Rc::new(shared) }
    }

    /// A group with no limit: a count of live tasks.
    pub fn unlimited(spawner: S) -> Self {
        Self::new(spawner, usize::MAX)
    }

    /// Tasks (and unspent places) counted now.
    pub fn live(&self) -> usize {
        self.shared.live.get()
    }

    /// The limit [`TaskGroup::admit`] and [`TaskGroup::room`] keep to.
    pub fn limit(&self) -> usize {
        self.shared.limit
    }

    /// Take a place now, even at the limit (a task spawned with [`TaskGroup::spawn`] does).
    pub fn reserve(&self) -> Place {
        self.shared.live.set(self.shared.live.get() + 1);
        Place(self.shared.clone())
    }

    /// Ready if fewer than `n` are counted; if not, `cx`'s task is woken when one ends.
    pub fn poll_fewer_than(&self, n: usize, cx: &mut Context<'_>) -> Poll<()> {
        if self.live() < n {
            return Poll::Ready(());
        }
        let mut waiting = self.shared.waiting.borrow_mut();
        if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
            waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Ready if there is room under the limit; if not, `cx`'s task is woken when one ends.
    pub fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_fewer_than(self.limit(), cx)
    }

    /// Wait until fewer than `n` are counted (`until_fewer_than(1)`: until all have ended).
    pub async fn until_fewer_than(&self, n: usize) {
        poll_fn(|cx| self.poll_fewer_than(n, cx)).await
    }

    /// Wait until there is room under the limit. Another task may take it before this one
    /// spawns if it awaits anything in between: [`TaskGroup::admit`] does not leave that gap.
    pub async fn room(&self) {
        poll_fn(|cx| self.poll_room(cx)).await
    }

    /// Poll `fut` only while there is room under the limit, and take a place in the poll in
    /// which it completes: its output and the place to spawn its task in. An `accept` admitted
    /// so leaves connections in the listen backlog while the group is full.
    pub async fn admit<F: Future>(&self, fut: F) -> (F::Output, Place) {
        let mut fut = pin!(fut);
        poll_fn(|cx| {
            if self.poll_room(cx).is_pending() {
                return Poll::Pending;
            }
            fut.as_mut().poll(cx).map(|out| (out, self.reserve()))
        })
        .await
    }
}

impl<S: Spawn> TaskGroup<S> {
    /// Start `task` in a new place (even at the limit), counted until it completes.
    pub fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        self.spawn_in(self.reserve(), task);
    }

    /// Start `task` in `place` (from [`TaskGroup::admit`] or [`TaskGroup::reserve`]), counted
    /// until it completes or the executor drops it.
    pub fn spawn_in(&self, place: Place, task: impl Future<Output = ()> + 'static) {
        self.spawner.spawn(async move {
            let _place = place;
            task.await
        });
    }
}
