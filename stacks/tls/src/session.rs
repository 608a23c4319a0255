//! The session: rustls's unbuffered state machine driven over a flow.
//!
//! All TLS state lives in one [`Core`] behind `Rc<RefCell<..>>`, shared by the two halves after
//! a split; every borrow is synchronous (process records, encrypt, decrypt) and is released before
//! any `.await`. Bytes move like this:
//!
//! - Incoming TLS bytes sit in `Core::rx[start..end]`. To read more, the reader copies the
//!   unprocessed tail (a partial record: what rustls's own examples move with `copy_within`) to
//!   the front of its scratch buffer, reads after it without holding the borrow, then swaps the
//!   scratch buffer in, so received bytes are never copied twice.
//! - Outgoing TLS bytes are encoded into an [`OutBuf`] owned by whoever can write to the flow (the
//!   whole stream, or the write half). A split read half cannot write: what it must send (a
//!   TLS 1.3 `KeyUpdate` answer, an alert) waits in `Core::deferred`, and the write half sends it
//!   first, before its next record (RFC 8446 §4.6.3 allows exactly that delay).
//! - Decrypted records go straight into the caller's buffer when they fit; the rest waits in
//!   `Core::plain`.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

use embedded_io_async::{Read, Write};
use morgana::{Flow, FlowWrite};
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::{CommonState, ProtocolVersion, SupportedCipherSuite};

use crate::error::TlsError;

/// Receive buffer to start with: one maximal TLS 1.2 ciphertext record (16 KiB + 2 KiB + header).
const INITIAL_RX: usize = 18 * 1024 + 512;
/// Largest receive buffer: a 64 KiB handshake message (rustls's limit) joined across records.
const MAX_RX: usize = 80 * 1024;
/// Grow the receive buffer when less room than this is left after a partial record.
const MIN_ROOM: usize = 4096;
/// Plaintext encrypted per `write` call: two full records.
const MAX_WRITE: usize = 32 * 1024;

/// The two kinds of rustls unbuffered connection, behind one interface.
pub trait Side: 'static {
    /// rustls's per-side connection data.
    type Data;
    /// Process the records in `incoming` (rustls's `process_tls_records`).
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data>;
    /// The negotiated state: version, suite, ALPN, handshake progress.
    fn common(&self) -> &CommonState;
}

impl Side for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn common(&self) -> &CommonState {
        self
    }
}

impl Side for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn common(&self) -> &CommonState {
        self
    }
}

/// Outgoing TLS bytes: `buf[start..end]` is still to be sent.
#[derive(Default)]
pub(crate) struct OutBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl OutBuf {
    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room for at least `n` more bytes.
    fn spare(&mut self, n: usize) -> &mut [u8] {
        if self.buf.len() - self.end < n {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < n {
                self.buf.resize(self.end + n, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Write with `f` after `end`, growing to the size `f` asks for when it reports too little room.
    fn produce<E>(
        &mut self,
        hint: usize,
        mut f: impl FnMut(&mut [u8]) -> Result<usize, E>,
        required: impl Fn(&E) -> Option<usize>,
    ) -> Result<(), E> {
        let n = match f(self.spare(hint)) {
            Ok(n) => n,
            Err(e) => match required(&e) {
                Some(size) => f(self.spare(size))?,
                None => return Err(e),
            },
        };
        self.end += n;
        Ok(())
    }

    /// Move everything `other` holds to the end of this buffer.
    fn take_from(&mut self, other: &mut OutBuf) {
        if other.is_empty() {
            return;
        }
        let n = other.end - other.start;
        self.spare(n)[..n].copy_from_slice(other.pending());
        self.end += n;
        other.consume(n);
    }
}

/// Where the state machine stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// It needs more bytes from the peer.
    NeedInput,
    /// Application data can be sent (and the requested operation, if any, was done).
    Writable,
    /// Both sides sent `close_notify`.
    Closed,
}

/// What to do once the state machine can send application data.
enum Op<'a> {
    None,
    Encrypt(&'a [u8]),
    CloseNotify,
}

/// The shared state of one session.
pub(crate) struct Core<S> {
    conn: S,
    rx: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes discarded from `rx` so far: tells the reader whether `rx` changed while it waited.
    discarded: u64,
    plain: Vec<u8>,
    plain_pos: usize,
    deferred: OutBuf,
    peer_closed: bool,
    eof: bool,
    write_closed: bool,
    failed: Option<rustls::Error>,
}

fn encode_required(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

fn encrypt_required(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

fn encode_error(e: EncodeError) -> rustls::Error {
    rustls::Error::General(alloc::format!("{e}"))
}

fn encrypt_error(e: EncryptError) -> rustls::Error {
    match e {
        EncryptError::EncryptExhausted => rustls::Error::EncryptError,
        e => rustls::Error::General(alloc::format!("{e}")),
    }
}

impl<S: Side> Core<S> {
    fn new(conn: S) -> Self {
        Self {
            conn,
            rx: Vec::new(),
            start: 0,
            end: 0,
            discarded: 0,
            plain: Vec::new(),
            plain_pos: 0,
            deferred: OutBuf::default(),
            peer_closed: false,
            eof: false,
            write_closed: false,
            failed: None,
        }
    }

    /// Copy buffered plaintext into `buf`.
    fn take_plain(&mut self, buf: &mut [u8]) -> usize {
        let avail = &self.plain[self.plain_pos..];
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.plain_pos += n;
        if self.plain_pos == self.plain.len() {
            self.plain.clear();
            self.plain_pos = 0;
        }
        n
    }

    /// Run the state machine until it needs input, can send application data, or is closed:
    /// decrypted data goes to `user[*filled..]` (then to `plain`), TLS output to `out`.
    fn pump(
        &mut self,
        out: &mut OutBuf,
        user: &mut [u8],
        filled: &mut usize,
        mut op: Op<'_>,
    ) -> Result<Step, rustls::Error> {
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process(&mut self.rx[self.start..self.end]);
            let result = match state {
                Err(e) => Err(e),
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    let mut result = Ok(None);
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                let p = record.payload;
                                let direct =
                                    if self.plain.is_empty() { p.len().min(user.len() - *filled) } else { 0 };
                                user[*filled..*filled + direct].copy_from_slice(&p[..direct]);
                                *filled += direct;
                                self.plain.extend_from_slice(&p[direct..]);
                            }
                            Err(e) => {
                                result = Err(e);
                                break;
                            }
                        }
                    }
                    result
                }
                Ok(ConnectionState::EncodeTlsData(mut enc)) => {
                    out.produce(0, |b| enc.encode(b), encode_required).map(|()| None).map_err(encode_error)
                }
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    // The bytes wait in `out`, in order, until whoever owns the writer sends them.
                    t.done();
                    Ok(None)
                }
                Ok(ConnectionState::BlockedHandshake) => Ok(Some(Step::NeedInput)),
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    Ok(None)
                }
                Ok(ConnectionState::Closed) => Ok(Some(Step::Closed)),
                Ok(ConnectionState::WriteTraffic(mut w)) => match core::mem::replace(&mut op, Op::None) {
                    Op::None => Ok(Some(Step::Writable)),
                    Op::Encrypt(data) => out
                        .produce(data.len() + 64, |b| w.encrypt(data, b), encrypt_required)
                        .map(|()| Some(Step::Writable))
                        .map_err(encrypt_error),
                    Op::CloseNotify => out
                        .produce(64, |b| w.queue_close_notify(b), encrypt_required)
                        .map(|()| Some(Step::Writable))
                        .map_err(encrypt_error),
                },
                // Early data is never enabled by this crate's configurations.
                Ok(_) => {
                    Err(rustls::Error::General("unexpected TLS state (0-RTT data is not supported)".into()))
                }
            };
            self.start += discard;
            self.discarded += discard as u64;
            if self.start >= self.end {
                self.start = 0;
                self.end = 0;
            }
            match result {
                Err(e) => return Err(e),
                Ok(Some(step)) => return Ok(step),
                Ok(None) => {}
            }
        }
    }

    /// Record a fatal error and encode the alert rustls queued for the peer.
    ///
    /// Exactly one more call into rustls: it hands out queued records before it looks at the
    /// input again, and looking again at the input that failed would raise a second alert.
    fn fail(&mut self, e: rustls::Error, out: &mut OutBuf) {
        if self.failed.is_some() {
            return;
        }
        let alert_queued = !matches!(e, rustls::Error::AlertReceived(_));
        self.failed = Some(e);
        if alert_queued
            && let Ok(ConnectionState::EncodeTlsData(mut enc)) =
                self.conn.process(&mut self.rx[self.start..self.end]).state
        {
            let _ = out.produce(0, |b| enc.encode(b), encode_required);
        }
    }

    fn check<E>(&self) -> Result<(), TlsError<E>> {
        match &self.failed {
            Some(e) => Err(TlsError::from_rustls(e.clone())),
            None => Ok(()),
        }
    }
}

/// Send all of `out` on `w`. Bytes are dropped from `out` only once written, so an interrupted
/// flush resumes where it stopped.
async fn flush_out<W: Write>(out: &mut OutBuf, w: &mut W) -> Result<(), TlsError<W::Error>> {
    while !out.is_empty() {
        let n = w.write(out.pending()).await.map_err(TlsError::Transport)?;
        out.consume(n);
    }
    Ok(())
}

/// Read more TLS bytes from `r` into the core's receive buffer.
async fn fill<S: Side, R: Read>(
    core: &RefCell<Core<S>>,
    scratch: &mut Vec<u8>,
    r: &mut R,
) -> Result<(), TlsError<R::Error>> {
    let (generation, keep) = {
        let c = core.borrow();
        let keep = c.end - c.start;
        if scratch.len() < keep + MIN_ROOM {
            if keep >= MAX_RX {
                return Err(TlsError::TooLarge);
            }
            let size = (scratch.len() * 2).max(keep + INITIAL_RX).clamp(INITIAL_RX, MAX_RX);
            scratch.resize(size, 0);
        }
        scratch[..keep].copy_from_slice(&c.rx[c.start..c.end]);
        (c.discarded, keep)
    };
    let n = r.read(&mut scratch[keep..]).await.map_err(TlsError::Transport)?;
    let mut c = core.borrow_mut();
    if n == 0 {
        c.eof = true;
        return Err(TlsError::UnexpectedEof);
    }
    if c.discarded == generation && c.end - c.start == keep {
        core::mem::swap(&mut c.rx, scratch);
        c.start = 0;
        c.end = keep + n;
    } else {
        // The write half processed records meanwhile: append the new bytes behind what is left.
        let (start, end) = (c.start, c.end);
        c.rx.copy_within(start..end, 0);
        let len = end - start;
        if c.rx.len() < len + n {
            c.rx.resize(len + n, 0);
        }
        c.rx[len..len + n].copy_from_slice(&scratch[keep..keep + n]);
        c.start = 0;
        c.end = len + n;
    }
    Ok(())
}

/// One pass of the read path, shared by the whole stream and the read half: buffered plaintext,
/// else process what was received. `send` is the output buffer when this side can write.
fn read_step<S: Side, E>(
    core: &RefCell<Core<S>>,
    send: Option<&mut OutBuf>,
    buf: &mut [u8],
) -> Result<ReadOutcome, TlsError<E>> {
    if buf.is_empty() {
        return Ok(ReadOutcome::Data(0));
    }
    let mut c = core.borrow_mut();
    let n = c.take_plain(buf);
    if n > 0 {
        return Ok(ReadOutcome::Data(n));
    }
    c.check()?;
    if c.peer_closed {
        return Ok(ReadOutcome::Data(0));
    }
    if c.eof {
        return Err(TlsError::UnexpectedEof);
    }
    let mut filled = 0;
    let mut deferred = core::mem::take(&mut c.deferred);
    let out = match send {
        Some(out) => out,
        None => &mut deferred,
    };
    let step = c.pump(out, buf, &mut filled, Op::None);
    if let Err(e) = step {
        c.fail(e.clone(), out);
        c.deferred = deferred;
        return Ok(ReadOutcome::Failed(e));
    }
    c.deferred = deferred;
    Ok(match step {
        _ if filled > 0 => ReadOutcome::Data(filled),
        _ if c.peer_closed => ReadOutcome::Data(0),
        Ok(Step::Closed) => ReadOutcome::Data(0),
        _ => ReadOutcome::NeedInput,
    })
}

/// What one pass of the read path found.
enum ReadOutcome {
    /// Plaintext (or, for 0, the end of the peer's data).
    Data(usize),
    /// Nothing yet: send pending output, then read more from the flow.
    NeedInput,
    /// A fatal protocol error; its alert is in the output buffer.
    Failed(rustls::Error),
}

/// The write path shared by the whole stream and the write half.
async fn write_plain<S: Side, W: Write>(
    core: &RefCell<Core<S>>,
    out: &mut OutBuf,
    w: &mut W,
    op: Op<'_>,
) -> Result<(), TlsError<W::Error>> {
    // Finish what an interrupted call left first: its records come before ours.
    flush_out(out, w).await?;
    let result = {
        let mut c = core.borrow_mut();
        c.check()?;
        if c.write_closed {
            return if matches!(op, Op::CloseNotify) { Ok(()) } else { Err(TlsError::Closed) };
        }
        let mut deferred = core::mem::take(&mut c.deferred);
        out.take_from(&mut deferred);
        c.deferred = deferred;
        let close = matches!(op, Op::CloseNotify);
        let result = c.pump(out, &mut [], &mut 0, op);
        match &result {
            Err(e) => c.fail(e.clone(), out),
            Ok(_) if close => c.write_closed = true,
            Ok(_) => {}
        }
        result.map(|step| (step, close))
    };
    match result {
        Ok((Step::Writable, _) | (Step::Closed, true)) => flush_out(out, w).await,
        Ok((Step::Closed, false)) => Err(TlsError::Closed),
        // Only possible mid-handshake, which `accept` and `connect` never return in.
        Ok((Step::NeedInput, _)) => Err(TlsError::Closed),
        Err(e) => {
            // Best effort: the alert explains the failure to the peer.
            let _ = flush_out(out, w).await;
            Err(TlsError::from_rustls(e))
        }
    }
}

/// A TLS session over a flow `F`: a [`Flow`] itself. `S` is the rustls connection (server or
/// client); see [`ServerStream`](crate::ServerStream) and [`ClientStream`](crate::ClientStream).
///
/// Reads are cancel-safe. A `write` is not once it has encrypted: dropping it mid-way leaves
/// the records queued, and they go out first on the next write or flush.
pub struct TlsStream<F, S> {
    io: F,
    core: Rc<RefCell<Core<S>>>,
    out: OutBuf,
    scratch: Vec<u8>,
}

/// The reading half of a split [`TlsStream`].
pub struct TlsReader<R, S> {
    io: R,
    core: Rc<RefCell<Core<S>>>,
    scratch: Vec<u8>,
}

/// The writing half of a split [`TlsStream`].
pub struct TlsWriter<W, S> {
    io: W,
    core: Rc<RefCell<Core<S>>>,
    out: OutBuf,
}

impl<F: Flow, S: Side> TlsStream<F, S> {
    /// Run the handshake of `conn` over `io`; `before_step` runs before each step (it refreshes
    /// rustls's clock).
    pub(crate) async fn handshake(
        conn: S,
        io: F,
        before_step: impl Fn(),
    ) -> Result<Self, TlsError<F::Error>> {
        let mut s = Self {
            io,
            core: Rc::new(RefCell::new(Core::new(conn))),
            out: OutBuf::default(),
            scratch: Vec::new(),
        };
        loop {
            before_step();
            let (step, handshaking) = {
                let mut c = s.core.borrow_mut();
                let step = c.pump(&mut s.out, &mut [], &mut 0, Op::None);
                if let Err(e) = &step {
                    c.fail(e.clone(), &mut s.out);
                }
                (step, c.conn.common().is_handshaking())
            };
            let flushed = flush_out(&mut s.out, &mut s.io).await;
            let step = step.map_err(TlsError::from_rustls)?;
            flushed?;
            if !handshaking {
                return Ok(s);
            }
            if step == Step::Closed {
                return Err(TlsError::UnexpectedEof);
            }
            fill(&s.core, &mut s.scratch, &mut s.io).await?;
        }
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.core.borrow().conn.common().protocol_version()
    }

    /// The negotiated cipher suite.
    pub fn cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.core.borrow().conn.common().negotiated_cipher_suite()
    }

    /// The ALPN protocol both sides agreed on.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.core.borrow().conn.common().alpn_protocol().map(<[u8]>::to_vec)
    }

    /// The flow underneath.
    pub fn get_ref(&self) -> &F {
        &self.io
    }

    /// The flow underneath, mutably: writing to it or reading from it corrupts the session
    /// (tests use this to play a broken peer).
    pub fn get_mut(&mut self) -> &mut F {
        &mut self.io
    }
}

impl<F: Flow, S> embedded_io::ErrorType for TlsStream<F, S> {
    type Error = TlsError<F::Error>;
}

impl<R: Read, S> embedded_io::ErrorType for TlsReader<R, S> {
    type Error = TlsError<R::Error>;
}

impl<W: Write, S> embedded_io::ErrorType for TlsWriter<W, S> {
    type Error = TlsError<W::Error>;
}

impl<F: Flow, S: Side> Read for TlsStream<F, S> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        loop {
            match read_step(&self.core, Some(&mut self.out), buf)? {
                ReadOutcome::Data(n) => return Ok(n),
                ReadOutcome::Failed(e) => {
                    let _ = flush_out(&mut self.out, &mut self.io).await;
                    return Err(TlsError::from_rustls(e));
                }
                ReadOutcome::NeedInput => {
                    // What the peer must get before it answers (handshake, key update). If the
                    // flow no longer takes writes, what it still delivers is read all the same
                    // (like a socket after EPIPE); the next write reports the failure.
                    let _ = flush_out(&mut self.out, &mut self.io).await;
                    fill(&self.core, &mut self.scratch, &mut self.io).await?;
                }
            }
        }
    }
}

impl<R: Read, S: Side> Read for TlsReader<R, S> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        loop {
            match read_step(&self.core, None, buf)? {
                ReadOutcome::Data(n) => return Ok(n),
                ReadOutcome::Failed(e) => return Err(TlsError::from_rustls(e)),
                ReadOutcome::NeedInput => fill(&self.core, &mut self.scratch, &mut self.io).await?,
            }
        }
    }
}

impl<F: Flow, S: Side> Write for TlsStream<F, S> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(MAX_WRITE);
        write_plain(&self.core, &mut self.out, &mut self.io, Op::Encrypt(&buf[..n])).await?;
        Ok(n)
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        flush_out(&mut self.out, &mut self.io).await?;
        self.io.flush().await.map_err(TlsError::Transport)
    }
}

impl<W: FlowWrite, S: Side> Write for TlsWriter<W, S> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(MAX_WRITE);
        write_plain(&self.core, &mut self.out, &mut self.io, Op::Encrypt(&buf[..n])).await?;
        Ok(n)
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        {
            let mut c = self.core.borrow_mut();
            let mut deferred = core::mem::take(&mut c.deferred);
            self.out.take_from(&mut deferred);
            c.deferred = deferred;
        }
        flush_out(&mut self.out, &mut self.io).await?;
        self.io.flush().await.map_err(TlsError::Transport)
    }
}

impl<F: Flow, S: Side> FlowWrite for TlsStream<F, S> {
    /// Send `close_notify`, then half-close the flow below.
    async fn shutdown_write(&mut self) -> Result<(), Self::Error> {
        write_plain(&self.core, &mut self.out, &mut self.io, Op::CloseNotify).await?;
        self.io.shutdown_write().await.map_err(TlsError::Transport)
    }
}

impl<W: FlowWrite, S: Side> FlowWrite for TlsWriter<W, S> {
    /// Send `close_notify`, then half-close the flow below.
    async fn shutdown_write(&mut self) -> Result<(), Self::Error> {
        write_plain(&self.core, &mut self.out, &mut self.io, Op::CloseNotify).await?;
        self.io.shutdown_write().await.map_err(TlsError::Transport)
    }
}

impl<F: Flow, S: Side> Flow for TlsStream<F, S> {
    type ReadHalf = TlsReader<F::ReadHalf, S>;
    type WriteHalf = TlsWriter<F::WriteHalf, S>;

    fn split(self) -> (Self::ReadHalf, Self::WriteHalf) {
        let (r, w) = self.io.split();
        (
            TlsReader { io: r, core: self.core.clone(), scratch: self.scratch },
            TlsWriter { io: w, core: self.core, out: self.out },
        )
    }
}
