//! The event loop: one epoll instance per thread, parked on by the executor.
//!
//! Devices register their file descriptors with the thread's [`Reactor`] (through [`Async`]).
//! An operation that would block stores the task's waker with the registration; when the
//! executor has nothing to run it calls [`ReactorPark::park`], which waits in `epoll_wait` until
//! an fd is ready or the next timer is due, and wakes the tasks whose fds became ready. An idle
//! app therefore sleeps in the kernel and burns no CPU.
//!
//! Registrations are edge-triggered: a task only waits after the system call said `EAGAIN`, and
//! events are only collected while parked, so the edge that follows an `EAGAIN` is never missed.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use morgana::Instant;
use morgana_rt::{Park, Stalled, TimeSource};

use crate::sys;
use crate::time::SystemTime;

#[derive(Default)]
struct Slot {
    reader: Option<Waker>,
    writer: Option<Waker>,
}

struct Inner {
    epoll: OwnedFd,
    /// Indexed by token; `None` slots are free.
    slots: RefCell<Vec<Option<Slot>>>,
    /// Tokens of the free slots.
    free: RefCell<Vec<usize>>,
}

/// The thread's event loop (a cheap handle; clones share it).
#[derive(Clone)]
pub struct Reactor {
    inner: Rc<Inner>,
}

thread_local! {
    static CURRENT: RefCell<Option<Reactor>> = const { RefCell::new(None) };
}

impl Reactor {
    /// The calling thread's reactor, created on first use.
    pub fn current() -> io::Result<Reactor> {
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            if let Some(r) = &*c {
                return Ok(r.clone());
            }
            let r = Reactor {
                inner: Rc::new(Inner {
                    epoll: sys::epoll_create()?,
                    slots: RefCell::default(),
                    free: RefCell::default(),
                }),
            };
            *c = Some(r.clone());
            Ok(r)
        })
    }

    /// Watch `fd`; the caller deregisters it before closing it.
    fn register(&self, fd: BorrowedFd<'_>) -> io::Result<Registration> {
        let token = {
            let mut slots = self.inner.slots.borrow_mut();
            match self.inner.free.borrow_mut().pop() {
                Some(i) => {
                    slots[i] = Some(Slot::default());
                    i
                }
                None => {
                    slots.push(Some(Slot::default()));
                    slots.len() - 1
                }
            }
        };
        if let Err(e) = sys::epoll_add(self.inner.epoll.as_fd(), fd, token as u64) {
            self.inner.slots.borrow_mut()[token] = None;
            self.inner.free.borrow_mut().push(token);
            return Err(e);
        }
        Ok(Registration { reactor: self.clone(), token })
    }

    /// How many registrations have a task waiting on them.
    pub fn waiting(&self) -> usize {
        self.inner
            .slots
            .borrow()
            .iter()
            .flatten()
            .filter(|s| s.reader.is_some() || s.writer.is_some())
            .count()
    }

    /// Wait until an fd is ready or `timeout` passes (`None`: no limit), and wake the tasks
    /// waiting on the ready fds; how many fds were ready.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let ms = match timeout {
            None => -1,
            // Round up: waking a little early would only spin until the deadline.
            Some(t) => i32::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
        };
        // Up to 256 ready fds per wait: a server with thousands of busy connections makes fewer
        // calls, and each pass of the run loop serves more of them.
        let mut events = [sys::Event::EMPTY; 256];
        let n = match sys::epoll_wait(self.inner.epoll.as_fd(), &mut events, ms) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut wake = Vec::new();
        {
            let mut slots = self.inner.slots.borrow_mut();
            for ev in &events[..n] {
                let Some(Some(slot)) = slots.get_mut(ev.token() as usize) else { continue };
                if ev.readable() {
                    wake.extend(slot.reader.take());
                }
                if ev.writable() {
                    wake.extend(slot.writer.take());
                }
            }
        }
        wake.into_iter().for_each(Waker::wake);
        Ok(n)
    }
}

/// A file descriptor watched by the reactor: the slot its wakers wait in.
struct Registration {
    reactor: Reactor,
    token: usize,
}

impl Registration {
    fn deregister(&self, fd: BorrowedFd<'_>) {
        // Closing the fd would drop it from the epoll set too, but only once no duplicate of
        // it is left open: say so explicitly.
        let _ = sys::epoll_del(self.reactor.inner.epoll.as_fd(), fd);
        if let Some(slot) = self.reactor.inner.slots.borrow_mut().get_mut(self.token)
            && slot.take().is_some()
        {
            self.reactor.inner.free.borrow_mut().push(self.token);
        }
    }

    fn with_slot(&self, f: impl FnOnce(&mut Slot)) {
        if let Some(Some(slot)) = self.reactor.inner.slots.borrow_mut().get_mut(self.token) {
            f(slot)
        }
    }

    /// Wake `waker` when the fd becomes readable (replacing any earlier reader).
    fn wait_readable(&self, waker: &Waker) {
        self.with_slot(|s| match &mut s.reader {
            Some(w) => w.clone_from(waker),
            none => *none = Some(waker.clone()),
        })
    }

    /// Wake `waker` when the fd becomes writable (replacing any earlier writer).
    fn wait_writable(&self, waker: &Waker) {
        self.with_slot(|s| match &mut s.writer {
            Some(w) => w.clone_from(waker),
            none => *none = Some(waker.clone()),
        })
    }
}

/// An I/O object registered with the thread's reactor. The object must be in non-blocking mode.
pub struct Async<T: AsFd> {
    reg: Registration,
    io: T,
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        // Runs before the fields drop, so the fd is still open.
        self.reg.deregister(self.io.as_fd());
    }
}

impl<T: AsFd> Async<T> {
    /// Register `io` with the calling thread's reactor.
    pub fn new(io: T) -> io::Result<Self> {
        let reg = Reactor::current()?.register(io.as_fd())?;
        Ok(Self { reg, io })
    }

    /// The wrapped object.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// Run `op` until it does not return `WouldBlock`; then wait for readability.
    pub fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.reg.wait_readable(cx.waker());
                    return Poll::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    /// Run `op` until it does not return `WouldBlock`; then wait for writability.
    pub fn poll_write_with<R>(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.reg.wait_writable(cx.waker());
                    return Poll::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    /// Wake the task of `cx` when the fd next becomes readable.
    pub fn wake_when_readable(&self, cx: &mut Context<'_>) {
        self.reg.wait_readable(cx.waker());
    }

    /// [`Async::poll_read_with`] as a future.
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_read_with(cx, &mut op)).await
    }

    /// [`Async::poll_write_with`] as a future.
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_write_with(cx, &mut op)).await
    }
}

/// The unix [`Park`]: waits in epoll until an fd is ready or the next timer is due.
pub struct ReactorPark {
    reactor: Reactor,
    time: SystemTime,
}

impl ReactorPark {
    /// A park on `reactor` for executors reading `time`.
    pub fn new(reactor: Reactor, time: SystemTime) -> Self {
        Self { reactor, time }
    }
}

impl Park for ReactorPark {
    fn park(&mut self, deadline: Option<Instant>) -> Result<(), Stalled> {
        let timeout = match deadline {
            Some(at) => Some(at.saturating_duration_since(self.time.now())),
            // Nothing could ever wake a task: the app is stuck, say so instead of hanging.
            None if self.reactor.waiting() == 0 => return Err(Stalled::Deadlock { at: self.time.now() }),
            None => None,
        };
        if let Err(e) = self.reactor.wait(timeout) {
            // epoll_wait only fails on programming errors (bad fd, bad buffer); do not spin.
            log::error!("epoll_wait failed: {e}");
            std::thread::sleep(timeout.unwrap_or(Duration::from_millis(100)));
        }
        Ok(())
    }
}
