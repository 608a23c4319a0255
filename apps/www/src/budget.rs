//! The heap kept for TLS: rustls allocates infallibly, so a handshake that finds the heap full
//! is an out-of-memory abort, not an error. `www` charges each TLS connection (a handshake in
//! flight, then its session) [`CONNECTION_HEAP`] and holds at most
//! [`TlsBudget::connections`] of them at once, derived from the heap's size; and it starts a new
//! handshake only while the heap can still give one connection's charge now (a fallible
//! allocation, as `morgana-tcpip` checks its reserve). While either is short, new TLS
//! connections wait unaccepted in the listen backlog, the open ones keep being served, and this
//! is logged at most once per [`REPORT_EVERY`].

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::task::{Context, Waker};

use morgana::{Clock, Duration, HeapUsage};

use crate::Stats;
use crate::admission::{Gate, REPORT_EVERY, Throttle};

/// The heap charged to one TLS connection: the most a server handshake in flight or an
/// established session holds at once (`morgana_tls::SERVER_HANDSHAKE_HEAP` and
/// `SESSION_HEAP`, 48 and 80 KiB, measured for both providers).
pub const CONNECTION_HEAP: usize = if morgana_tls::SESSION_HEAP > morgana_tls::SERVER_HANDSHAKE_HEAP {
    morgana_tls::SESSION_HEAP
} else {
    morgana_tls::SERVER_HANDSHAKE_HEAP
};

/// How often a budget that is short because the heap is checks again, when no TLS connection
/// ends meanwhile (the heap may have been freed elsewhere: TCP buffers, plain HTTP).
const RETRY: Duration = Duration::from_millis(100);

/// TLS connections in service, against a budget derived from the heap.
pub struct TlsBudget<C> {
    max: usize,
    clock: C,
    live: Cell<usize>,
    waiting: RefCell<Vec<Waker>>,
    short: RefCell<Throttle>,
    stats: Rc<Stats>,
}

impl<C: Clock> TlsBudget<C> {
    /// A budget for a heap of `heap` (`None`: no known size, as on a host, where only the heap's
    /// live check applies): half of what is free at start, in [`CONNECTION_HEAP`]s (at least
    /// one). The other half is for what each connection holds besides TLS (its TCP buffers,
    /// which `morgana-tcpip` takes fallibly and grows only while its own reserve stays free) and
    /// for the requests being answered. `stats` counts the connections held and the waits.
    pub fn new(heap: Option<HeapUsage>, clock: C, stats: Rc<Stats>) -> Rc<Self> {
        let max = heap.map_or(usize::MAX, |h| (h.size.saturating_sub(h.used) / 2 / CONNECTION_HEAP).max(1));
        Rc::new(Self {
            max,
            clock,
            live: Cell::new(0),
            waiting: RefCell::default(),
            short: RefCell::default(),
            stats,
        })
    }

    /// TLS connections held at once at most (`usize::MAX` when the heap's size is unknown).
    pub fn connections(&self) -> usize {
        self.max
    }

    /// Whether the heap can give one more connection's charge now, beside what is in use.
    fn heap_has_room() -> bool {
        let mut probe: Vec<u8> = Vec::new();
        probe.try_reserve_exact(CONNECTION_HEAP).is_ok()
    }

    fn release(&self) {
        self.live.set(self.live.get() - 1);
        self.stats.tls_open.set(self.live.get() as u64);
        self.waiting.borrow_mut().drain(..).for_each(Waker::wake);
    }
}

impl<C: Clock> Gate for Rc<TlsBudget<C>> {
    type Charge = Charge<C>;

    fn poll_room(&self, cx: &mut Context<'_>) -> bool {
        let live = self.live.get();
        let at_max = live >= self.max;
        if !at_max && TlsBudget::<C>::heap_has_room() {
            return true;
        }
        let mut waiting = self.waiting.borrow_mut();
        if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
            waiting.push(cx.waker().clone());
            self.stats.waited.add();
        }
        let now = self.clock.now();
        if !at_max {
            self.clock.wake_at(now + RETRY, cx.waker());
        }
        if let Some((times, since)) = self.short.borrow_mut().hit(now) {
            let why = if at_max {
                alloc::format!("{live} TLS connections open, the budget for this heap")
            } else {
                alloc::format!("the heap cannot give a handshake's {} KiB", CONNECTION_HEAP / 1024)
            };
            match since {
                None => log::warn!(
                    "{why}: new TLS handshakes wait in the listen backlog until one ends (reported at most every {} s)",
                    REPORT_EVERY.as_secs()
                ),
                Some(since) => log::warn!(
                    "TLS handshakes waited for heap {times} time(s) in the last {:.1} s; now {why}",
                    since.as_secs_f64()
                ),
            }
        }
        false
    }

    fn take(&self) -> Charge<C> {
        self.live.set(self.live.get() + 1);
        self.stats.tls_open.set(self.live.get() as u64);
        Charge(self.clone())
    }
}

/// One TLS connection's charge against the budget, given back when dropped.
pub struct Charge<C: Clock>(Rc<TlsBudget<C>>);

impl<C: Clock> Drop for Charge<C> {
    fn drop(&mut self) {
        self.0.release();
    }
}
