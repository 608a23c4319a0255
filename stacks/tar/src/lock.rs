//! A first-come, first-served async lock for one thread: a `Block` reads through `&mut`, and
//! the store's readers (one per connection in a web server) take turns at it.

use alloc::collections::BTreeMap;
use core::cell::{Cell, RefCell, RefMut};
use core::future::poll_fn;
use core::ops::{Deref, DerefMut};
use core::task::{Poll, Waker};

/// The lock and what it guards.
pub(crate) struct Lock<T> {
    value: RefCell<T>,
    held: Cell<bool>,
    next: Cell<u64>,
    /// Waiting takers in arrival order, each with the waker of its last poll.
    queue: RefCell<BTreeMap<u64, Option<Waker>>>,
}

/// Holds the lock until dropped.
pub(crate) struct Guard<'a, T> {
    lock: &'a Lock<T>,
    value: Option<RefMut<'a, T>>,
}

/// A place in the queue; dropped before its turn (a cancelled read), it gives the place up.
struct Place<'a, T> {
    lock: &'a Lock<T>,
    number: u64,
}

impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            value: RefCell::new(value),
            held: Cell::new(false),
            next: Cell::new(0),
            queue: RefCell::default(),
        }
    }

    pub(crate) fn into_inner(self) -> T {
        self.value.into_inner()
    }

    /// Wait for every earlier taker, then hold the lock.
    pub(crate) async fn lock(&self) -> Guard<'_, T> {
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
