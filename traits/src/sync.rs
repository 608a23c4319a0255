//! A first-come, first-served async lock for one thread.
//!
//! A unikernel runs its tasks on one core, so sharing a device between tasks needs no atomics,
//! only turns: a [`Block`](crate::Block) reads through `&mut`, and a store's readers (one per
//! connection in a web server) queue at it. [`Lock`] hands the value to its takers in the order
//! they asked, and a taker dropped before its turn (a cancelled request) gives its place up
//! without stalling the ones behind it.
//!
//! ```
//! use morgana::sync::Lock;
//! # futures::executor::block_on(async {
//! let disk = Lock::new(vec![0u8; 512]);
//! disk.lock().await[0] = 7;
//! assert_eq!(disk.lock().await[0], 7);
//! # });
//! ```

use alloc::collections::BTreeMap;
use core::cell::{Cell, RefCell, RefMut};
use core::future::poll_fn;
use core::ops::{Deref, DerefMut};
use core::task::{Poll, Waker};

/// A value that tasks of one executor take turns at, first come, first served.
pub struct Lock<T> {
    value: RefCell<T>,
    held: Cell<bool>,
    next: Cell<u64>,
    /// Waiting takers in arrival order, each with the waker of its last poll.
    queue: RefCell<BTreeMap<u64, Option<Waker>>>,
}

/// The value while the lock is held; dropping it hands the lock to the next taker.
pub struct Guard<'a, T> {
    lock: &'a Lock<T>,
    value: Option<RefMut<'a, T>>,
}

/// A place in the queue; dropped before its turn, it gives the place up.
struct Place<'a, T> {
    lock: &'a Lock<T>,
    number: u64,
}

impl<T> Lock<T> {
    /// An unlocked lock around `value`.
    pub fn new(value: T) -> Self {
        Self {
            value: RefCell::new(value),
            held: Cell::new(false),
            next: Cell::new(0),
            queue: RefCell::default(),
        }
    }

    /// The value, once nobody can hold the lock.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }

    /// Wait until every earlier taker has had its turn, then hold the lock.
    pub async fn lock(&self) -> Guard<'_, T> {
        let place = Place { lock: self, number: self.next.get() };
        self.next.set(place.number + 1);
        self.queue.borrow_mut().insert(place.number, None);
        poll_fn(|cx| {
            let mut queue = self.queue.borrow_mut();
            let first = queue.keys().next().copied();
            if !self.held.get() && first == Some(place.number) {
                queue.remove(&place.number);
                self.held.set(true);
                Poll::Ready(())
            } else {
                queue.insert(place.number, Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
        core::mem::forget(place);
        // The turn is ours and the last guard is gone, so no other borrow is live.
        Guard { lock: self, value: Some(self.value.borrow_mut()) }
    }

    /// Wake the first taker still waiting.
    fn wake_first(&self) {
        if let Some(Some(w)) = self.queue.borrow().values().next() {
            w.wake_by_ref();
        }
    }
}

impl<T> Drop for Place<'_, T> {
    fn drop(&mut self) {
        self.lock.queue.borrow_mut().remove(&self.number);
        self.lock.wake_first();
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.value = None;
        self.lock.held.set(false);
        self.lock.wake_first();
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_ref().expect("held until drop")
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value.as_mut().expect("held until drop")
    }
}
