//! A first-come, first-served async lock for one thread: the store's operations take turns at
//! the device, and writers that queue behind a commit are committed together by the next one.

use alloc::collections::{BTreeMap, BTreeSet};
use core::cell::{Cell, RefCell, RefMut};
use core::future::poll_fn;
use core::ops::{Deref, DerefMut};
use core::task::{Poll, Waker};

/// The lock and what it guards.
pub struct Lock<T> {
    value: RefCell<T>,
    next: Cell<u64>,
    serving: Cell<u64>,
    waiting: RefCell<BTreeMap<u64, Waker>>,
    abandoned: RefCell<BTreeSet<u64>>,
}

/// Holds the lock until dropped.
pub struct Guard<'a, T> {
    lock: &'a Lock<T>,
    value: Option<RefMut<'a, T>>,
}

/// A place in the queue; dropping it before its turn gives the place up.
struct Ticket<'a, T> {
    lock: &'a Lock<T>,
    number: u64,
    served: bool,
}

impl<T> Lock<T> {
    /// An unlocked lock around `value`.
    pub fn new(value: T) -> Self {
        Self {
            value: RefCell::new(value),
            next: Cell::new(0),
            serving: Cell::new(0),
            waiting: RefCell::new(BTreeMap::new()),
            abandoned: RefCell::new(BTreeSet::new()),
        }
    }

    /// The value, once nobody can hold the lock.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }

    /// Wait for every earlier taker to finish, then hold the lock.
    pub async fn lock(&self) -> Guard<'_, T> {
        let mut ticket = Ticket { lock: self, number: self.next.get(), served: false };
        self.next.set(ticket.number + 1);
        poll_fn(|cx| {
            if self.serving.get() == ticket.number {
                Poll::Ready(())
            } else {
                self.waiting.borrow_mut().insert(ticket.number, cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        ticket.served = true;
        // The turn is ours, so no other borrow is live.
        Guard { lock: self, value: Some(self.value.borrow_mut()) }
    }

    /// Hand the lock to the next taker still waiting.
    fn advance(&self) {
        let mut s = self.serving.get() + 1;
        let mut abandoned = self.abandoned.borrow_mut();
        while abandoned.remove(&s) {
            s += 1;
        }
        self.serving.set(s);
        if let Some(w) = self.waiting.borrow_mut().remove(&s) {
            w.wake();
        }
    }
}

impl<T> Drop for Ticket<'_, T> {
    fn drop(&mut self) {
        if self.served {
            return;
        }
        self.lock.waiting.borrow_mut().remove(&self.number);
        if self.lock.serving.get() == self.number {
            self.lock.advance();
        } else {
            self.lock.abandoned.borrow_mut().insert(self.number);
        }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.value = None;
        self.lock.advance();
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
