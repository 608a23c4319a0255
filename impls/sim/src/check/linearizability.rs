//! Linearizability of a key-value history, by the Wing–Gong search with Lowe's memoisation
//! (the algorithm of Porcupine, `anishathalye/porcupine`'s `checker.go`).
//!
//! A history is the operations clients made, each with the time it was invoked and the time
//! its answer came back (or none: the client gave up, or its server crashed, so the operation
//! may or may not have taken effect). It is linearizable when every operation can be given one
//! instant between its invocation and its answer at which it took effect, such that the
//! answers are those of a single register per key applying them in that order. Keys are
//! independent (linearizability is compositional), so each key's history is searched on its
//! own: the search takes, among the operations whose invocation comes before every pending
//! answer, one that the register allows, and backtracks when an answer is reached before its
//! operation was taken; states already seen (the set of operations taken, the register's
//! value) are not searched twice.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// What a client asked of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Read the key: `Some(value)`, or `None` for absent. The answer is the value seen.
    Get(Option<u64>),
    /// Write `value`.
    Put(u64),
}

/// One operation of a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// Which client (for reports).
    pub client: u32,
    /// The key.
    pub key: u64,
    /// The operation and, for a read, what it returned.
    pub op: Op,
    /// When it was invoked (any monotonic unit: the world's nanoseconds).
    pub invoked: u64,
    /// When its answer came back; `None` if it never did (a read without an answer tells
    /// nothing and should be left out).
    pub returned: Option<u64>,
}

/// A key whose operations no single register explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: u64,
    /// Its operations, in invocation order.
    pub calls: Vec<Call>,
    /// How many of them (in invocation order) already fail: where to look.
    pub failing_prefix: usize,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.failing_prefix.clamp(1, self.calls.len());
        writeln!(
            f,
            "key {} is not linearizable: the first {end} of its {} operations already are not; the last of those:",
            self.key,
            self.calls.len()
        )?;
        // The operations just before the point of failure are what a reader needs.
        let skip = end.saturating_sub(30);
        if skip > 0 {
            writeln!(f, "  ... {skip} earlier ones")?;
        }
        for c in &self.calls[skip..end] {
            let ret = c.returned.map_or("never".to_string(), |r| format!("{:.6}", r as f64 / 1e9));
            let what = match c.op {
                Op::Get(Some(v)) => format!("get -> {v}"),
                Op::Get(None) => "get -> absent".to_string(),
                Op::Put(v) => format!("put {v}"),
            };
            writeln!(
                f,
                "  client {} {what}: invoked {:.6}, returned {ret}",
                c.client,
                c.invoked as f64 / 1e9
            )?;
        }
        Ok(())
    }
}

/// Check `history`; the first key (in key order) that is not linearizable.
pub fn linearizable(history: &[Call]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<u64, Vec<Call>> = BTreeMap::new();
    for c in history {
        by_key.entry(c.key).or_default().push(*c);
    }
    for (key, mut calls) in by_key {
        calls.sort_by_key(|c| (c.invoked, c.client));
        if !register(&calls) {
            // The shortest failing prefix, for the report (found by bisection: a prefix of a
            // history is usually, not always, as linearizable as more of it).
            let (mut ok, mut bad) = (0, calls.len());
            while bad - ok > 1 {
                let mid = (ok + bad) / 2;
                if register(&calls[..mid]) { ok = mid } else { bad = mid }
            }
            return Err(Violation { key, calls, failing_prefix: bad });
        }
    }
    Ok(())
}

/// Apply `op` to a register holding `state`: the new state, if the answer fits.
fn step(state: Option<u64>, op: Op) -> Option<Option<u64>> {
    match op {
        Op::Get(seen) => (seen == state).then_some(state),
        Op::Put(v) => Some(Some(v)),
    }
}

const NIL: usize = usize::MAX;

/// The Wing–Gong–Lowe search over one key's calls (a register starting absent).
fn register(calls: &[Call]) -> bool {
    if calls.is_empty() {
        return true;
    }
    // Entries: a call's invocation and its answer, by time; at equal times the invocation first
    // (the two overlap: the lenient reading).
    let mut entries: Vec<(u64, bool, usize)> = Vec::with_capacity(calls.len() * 2);
    for (i, c) in calls.iter().enumerate() {
        entries.push((c.invoked, false, i));
        entries.push((c.returned.unwrap_or(u64::MAX), true, i));
    }
    entries.sort_by_key(|&(t, is_return, i)| (t, is_return, i));
    let n = entries.len();
    // A doubly linked list over the entries, with a head at index n.
    let mut next: Vec<usize> = (1..=n).collect();
    next[n - 1] = NIL;
    next.push(if n == 0 { NIL } else { 0 });
    let mut prev: Vec<usize> = (0..n).map(|i| if i == 0 { n } else { i - 1 }).collect();
    prev.push(NIL);
    let head = n;
    let mut answer_of = vec![0usize; calls.len()];
    for (e, &(_, is_return, i)) in entries.iter().enumerate() {
        if is_return {
            answer_of[i] = e;
        }
    }
    let unlink = |e: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>| {
        let (p, q) = (prev[e], next[e]);
        next[p] = q;
        if q != NIL {
            prev[q] = p;
        }
    };
    let relink = |e: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>| {
        let (p, q) = (prev[e], next[e]);
        next[p] = e;
        if q != NIL {
            prev[q] = e;
        }
    };
    let words = calls.len().div_ceil(64);
    let mut taken = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut state: Option<u64> = None;
    let mut e = next[head];
    while next[head] != NIL {
        if e == NIL {
            // Only answers of pending calls can be left past the end of the list; unreachable
            // since every call's answer follows it.
            return false;
        }
        let (_, is_return, i) = entries[e];
        if !is_return {
            if let Some(after) = step(state, calls[i].op) {
                taken[i / 64] |= 1 << (i % 64);
                if seen.insert((taken.clone(), after)) {
                    stack.push((e, state));
                    state = after;
                    unlink(e, &mut next, &mut prev);
                    unlink(answer_of[i], &mut next, &mut prev);
                    e = next[head];
                    continue;
                }
                taken[i / 64] &= !(1 << (i % 64));
            }
            e = next[e];
        } else {
            // An answer before its call was taken: undo the last choice.
            let Some((call, before)) = stack.pop() else { return false };
            let i = entries[call].2;
            state = before;
            taken[i / 64] &= !(1 << (i % 64));
            relink(answer_of[i], &mut next, &mut prev);
            relink(call, &mut next, &mut prev);
            e = next[call];
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(client: u32, op: Op, invoked: u64, returned: Option<u64>) -> Call {
        Call { client, key: 1, op, invoked, returned }
    }

    #[test]
    fn overlapping_writes_and_reads_that_some_order_explains_pass() {
        // Porcupine's linearizable example: a put of 100 overlaps a get that sees it and a get
        // that does not (it can take effect before the put).
        let h = [
            call(0, Op::Put(100), 0, Some(100)),
            call(1, Op::Get(Some(100)), 25, Some(75)),
            call(2, Op::Get(None), 30, Some(60)),
        ];
        assert_eq!(linearizable(&h), Ok(()));
        // Sequential reads and writes, and a write that never answered but was seen.
        let h = [
            call(0, Op::Put(1), 0, Some(10)),
            call(0, Op::Get(Some(1)), 11, Some(12)),
            call(1, Op::Put(2), 13, None),
            call(0, Op::Get(Some(2)), 20, Some(21)),
            call(0, Op::Get(Some(2)), 22, Some(23)),
        ];
        assert_eq!(linearizable(&h), Ok(()));
        // A write that never answered may also never have happened.
        let h = [call(1, Op::Put(7), 0, None), call(0, Op::Get(None), 5, Some(6))];
        assert_eq!(linearizable(&h), Ok(()));
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_fails() {
        // Porcupine's non-linearizable example: the get that saw 100 ended before the one that
        // saw nothing began, so nothing can order them.
        let h = [
            call(0, Op::Put(100), 0, Some(100)),
            call(1, Op::Get(Some(100)), 5, Some(25)),
            call(2, Op::Get(None), 30, Some(60)),
        ];
        let v = linearizable(&h).unwrap_err();
        assert_eq!(v.key, 1);
        assert_eq!(v.calls.len(), 3);
        assert!(v.to_string().contains("client 2 get -> absent"), "{v}");
        // A write acknowledged, then lost: the read after it sees the value before.
        let h = [
            call(0, Op::Put(1), 0, Some(1)),
            call(0, Op::Put(2), 2, Some(3)),
            call(1, Op::Get(Some(1)), 4, Some(5)),
        ];
        assert!(linearizable(&h).is_err());
        // A read of a value nobody wrote.
        assert!(linearizable(&[call(0, Op::Get(Some(9)), 0, Some(1))]).is_err());
    }

    #[test]
    fn keys_are_checked_independently_and_long_histories_are_fast() {
        let mut h = Vec::new();
        // Four clients writing and reading two keys concurrently, 2000 operations, all
        // consistent with a register (each read sees the latest write that ended before it
        // began or one overlapping it).
        let mut t = 0;
        for round in 0..500u64 {
            for key in 0..2 {
                h.push(Call { client: 0, key, op: Op::Put(round), invoked: t, returned: Some(t + 10) });
                h.push(Call {
                    client: 1,
                    key,
                    op: Op::Get(Some(round)),
                    invoked: t + 5,
                    returned: Some(t + 15),
                });
            }
            t += 20;
        }
        let started = std::time::Instant::now();
        assert_eq!(linearizable(&h), Ok(()));
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        h.push(Call { client: 2, key: 1, op: Op::Get(Some(3)), invoked: t + 100, returned: Some(t + 101) });
        assert_eq!(linearizable(&h).unwrap_err().key, 1);
    }
}
