//! The event trace: everything that happened in a world, in order, and its hash.
//!
//! Every frame sent, dropped, duplicated, corrupted and delivered, every step of a node (tasks
//! polled, timers fired), every crash and boot, what each app's I/O returned, and the faults a
//! scenario turned on. The hash folds each event as it happens, so a run of millions of events
//! costs no memory unless the events are kept ([`Trace::record`]): for a trace file, or for a
//! determinism check that compares a second run against the first event by event. Logging is
//! not an event: the log level and format cannot change the hash.

use std::fmt;

use morgana::Instant;

/// Why a frame did not arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropWhy {
    /// Lost on the link (the link's loss probability).
    Loss,
    /// The link is cut (a partition).
    Partition,
    /// The receiving node is down (crashed, not restarted).
    Down,
    /// The receiver's queue was full.
    Queue,
}

/// An I/O operation an app made on a device the simulator gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOp {
    /// `TcpStack::connect`.
    Connect,
    /// `TcpStack::listen`.
    Listen,
    /// `TcpListener::accept`.
    Accept,
    /// A read on a connection.
    Read,
    /// A write on a connection.
    Write,
    /// A half-close (FIN).
    Shutdown,
    /// A name resolution.
    Resolve,
    /// `Block::read`.
    BlockRead,
    /// `Block::write`.
    BlockWrite,
    /// `Block::flush`.
    Flush,
}

/// One thing that happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A frame entered the link `from` → `to`; `digest` is a hash of its bytes.
    Sent {
        /// Frame number (every copy on every link has its own).
        seq: u64,
        /// Sending node.
        from: u16,
        /// Receiving node.
        to: u16,
        /// Length in bytes.
        len: u32,
        /// Hash of the bytes.
        digest: u64,
    },
    /// A frame did not arrive.
    Dropped {
        /// The frame.
        seq: u64,
        /// Why.
        why: DropWhy,
    },
    /// A frame will arrive twice: `copy` is the second one's number.
    Duplicated {
        /// The frame.
        seq: u64,
        /// The copy.
        copy: u64,
    },
    /// A bit of a frame was flipped on the link.
    Corrupted {
        /// The frame.
        seq: u64,
        /// The bit.
        bit: u32,
    },
    /// A frame reached its receiver's queue.
    Delivered {
        /// The frame.
        seq: u64,
    },
    /// A node ran: tasks polled, timers fired.
    Ran {
        /// The node.
        node: u16,
        /// Task polls.
        polls: u32,
        /// Timers fired.
        timers: u32,
    },
    /// A node booted (`boot` 0 is the first start).
    Boot {
        /// The node.
        node: u16,
        /// Boots before this one.
        boot: u32,
    },
    /// A node's app could not start, or finished: its exit status.
    Exit {
        /// The node.
        node: u16,
        /// 0 success, 1 failure, 2 bad argument.
        code: u8,
    },
    /// A node crashed: memory lost; of the disk's unflushed sectors, `lost` reverted and
    /// `torn` half written.
    Crash {
        /// The node.
        node: u16,
        /// Sectors written since the last flush.
        unflushed: u32,
        /// Of those, reverted.
        lost: u32,
        /// Of those, torn.
        torn: u32,
    },
    /// An app's I/O returned: a byte count or a count of things (`Ok`), or an error code.
    Io {
        /// The node.
        node: u16,
        /// The operation.
        op: IoOp,
        /// The connection (or 0).
        conn: u32,
        /// `Ok(n)` or `Err(code)`.
        result: Result<u32, u16>,
    },
    /// The links between two nodes changed: cut (`up: false`) or healed, one way `from` → `to`.
    Link {
        /// Sending side.
        from: u16,
        /// Receiving side.
        to: u16,
        /// Whether frames pass.
        up: bool,
    },
    /// Something a scenario's checker or director wants in the trace (a client's result).
    Note {
        /// The node, or `u16::MAX` for the director.
        node: u16,
        /// A scenario-defined value.
        value: u64,
    },
}

/// An event and when it happened (world time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// World time.
    pub at: Instant,
    /// What.
    pub event: Event,
}

/// A fast, deterministic 64-bit hash of bytes (not cryptographic: the trace needs to notice
/// a difference, not to resist an adversary).
pub fn digest(bytes: &[u8]) -> u64 {
    let mut h = Fold::new(bytes.len() as u64);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h.word(u64::from_le_bytes(c.try_into().unwrap_or_default()));
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h.word(u64::from_le_bytes(tail));
    h.finish()
}

/// Folds words into 64 bits (a multiply-rotate mix).
#[derive(Debug, Clone, Copy)]
struct Fold(u64);

impl Fold {
    fn new(seed: u64) -> Self {
        Self(seed ^ 0x243f_6a88_85a3_08d3)
    }
    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    }
    fn finish(self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^ (x >> 33)
    }
}

impl Record {
    /// The record as words, for the hash.
    fn fold(&self, h: &mut Fold) {
        let word = |h: &mut Fold, tag: u64, a: u64, b: u64, c: u64| {
            for w in [tag, a, b, c] {
                h.word(w);
            }
        };
        h.word(self.at.as_nanos());
        match self.event {
            Event::Sent { seq, from, to, len, digest } => {
                word(h, 1, seq, u64::from(from) << 32 | u64::from(to), u64::from(len) ^ digest.rotate_left(7))
            }
            Event::Dropped { seq, why } => word(h, 2, seq, why as u64, 0),
            Event::Duplicated { seq, copy } => word(h, 3, seq, copy, 0),
            Event::Corrupted { seq, bit } => word(h, 4, seq, u64::from(bit), 0),
            Event::Delivered { seq } => word(h, 5, seq, 0, 0),
            Event::Ran { node, polls, timers } => word(h, 6, node.into(), polls.into(), timers.into()),
            Event::Boot { node, boot } => word(h, 7, node.into(), boot.into(), 0),
            Event::Exit { node, code } => word(h, 8, node.into(), code.into(), 0),
            Event::Crash { node, unflushed, lost, torn } => {
                word(h, 9, node.into(), u64::from(unflushed) << 32 | u64::from(lost), torn.into())
            }
            Event::Io { node, op, conn, result } => {
                let r = match result {
                    Ok(n) => u64::from(n),
                    Err(e) => 1 << 63 | u64::from(e),
                };
                word(h, 10, u64::from(node) << 32 | op as u64, conn.into(), r)
            }
            Event::Link { from, to, up } => word(h, 11, from.into(), to.into(), up.into()),
            Event::Note { node, value } => word(h, 12, node.into(), value, 0),
        }
    }
}

fn node_name(n: u16) -> String {
    if n == u16::MAX { "director".into() } else { format!("n{n}") }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.at.as_nanos();
        write!(f, "[{:5}.{:09}] ", ns / 1_000_000_000, ns % 1_000_000_000)?;
        match self.event {
            Event::Sent { seq, from, to, len, digest } => {
                write!(f, "sent #{seq} n{from}->n{to} {len} B {digest:016x}")
            }
            Event::Dropped { seq, why } => write!(f, "dropped #{seq}: {why:?}"),
            Event::Duplicated { seq, copy } => write!(f, "duplicated #{seq} as #{copy}"),
            Event::Corrupted { seq, bit } => write!(f, "corrupted #{seq} bit {bit}"),
            Event::Delivered { seq } => write!(f, "delivered #{seq}"),
            Event::Ran { node, polls, timers } => {
                write!(f, "{} ran: {polls} polls, {timers} timers", node_name(node))
            }
            Event::Boot { node, boot } => write!(f, "n{node} boot {boot}"),
            Event::Exit { node, code } => write!(f, "n{node} exit {code}"),
            Event::Crash { node, unflushed, lost, torn } => {
                write!(f, "n{node} crash: {unflushed} unflushed sectors, {lost} lost, {torn} torn")
            }
            Event::Io { node, op, conn, result } => match result {
                Ok(n) => write!(f, "n{node} {op:?} c{conn} -> {n}"),
                Err(e) => write!(f, "n{node} {op:?} c{conn} -> error {e}"),
            },
            Event::Link { from, to, up } => {
                write!(f, "link n{from}->n{to} {}", if up { "up" } else { "cut" })
            }
            Event::Note { node, value } => write!(f, "{} note {value:#x}", node_name(node)),
        }
    }
}

/// Where a second run first differed from the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// Index of the first differing event.
    pub index: u64,
    /// What the first run had there (`None`: it had ended).
    pub expected: Option<Record>,
    /// What this run had (`None`: it ended first).
    pub got: Option<Record>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |r: &Option<Record>| r.map_or("(end of trace)".to_string(), |r| r.to_string());
        write!(
            f,
            "first diverging event #{}: first run {}, second run {}",
            self.index,
            show(&self.expected),
            show(&self.got)
        )
    }
}

/// The trace of one run.
#[derive(Debug)]
pub struct Trace {
    hash: Fold,
    count: u64,
    kept: Option<Vec<Record>>,
    against: Option<Vec<Record>>,
    divergence: Option<Divergence>,
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

impl Trace {
    /// A trace that keeps only the hash.
    pub fn new() -> Self {
        Self { hash: Fold::new(0), count: 0, kept: None, against: None, divergence: None }
    }

    /// Keep every event as well (for a trace file, or as the reference of a determinism check).
    pub fn record(mut self) -> Self {
        self.kept = Some(Vec::new());
        self
    }

    /// Compare every event with `reference` (a first run's), noting the first difference.
    pub fn compare(mut self, reference: Vec<Record>) -> Self {
        self.against = Some(reference);
        self
    }

    /// Add an event.
    pub fn push(&mut self, at: Instant, event: Event) {
        let r = Record { at, event };
        r.fold(&mut self.hash);
        if self.divergence.is_none()
            && let Some(reference) = &self.against
        {
            let expected = reference.get(self.count as usize).copied();
            if expected != Some(r) {
                self.divergence = Some(Divergence { index: self.count, expected, got: Some(r) });
            }
        }
        self.count += 1;
        if let Some(k) = &mut self.kept {
            k.push(r);
        }
    }

    /// Events so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether nothing happened.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The hash of every event so far, with their count.
    pub fn hash(&self) -> u64 {
        let mut h = self.hash;
        h.word(self.count);
        h.finish()
    }

    /// The kept events (with [`record`](Self::record)).
    pub fn events(&self) -> Option<&[Record]> {
        self.kept.as_deref()
    }

    /// Take the kept events.
    pub fn take_events(&mut self) -> Option<Vec<Record>> {
        self.kept.take()
    }

    /// Where this run first differed from the reference, once it has ended.
    pub fn divergence(&self) -> Option<Divergence> {
        if let Some(d) = &self.divergence {
            return Some(d.clone());
        }
        let reference = self.against.as_ref()?;
        (reference.len() as u64 > self.count).then(|| Divergence {
            index: self.count,
            expected: reference.get(self.count as usize).copied(),
            got: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(node: u16) -> Event {
        Event::Ran { node, polls: 1, timers: 0 }
    }

    #[test]
    fn the_same_events_hash_the_same_and_any_change_shows() {
        let run = |events: &[(u64, Event)]| {
            let mut t = Trace::new();
            for (at, e) in events {
                t.push(Instant::from_millis(*at), *e);
            }
            t.hash()
        };
        let a = [(1, ran(0)), (2, Event::Delivered { seq: 3 })];
        assert_eq!(run(&a), run(&a));
        assert_ne!(run(&a), run(&[(1, ran(0)), (3, Event::Delivered { seq: 3 })]), "a time");
        assert_ne!(run(&a), run(&[(1, ran(1)), (2, Event::Delivered { seq: 3 })]), "a field");
        assert_ne!(run(&a), run(&a[..1]), "a missing event");
        assert_ne!(digest(b"frame one"), digest(b"frame onf"));
        assert_ne!(digest(&[0; 9]), digest(&[0; 10]), "the length counts");
    }

    #[test]
    fn a_comparison_names_the_first_diverging_event() {
        let mut first = Trace::new().record();
        for i in 0..5 {
            first.push(Instant::from_millis(i), ran(0));
        }
        let reference = first.take_events().unwrap();
        let mut second = Trace::new().compare(reference.clone());
        for i in 0..5 {
            second.push(Instant::from_millis(i), ran(u16::from(i == 3)));
        }
        let d = second.divergence().expect("the runs differ");
        assert_eq!(
            (d.index, d.expected, d.got),
            (3, Some(reference[3]), Some(Record { at: Instant::from_millis(3), event: ran(1) }))
        );
        assert!(
            d.to_string().starts_with("first diverging event #3: first run [    0.003000000] n0 ran"),
            "{d}"
        );
        let mut short = Trace::new().compare(reference);
        short.push(Instant::ZERO, ran(0));
        assert_eq!(short.divergence().unwrap().got, None, "a run that ends early diverges too");
    }
}
