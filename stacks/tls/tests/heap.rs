//! What a server handshake in flight and an established session cost in heap, measured with a
//! counting allocator, for both providers (ring on a host, rustls-rustcrypto on bare metal): the
//! figures behind [`morgana_tls::SERVER_HANDSHAKE_HEAP`] and [`morgana_tls::SESSION_HEAP`],
//! which budgets (`www`'s handshakes in flight) are derived from. Run with `--nocapture` to see
//! them. One test in this binary, so no other test allocates while it counts.

use std::alloc::System;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use cap::Cap;
use embedded_io_async::{Read, Write};
use futures::future::join;
use morgana_mem::pipe;
use morgana_rt::{Executor, Handle, VirtualTime};
use morgana_tls::rustls::crypto::CryptoProvider;
use morgana_tls::{
    SERVER_HANDSHAKE_HEAP, SESSION_HEAP, TlsClient, TlsServer, TlsTime, client_config, dev, roots_from_pem,
    server_config,
};

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// Bytes a future holds (allocated and not yet freed during its polls) and the most it held.
#[derive(Default)]
struct Held {
    now: Cell<isize>,
    peak: Cell<isize>,
}

/// A future whose own allocations are counted into a [`Held`]: the executor is single-threaded,
/// so what the heap gained across one of its polls is its.
struct Counted<F> {
    inner: Pin<Box<F>>,
    held: Rc<Held>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let before = HEAP.allocated() as isize;
        let out = self.inner.as_mut().poll(cx);
        let after = HEAP.allocated() as isize;
        let held = &self.held;
        held.now.set(held.now.get() + after - before);
        held.peak.set(held.peak.get().max(held.now.get()));
        out
    }
}

type Clock = Handle<VirtualTime>;

/// The figures for one provider, in bytes.
#[derive(Debug)]
struct Figures {
    /// The most a server handshake held at once.
    handshake_peak: isize,
    /// What an established session holds when idle, after a request and a 64 KiB answer (its
    /// receive and send buffers grown to a full record and a full write).
    session_idle: isize,
    /// The most a session held while a 64 KiB answer went through it.
    session_peak: isize,
}

fn measure(provider: Arc<CryptoProvider>) -> Figures {
    let time = VirtualTime::new();
    let exec = Executor::new(time.clone());
    let clock: Clock = exec.handle();
    let server_time = TlsTime::new(clock.clone());
    let config = server_config(provider.clone(), &server_time, dev::identity().unwrap()).unwrap();
    let server = TlsServer::new(Arc::new(config), server_time);
    let client_time = TlsTime::new(clock.clone());
    let roots = roots_from_pem(dev::CA_PEM, "dev CA").unwrap();
    let client = TlsClient::new(Arc::new(client_config(provider, &client_time, roots).unwrap()), client_time);
    let (handshake, session) = (Rc::new(Held::default()), Rc::new(Held::default()));
    let (h, s) = (handshake.clone(), session.clone());
    let out = exec.block_on(&mut time.park(), async move {
        let (mut a, mut b) = pipe(64 * 1024);
        // The pipe's queues grow as they fill, in whichever poll writes: fill each once first,
        // so what is counted is the session's, not the in-memory link's (over TCP, the
        // stack's socket buffers, counted by morgana-tcpip).
        let mut warm = vec![0u8; 64 * 1024];
        a.write_all(&warm).await.unwrap();
        b.read_exact(&mut warm).await.unwrap();
        b.write_all(&warm).await.unwrap();
        a.read_exact(&mut warm).await.unwrap();
        drop(warm);
        let accept = Counted { inner: Box::pin(server.accept(a)), held: h.clone() };
        let (tls, conn) = join(accept, client.connect("localhost", b)).await;
        let (mut tls, mut conn) = (tls.unwrap(), conn.unwrap());
        // The session holds what the handshake left behind; from here on, count it afresh.
        s.now.set(h.now.get());
        s.peak.set(h.now.get());
        let serve = async {
            let mut req = [0u8; 100];
            tls.read_exact(&mut req).await.unwrap();
            tls.write_all(&vec![7u8; 64 * 1024]).await.unwrap();
            tls.flush().await.unwrap();
            tls
        };
        let talk = async {
            conn.write_all(&[1u8; 100]).await.unwrap();
            conn.flush().await.unwrap();
            let mut answer = vec![0u8; 64 * 1024];
            conn.read_exact(&mut answer).await.unwrap();
            conn
        };
        let (tls, conn) = join(Counted { inner: Box::pin(serve), held: s.clone() }, talk).await;
        (tls, conn)
    });
    let (tls, conn) = out.expect("no stall");
    // Held while both ends still exist: the session idle after its answer (the 64 KiB answer
    // buffer itself was freed at the end of `serve`).
    let figures = Figures {
        handshake_peak: handshake.peak.get(),
        session_idle: session.now.get(),
        session_peak: session.peak.get() - 64 * 1024,
    };
    drop((tls, conn));
    figures
}

#[test]
fn a_server_handshake_and_a_session_fit_the_heap_figures_the_budgets_are_derived_from() {
    let mut most = (0, 0);
    for (name, provider) in [
        ("ring", Arc::new(morgana_tls::rustls::crypto::ring::default_provider())),
        ("rustls-rustcrypto", Arc::new(rustls_rustcrypto::provider())),
    ] {
        let f = measure(provider);
        println!(
            "{name}: server handshake peak {} B; session after a 64 KiB answer {} B idle, {} B at most",
            f.handshake_peak, f.session_idle, f.session_peak
        );
        assert!(
            f.handshake_peak <= SERVER_HANDSHAKE_HEAP as isize,
            "{name}: a handshake held {} B, over SERVER_HANDSHAKE_HEAP ({SERVER_HANDSHAKE_HEAP} B)",
            f.handshake_peak
        );
        assert!(
            f.session_peak.max(f.session_idle) <= SESSION_HEAP as isize,
            "{name}: a session held {} B, over SESSION_HEAP ({SESSION_HEAP} B)",
            f.session_peak
        );
        most = (most.0.max(f.handshake_peak), most.1.max(f.session_peak));
    }
    // The figures are measurements, not guesses: a budget built on them must not be mostly air.
    assert!(
        most.0 * 4 >= SERVER_HANDSHAKE_HEAP as isize * 3 && most.1 * 4 >= SESSION_HEAP as isize * 3,
        "the figures ({SERVER_HANDSHAKE_HEAP} B, {SESSION_HEAP} B) are far above the measured ({} B, {} B): lower them",
        most.0,
        most.1
    );
}
