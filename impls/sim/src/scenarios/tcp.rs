//! `tcp`: bulk transfers through `morgana-tcpip` across a matrix of loss × latency × buffer
//! size, each pair of nodes on its own link: a client writes a seeded stream to `echo` (its
//! `start` unchanged) while reading the echo back, and must get every byte back in order.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use embedded_io_async::{Read, Write};
use morgana::{Duration, Flow, FlowWrite, Platform, StackError, TcpStack};
use morgana_target::{Device, Target};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::fabric::{Latency, LinkFaults};
use crate::{NodeSpec, Outcome, World, WorldConfig};

/// Loss probabilities of the matrix.
const LOSS: [f64; 3] = [0.0, 0.01, 0.05];
/// One-way latencies.
const LATENCY_MS: [u64; 2] = [1, 20];
/// Socket buffer sizes (both ways, and their growth limit).
const BUFFER: [usize; 2] = [16 * 1024, 256 * 1024];

/// The stream a client sends: `len` bytes from `seed`.
fn stream(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// What each pair's transfer came to, by its label.
type Results = Rc<RefCell<Vec<(String, Result<bool, StackError>)>>>;

/// Write `data` to the echo server while reading it back; whether every byte came back.
async fn transfer<S: TcpStack>(stack: S, server: SocketAddr, data: Vec<u8>) -> Result<bool, StackError> {
    let conn = stack.connect(server).await?;
    let (mut rx, mut tx) = conn.split();
    let send = async {
        for chunk in data.chunks(7_000) {
            tx.write_all(chunk).await?;
        }
        tx.shutdown_write().await
    };
    let receive = async {
        let mut got = Vec::with_capacity(data.len());
        let mut buf = [0u8; 8192];
        loop {
            let n = rx.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, StackError>(got);
            }
            got.extend_from_slice(&buf[..n]);
        }
    };
    let (sent, got) = futures::join!(send, receive);
    sent?;
    Ok(got? == data)
}

/// The matrix: 12 pairs of nodes, `bytes` each way per pair.
pub fn matrix(config: WorldConfig, bytes: usize) -> Outcome {
    let w = World::new(config, LinkFaults::default());
    let results: Results = Rc::default();
    let mut pair = 0u8;
    let mut cells = Vec::new();
    for &loss in &LOSS {
        for &ms in &LATENCY_MS {
            for &buffer in &BUFFER {
                let label = format!("loss {:.0}% latency {ms} ms buffer {} KiB", loss * 100.0, buffer / 1024);
                let tune = move |mut c: morgana_tcpip::Config| {
                    c.tcp_rx_buffer = buffer;
                    c.tcp_tx_buffer = buffer;
                    c.tcp_buffer_max = buffer;
                    c
                };
                let (sip, cip) = (format!("10.1.{pair}.1/16"), format!("10.1.{pair}.2/16"));
                let server = w.node(
                    NodeSpec::new(format!("echo{pair}"))
                        .args(["--ipv4", sip.as_str(), "--port", "7"])
                        .tcpip(tune),
                    &[echo::ARGS],
                    &[Device::TcpStack],
                    |t| {
                        // echo's main.rs.
                        let config = echo::Config::from_args(t.args())?;
                        Ok(echo::start(t.platform(), t.tcp_stack()?, config))
                    },
                );
                let (results, label2) = (results.clone(), label.clone());
                let addr: SocketAddr = SocketAddr::new([10, 1, pair, 1].into(), 7);
                let client = w.node(
                    NodeSpec::new(format!("sender{pair}")).args(["--ipv4", cip.as_str()]).tcpip(tune),
                    &[],
                    &[Device::TcpStack],
                    move |t| {
                        let (platform, stack) = (t.platform(), t.tcp_stack()?);
                        let (results, label) = (results.clone(), label2.clone());
                        Ok(async move {
                            let data = stream(platform.rng().next_u64(), bytes);
                            let r = transfer(stack, addr, data).await;
                            results.borrow_mut().push((label, r));
                            Ok::<(), StackError>(())
                        })
                    },
                );
                let faults = LinkFaults {
                    latency: Latency::Uniform(Duration::from_millis(ms), Duration::from_millis(ms + ms / 4)),
                    ..LinkFaults::default()
                }
                .lossy(loss);
                w.set_faults(server, client, faults);
                w.set_faults(client, server, faults);
                cells.push(client);
                pair += 1;
            }
        }
    }
    w.run(move |ctl| async move {
        for &c in &cells {
            let code = ctl.wait_exit(c).await;
            if code != 0 {
                return Err(format!("sender n{c} exited with status {code}"));
            }
        }
        for (label, r) in results.borrow().iter() {
            match r {
                Ok(true) => {}
                Ok(false) => return Err(format!("{label}: the echo differs from what was sent")),
                Err(e) => return Err(format!("{label}: {e}")),
            }
        }
        Ok(())
    })
}
