//! An in-memory duplex byte pipe: two [`Flow`] ends joined by bounded buffers.
//!
//! What one end writes, the other reads, in order. Each direction holds at most `capacity`
//! bytes: a writer facing a full buffer waits until the reader takes some, as on a real socket,
//! so a test that forgets to read deadlocks exactly where production would (and the virtual
//! clock reports it). `chunk` caps how much one `read` or `write` moves, to exercise the partial
//! reads and writes every layer above must handle.
//!
//! Closing follows TCP: [`FlowWrite::shutdown_write`] (or dropping the writing side) is a FIN
//! (the peer reads what is left, then `Ok(0)`); dropping the reading side makes the peer's
//! writes fail with [`StackError::ConnectionReset`].
//!
//! ```
//! use embedded_io_async::{Read, Write};
//! use morgana::{Flow, FlowWrite};
//! use morgana_mem::pipe;
//!
//! # let time = morgana_rt::VirtualTime::new();
//! # morgana_rt::Executor::new(time.clone()).block_on(&mut time.park(), async {
//! let (mut a, mut b) = pipe(64);
//! a.write_all(b"ping").await.unwrap();
//! a.shutdown_write().await.unwrap();
//! let mut buf = [0u8; 8];
//! assert_eq!(b.read(&mut buf).await.unwrap(), 4);
//! assert_eq!(b.read(&mut buf).await.unwrap(), 0, "FIN after the data");
//! # }).unwrap();
//! ```

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use core::cell::RefCell;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use morgana::{Flow, FlowWrite, StackError};

/// One direction of a pipe.
struct Chan {
    buf: VecDeque<u8>,
    capacity: usize,
    chunk: usize,
    /// The writer sent its FIN (or went away): reads drain the buffer, then return 0.
    fin: bool,
    /// The reader went away: writes fail.
    reader_gone: bool,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
}

impl Chan {
    fn new(capacity: usize, chunk: usize) -> Rc<RefCell<Self>> {
        Rc::new(RefCell::new(Self {
            buf: VecDeque::new(),
            capacity: capacity.max(1),
            chunk: chunk.max(1),
            fin: false,
            reader_gone: false,
            read_waker: None,
            write_waker: None,
        }))
    }
}

fn wake(w: &mut Option<Waker>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

/// A pipe whose directions each buffer `capacity` bytes.
pub fn pipe(capacity: usize) -> (PipeEnd, PipeEnd) {
    pipe_chunked(capacity, usize::MAX)
}

/// A pipe whose directions each buffer `capacity` bytes and move at most `chunk` bytes per
/// `read` or `write` call.
pub fn pipe_chunked(capacity: usize, chunk: usize) -> (PipeEnd, PipeEnd) {
    let ab = Chan::new(capacity, chunk);
    let ba = Chan::new(capacity, chunk);
    (
        PipeEnd { rx: PipeReader { chan: ba.clone() }, tx: PipeWriter { chan: ab.clone() } },
        PipeEnd { rx: PipeReader { chan: ab }, tx: PipeWriter { chan: ba } },
    )
}

/// One end of a [`pipe`]: a [`Flow`] with [`StackError`] errors, like a TCP connection.
pub struct PipeEnd {
    rx: PipeReader,
    tx: PipeWriter,
}

/// The reading half of a [`PipeEnd`].
pub struct PipeReader {
    chan: Rc<RefCell<Chan>>,
}

/// The writing half of a [`PipeEnd`].
pub struct PipeWriter {
    chan: Rc<RefCell<Chan>>,
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        let mut c = self.chan.borrow_mut();
        c.reader_gone = true;
        c.buf.clear();
        wake(&mut c.write_waker);
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        let mut c = self.chan.borrow_mut();
        c.fin = true;
        wake(&mut c.read_waker);
    }
}

impl PipeReader {
    /// Bytes waiting to be read.
    pub fn available(&self) -> usize {
        self.chan.borrow().buf.len()
    }
}

impl PipeWriter {
    /// Bytes written and not yet read by the peer.
    pub fn queued(&self) -> usize {
        self.chan.borrow().buf.len()
    }
}

impl PipeEnd {
    /// Bytes waiting to be read at this end.
    pub fn available(&self) -> usize {
        self.rx.available()
    }

    /// Bytes this end wrote that the peer has not read yet.
    pub fn queued(&self) -> usize {
        self.tx.queued()
    }
}

impl embedded_io::ErrorType for PipeEnd {
    type Error = StackError;
}
impl embedded_io::ErrorType for PipeReader {
    type Error = StackError;
}
impl embedded_io::ErrorType for PipeWriter {
    type Error = StackError;
}

impl embedded_io_async::Read for PipeReader {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, StackError> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            let mut c = self.chan.borrow_mut();
            if c.buf.is_empty() {
                if c.fin {
                    return Poll::Ready(Ok(0));
                }
                c.read_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(c.buf.len()).min(c.chunk);
            let (front, back) = c.buf.as_slices();
            let from_front = n.min(front.len());
            buf[..from_front].copy_from_slice(&front[..from_front]);
            buf[from_front..n].copy_from_slice(&back[..n - from_front]);
            c.buf.drain(..n);
            wake(&mut c.write_waker);
            Poll::Ready(Ok(n))
        })
        .await
    }
}

impl embedded_io_async::Write for PipeWriter {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, StackError> {
        poll_fn(|cx| {
            let mut c = self.chan.borrow_mut();
            if c.reader_gone {
                return Poll::Ready(Err(StackError::ConnectionReset));
            }
            if c.fin {
                return Poll::Ready(Err(StackError::NotConnected));
            }
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let room = c.capacity.saturating_sub(c.buf.len());
            if room == 0 {
                c.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(room).min(c.chunk);
            c.buf.extend(&buf[..n]);
            wake(&mut c.read_waker);
            Poll::Ready(Ok(n))
        })
        .await
    }

    async fn flush(&mut self) -> Result<(), StackError> {
        // Written bytes are already where the peer reads them.
        Ok(())
    }
}

impl FlowWrite for PipeWriter {
    async fn shutdown_write(&mut self) -> Result<(), StackError> {
        let mut c = self.chan.borrow_mut();
        c.fin = true;
        wake(&mut c.read_waker);
        Ok(())
    }
}

impl embedded_io_async::Read for PipeEnd {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, StackError> {
        self.rx.read(buf).await
    }
}

impl embedded_io_async::Write for PipeEnd {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, StackError> {
        self.tx.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), StackError> {
        self.tx.flush().await
    }
}

impl FlowWrite for PipeEnd {
    async fn shutdown_write(&mut self) -> Result<(), StackError> {
        self.tx.shutdown_write().await
    }
}

impl Flow for PipeEnd {
    type ReadHalf = PipeReader;
    type WriteHalf = PipeWriter;

    fn split(self) -> (PipeReader, PipeWriter) {
        (self.rx, self.tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `f` to completion on the executor and virtual time.
    fn block_on<F: core::future::Future>(f: F) -> F::Output {
        let time = morgana_rt::VirtualTime::new();
        morgana_rt::Executor::new(time.clone()).block_on(&mut time.park(), f).expect("no deadlock")
    }
    use alloc::vec::Vec;
    use embedded_io_async::{Read, Write};
    use futures::future::join;

    #[test]
    fn bounded_buffers_and_partial_io_keep_order() {
        let (a, b) = pipe_chunked(100, 7);
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let (mut ar, mut aw) = a.split();
        let (mut br, mut bw) = b.split();
        let send = async {
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = aw.write(rest).await.unwrap();
                assert!(n > 0 && n <= 7, "a write moves 1 to 7 bytes, moved {n}");
                rest = &rest[n..];
            }
            aw.shutdown_write().await.unwrap();
        };
        // Echo back whatever arrives, then FIN.
        let echo = async {
            let mut buf = [0u8; 64];
            loop {
                let n = br.read(&mut buf).await.unwrap();
                if n == 0 {
                    bw.shutdown_write().await.unwrap();
                    break;
                }
                bw.write_all(&buf[..n]).await.unwrap();
            }
        };
        let recv = async {
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            loop {
                let n = ar.read(&mut buf).await.unwrap();
                if n == 0 {
                    break got;
                }
                assert!(n <= 7);
                got.extend_from_slice(&buf[..n]);
            }
        };
        let ((_, _), got) = block_on(join(join(send, echo), recv));
        assert_eq!(got, data);
    }

    #[test]
    fn writer_waits_for_room_and_peer_drop_resets() {
        let (mut a, b) = pipe(4);
        block_on(async {
            assert_eq!(a.write(b"abcdef").await.unwrap(), 4, "only the capacity fits");
            assert_eq!(a.queued(), 4);
        });
        // With a full buffer a write is pending until the reader takes bytes.
        let mut w = core::pin::pin!(a.write(b"x"));
        let waker = futures::task::noop_waker();
        let mut cx = core::task::Context::from_waker(&waker);
        assert!(w.as_mut().poll(&mut cx).is_pending());
        drop(b);
        assert_eq!(w.as_mut().poll(&mut cx), Poll::Ready(Err(StackError::ConnectionReset)));
    }

    #[test]
    fn dropping_the_writer_is_a_fin_and_writes_after_shutdown_fail() {
        let (a, mut b) = pipe(16);
        let (_ar, mut aw) = a.split();
        block_on(async {
            aw.write_all(b"bye").await.unwrap();
            aw.shutdown_write().await.unwrap();
            assert_eq!(aw.write(b"more").await, Err(StackError::NotConnected));
            drop(aw);
            let mut buf = [0u8; 8];
            assert_eq!(b.read(&mut buf).await.unwrap(), 3);
            assert_eq!(b.read(&mut buf).await.unwrap(), 0);
            assert_eq!(b.read(&mut buf).await.unwrap(), 0, "EOF stays EOF");
        });
    }
}
