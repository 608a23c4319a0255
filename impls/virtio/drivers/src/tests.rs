//! Both drivers against the fake device (`sys::fake`), polled the way an executor polls them:
//! a pending request is polled again only once the device's interrupt has woken it, so a driver
//! that spins or forgets its waker fails here as it would hang on a real machine.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use morgana::block::{Block, BlockError};
use morgana::net::{Net, RxToken, TxToken};
use morgana::{Clock, Instant};
use virtio_drivers::transport::{DeviceStatus, DeviceType};

use crate::sys::fake::{self, Chain, Fake, FakeLine, FakeTransport, TestHal};
use crate::{Error, VirtioBlock, VirtioNet};

type Nic = VirtioNet<TestHal, FakeTransport, FakeLine>;
type Disk = VirtioBlock<TestHal, FakeTransport, FakeLine>;

const VERSION_1: u64 = 1 << 32;
const NET_F_MAC: u64 = 1 << 5;
const BLK_F_RO: u64 = 1 << 5;
const BLK_F_FLUSH: u64 = 1 << 9;

struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Run `fut` to completion, letting the devices work (`serve` says whether they did anything)
/// while it waits. Polled again only after a wake-up: pending with nothing left for the devices
/// to do and no wake-up is a hang, and fails.
fn drive<F: Future>(fut: F, mut serve: impl FnMut() -> bool) -> F::Output {
    let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
    let waker = Waker::from(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    for _ in 0..1_000_000 {
        let seen = wakes.0.load(Ordering::SeqCst);
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        while wakes.0.load(Ordering::SeqCst) == seen {
            assert!(serve(), "hang: pending, the device has nothing to do, and nothing will wake the task");
        }
    }
    panic!("no result after a million polls");
}

/// Poll `f` once with a waker that counts; its result and whether it was woken since.
fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>, wakes: &Arc<Wakes>) -> Poll<F::Output> {
    let waker = Waker::from(wakes.clone());
    fut.poll(&mut Context::from_waker(&waker))
}

/// Time that never passes: a timeout never fires, so a lost frame shows up as a hang.
struct Frozen;

impl Clock for Frozen {
    fn now(&self) -> Instant {
        Instant::from_nanos(0)
    }
    fn wake_at(&self, _at: Instant, _waker: &Waker) {}
}

// ---- virtio-net ----

fn nic_device(offered: u64, mac: [u8; 6]) -> Fake {
    let mut config = mac.to_vec();
    config.extend_from_slice(&[0; 2]); // status
    Fake::new(DeviceType::Network, offered, 2, config)
}

fn nic(mac: u8) -> (Fake, Nic) {
    let f = nic_device(VERSION_1 | NET_F_MAC, [2, 0, 0, 0, 0, mac]);
    let n = Nic::new(f.transport(), f.line()).expect("a NIC with a MAC starts");
    (f, n)
}

const RX: usize = 0;
const TX: usize = 1;

/// Deliver `frame` (behind a header of `hdr` zero bytes) into a posted receive buffer.
fn deliver(f: &Fake, hdr: usize, frame: &[u8]) -> bool {
    let mut d = f.dev();
    let Some(chain) = d.pop(RX) else { return false };
    let mut bytes = vec![0u8; hdr];
    bytes.extend_from_slice(frame);
    let n = fake::write(&chain, &bytes);
    d.complete(RX, &chain, n);
    true
}

/// Take every frame the driver queued for sending: `(chain, header + frame)`.
fn sent(f: &Fake) -> Vec<(Chain, Vec<u8>)> {
    let mut d = f.dev();
    std::iter::from_fn(|| d.pop(TX)).map(|c| (c.clone(), fake::read(&c))).collect()
}

/// Move frames from `a`'s transmit queue into `b`'s receive buffers (a wire; a frame with no
/// buffer to land in is lost, as on a real link). Whether anything moved.
fn wire(a: &Fake, b: &Fake) -> bool {
    let out = sent(a);
    for (chain, bytes) in &out {
        deliver(b, 12, &bytes[12..]);
        a.dev().complete(TX, chain, 0);
    }
    !out.is_empty()
}

async fn send(n: &mut Nic, frame: &[u8]) {
    morgana_testkit::net::send(n, frame).await
}

#[test]
fn two_nics_on_a_wire_pass_the_net_conformance_suite() {
    let ((fa, mut a), (fb, mut b)) = (nic(1), nic(2));
    drive(morgana_testkit::net::check_pair(&mut a, &mut b, &Frozen), || wire(&fa, &fb) | wire(&fb, &fa));
}

#[test]
fn a_frame_goes_out_whole_behind_a_zeroed_header_and_the_device_is_notified() {
    let (f, mut n) = nic(1);
    let frame = morgana_testkit::net::frame([0xff; 6], n.mac(), 7, 300);
    let before = f.dev().queues[TX].notified;
    drive(send(&mut n, &frame), || false);
    assert!(f.dev().queues[TX].notified > before, "the device is told there is a frame");
    let out = sent(&f);
    assert_eq!(out.len(), 1, "one frame reaches the device");
    assert_eq!(out[0].1[..12], [0; 12], "a 12-byte virtio-net header, no offloads asked");
    assert_eq!(out[0].1[12..], frame[..], "the frame follows intact");
    assert_eq!(n.stats().tx_frames, 1);
}

#[test]
fn frames_come_in_and_their_buffers_go_back_to_the_device() {
    let (f, mut n) = nic(1);
    // Far more frames than the 32 buffers posted: each one is handed back after use.
    for seq in 0..200u16 {
        let frame = morgana_testkit::net::frame(n.mac(), [2, 0, 0, 0, 0, 9], seq, 60 + usize::from(seq));
        assert!(deliver(&f, 12, &frame), "frame {seq}: the device has a buffer to deliver into");
        let got =
            drive(morgana_testkit::net::recv(&mut n, &Frozen, morgana::Duration::from_secs(1)), || false);
        assert_eq!(got.as_deref(), Some(&frame[..]), "frame {seq} arrives intact");
    }
    assert_eq!(n.stats().rx_frames, 200);
}

#[test]
fn a_full_transmit_queue_holds_the_sender_back_until_the_device_sends() {
    let (f, mut n) = nic(1);
    let frame = morgana_testkit::net::frame([0xff; 6], n.mac(), 1, 100);
    // The device sends nothing: 16 frames fill the transmit buffers.
    for _ in 0..16 {
        drive(send(&mut n, &frame), || false);
    }
    let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
    let mut pending = pin!(send(&mut n, &frame));
    assert!(poll_once(pending.as_mut(), &wakes).is_pending(), "the 17th frame waits: no busy loop, no panic");
    // The device sends one: its interrupt wakes the sender, whose frame then goes.
    let out = sent(&f);
    assert_eq!(out.len(), 16);
    f.dev().complete(TX, &out[0].0, 0);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "the device's interrupt wakes the waiting sender");
    assert!(poll_once(pending.as_mut(), &wakes).is_ready(), "a freed buffer takes the waiting frame");
    assert_eq!(sent(&f).len(), 1, "and it reaches the device");
}

#[test]
fn a_nic_without_a_mac_address_is_refused_in_so_many_words() {
    let f = nic_device(VERSION_1, [0; 6]);
    let err = Nic::new(f.transport(), f.line()).err().expect("no MAC: refused");
    assert_eq!(err, Error::Unsupported);
    assert!(f.dev().status.contains(DeviceStatus::FAILED), "the device is told the driver gave up");
}

#[test]
fn a_legacy_nic_gets_the_10_byte_header() {
    let f = nic_device(NET_F_MAC, [2, 0, 0, 0, 0, 3]);
    let mut n = Nic::new(f.transport(), f.line()).expect("a legacy NIC starts");
    assert_eq!(f.dev().accepted & VERSION_1, 0);
    let frame = morgana_testkit::net::frame([0xff; 6], n.mac(), 1, 80);
    drive(send(&mut n, &frame), || false);
    let out = sent(&f);
    assert_eq!(out[0].1.len(), 10 + 80, "legacy header: 10 bytes");
    assert!(deliver(&f, 10, &frame));
    let got = drive(morgana_testkit::net::recv(&mut n, &Frozen, morgana::Duration::from_secs(1)), || false);
    assert_eq!(got.as_deref(), Some(&frame[..]));
}

// ---- virtio-net offloads ----

const NET_F_CSUM: u64 = 1 << 0;
const NET_F_GUEST_CSUM: u64 = 1 << 1;
const NET_F_GUEST_TSO4: u64 = 1 << 7;
const NET_F_GUEST_TSO6: u64 = 1 << 8;
const NET_F_HOST_TSO4: u64 = 1 << 11;
const NET_F_HOST_TSO6: u64 = 1 << 12;
const NET_F_MRG_RXBUF: u64 = 1 << 15;
/// What QEMU's virtio-net offers with a TAP back end.
const QEMU_TAP: u64 = VERSION_1
    | NET_F_MAC
    | NET_F_CSUM
    | NET_F_GUEST_CSUM
    | NET_F_GUEST_TSO4
    | NET_F_GUEST_TSO6
    | NET_F_HOST_TSO4
    | NET_F_HOST_TSO6
    | NET_F_MRG_RXBUF;

fn ones_sum(b: &[u8]) -> u32 {
    b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// An Ethernet + IPv4 + TCP frame carrying `payload`, both checksums right.
fn tcp4(payload: &[u8]) -> Vec<u8> {
    let total = 40 + payload.len();
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 9, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    let ip = !fold(ones_sum(&f[14..34]));
    f[24..26].copy_from_slice(&ip.to_be_bytes());
    let mut tcp = vec![0u8; 20];
    tcp[..4].copy_from_slice(&[0x12, 0x34, 0x00, 0x07]);
    tcp[12] = 5 << 4;
    tcp[13] = 0x18;
    f.extend_from_slice(&tcp);
    f.extend_from_slice(payload);
    let pseudo = ones_sum(&f[26..34]) + 6 + (total - 20) as u32;
    let c = !fold(pseudo + ones_sum(&f[34..]));
    f[50..52].copy_from_slice(&c.to_be_bytes());
    f
}

/// The next frame `n` receives, whatever it is.
async fn recv_any(n: &mut Nic) -> Vec<u8> {
    std::future::poll_fn(|cx| match n.receive(cx) {
        Some((rx, _)) => Poll::Ready(rx.consume(|b| b.to_vec())),
        None => Poll::Pending,
    })
    .await
}

fn cx_counting() -> (Arc<Wakes>, Waker) {
    let w = Arc::new(Wakes(AtomicUsize::new(0)));
    (w.clone(), Waker::from(w))
}

#[test]
fn without_offloads_offered_the_stack_does_checksums_and_segments_itself() {
    let (_f, n) = nic(1);
    let caps = n.capabilities();
    assert!(!caps.checksum_offload);
    assert_eq!((caps.tso_max_frame_len, caps.rx_max_frame_len), (0, 0));
    // TSO without the checksum offload it depends on is not taken either.
    let f = nic_device(VERSION_1 | NET_F_MAC | NET_F_HOST_TSO4 | NET_F_HOST_TSO6, [2, 0, 0, 0, 0, 4]);
    let n = Nic::new(f.transport(), f.line()).unwrap();
    assert_eq!(n.capabilities().tso_max_frame_len, 0);
    assert_eq!(f.dev().accepted & (NET_F_HOST_TSO4 | NET_F_HOST_TSO6), 0);
}

#[test]
fn a_tcp_super_frame_goes_to_the_device_whole_marked_for_checksum_and_segmentation() {
    let f = nic_device(QEMU_TAP, [2, 0, 0, 0, 0, 1]);
    let mut n = Nic::new(f.transport(), f.line()).expect("starts");
    let caps = n.capabilities();
    assert!(caps.checksum_offload, "CSUM: the device completes checksums");
    assert!(caps.tso_max_frame_len >= 65_535, "HOST_TSO4/6: 64 KiB segments");
    let mut frame = tcp4(&[0x5a; 20_000]);
    frame[50..52].fill(0); // the stack leaves the checksum to the device
    let (_w, waker) = cx_counting();
    let mut tx = n.transmit(&mut Context::from_waker(&waker)).expect("a buffer");
    tx.set_segment_size(1460);
    tx.consume(frame.len(), |b| b.copy_from_slice(&frame));
    assert_eq!(n.stats().tx_frames, 1);
    let out = sent(&f);
    assert_eq!(out.len(), 1, "one descriptor for the whole super-frame");
    let bytes = &out[0].1;
    assert_eq!(bytes.len(), 12 + frame.len());
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    assert_eq!(bytes[0], 1, "NEEDS_CSUM");
    assert_eq!(bytes[1], 1, "GSO_TCPV4");
    assert_eq!(
        (u16_at(2), u16_at(4), u16_at(6), u16_at(8)),
        (54, 1460, 34, 16),
        "hdr_len, gso_size, csum_start, csum_offset"
    );
    assert_eq!(u16_at(10), 0, "num_buffers is 0 on what a driver sends");
    let sum_field = u16::from_be_bytes([bytes[12 + 50], bytes[12 + 51]]);
    assert_ne!(sum_field, 0, "the checksum field holds the pseudo-header sum for the device to finish");
}

#[test]
fn a_received_frame_with_a_bad_checksum_is_dropped_unless_the_device_vouches_for_it() {
    let f = nic_device(VERSION_1 | NET_F_MAC | NET_F_CSUM | NET_F_GUEST_CSUM, [2, 0, 0, 0, 0, 1]);
    let mut n = Nic::new(f.transport(), f.line()).expect("starts");
    let (_w, waker) = cx_counting();
    let mut cx = Context::from_waker(&waker);
    let good = tcp4(b"checked");
    let mut bad = good.clone();
    bad[60] ^= 0xff;
    assert!(deliver(&f, 12, &bad));
    assert!(n.receive(&mut cx).is_none(), "a corrupted segment is not delivered");
    assert_eq!(n.stats().rx_dropped, 1);
    assert!(deliver(&f, 12, &good));
    let got = n.receive(&mut cx).map(|(rx, _)| rx.consume(|b| b.to_vec()));
    assert_eq!(got.as_deref(), Some(&good[..]), "a correct one is");
    // DATA_VALID: the device checked it; the driver does not look again.
    let mut hdr = [0u8; 12];
    hdr[0] = 2;
    let mut d = f.dev();
    let chain = d.pop(RX).unwrap();
    let n_written = fake::write(&chain, &[&hdr[..], &bad[..]].concat());
    d.complete(RX, &chain, n_written);
    drop(d);
    assert!(n.receive(&mut cx).is_some(), "a frame the device vouched for is delivered");
}

#[test]
fn a_super_frame_across_merged_receive_buffers_arrives_whole() {
    let f = nic_device(QEMU_TAP, [2, 0, 0, 0, 0, 1]);
    let mut n = Nic::new(f.transport(), f.line()).expect("starts");
    assert!(n.capabilities().rx_max_frame_len >= 65_535, "GUEST_TSO4/6 with MRG_RXBUF");
    assert_ne!(f.dev().accepted & NET_F_MRG_RXBUF, 0);
    let frame = tcp4(&(0..60_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    // The device spreads it over as many buffers as it takes, saying how many in the first.
    let mut d = f.dev();
    let mut chains = Vec::new();
    let mut rest = &frame[..];
    let mut first = true;
    while first || !rest.is_empty() {
        let chain = d.pop(RX).expect("enough receive buffers posted");
        let room = fake::writable_len(&chain) - if first { 12 } else { 0 };
        let take = room.min(rest.len());
        let mut bytes = if first { vec![0u8; 12] } else { Vec::new() };
        bytes.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        first = false;
        chains.push((chain, bytes));
    }
    let count = chains.len() as u16;
    assert!(count > 1, "a 60 KB frame needs several buffers");
    chains[0].1[10..12].copy_from_slice(&count.to_le_bytes());
    for (chain, bytes) in &chains {
        let n = fake::write(chain, bytes);
        d.complete(RX, chain, n);
    }
    drop(d);
    let got = drive(recv_any(&mut n), || false);
    assert!(got == frame, "the super-frame is delivered whole ({} of {} bytes)", got.len(), frame.len());
    // Every buffer went back to the device: another super-frame fits again.
    assert!(f.dev().pop(RX).is_some());
}

// ---- virtio-blk ----

/// A disk with a write cache: writes land in `cache`, a flush moves them to `durable`.
struct Model {
    cache: Vec<u8>,
    durable: Vec<u8>,
    requests: Vec<u32>,
    /// Status to answer with (0 OK, 1 I/O error).
    status: u8,
}

fn disk_device(offered: u64, sectors: u64) -> Fake {
    let mut config = vec![0u8; 60];
    config[..8].copy_from_slice(&sectors.to_le_bytes());
    Fake::new(DeviceType::Block, offered, 1, config)
}

fn disk(offered: u64, sectors: u64) -> (Fake, Disk, Model) {
    let f = disk_device(offered, sectors);
    let d = Disk::new(f.transport(), f.line()).expect("a disk starts");
    let bytes = sectors as usize * 512;
    (f, d, Model { cache: vec![0; bytes], durable: vec![0; bytes], requests: Vec::new(), status: 0 })
}

/// Serve every request the driver queued; whether there was one.
fn serve(f: &Fake, m: &mut Model) -> bool {
    let mut d = f.dev();
    let Some(chain) = d.pop(0) else { return false };
    let input = fake::read(&chain);
    let kind = u32::from_le_bytes(input[..4].try_into().unwrap());
    let at = u64::from_le_bytes(input[8..16].try_into().unwrap()) as usize * 512;
    m.requests.push(kind);
    let written = match (kind, m.status) {
        (0, 0) => {
            let out_len = fake::writable_len(&chain) - 1;
            let mut reply = m.cache[at..at + out_len].to_vec();
            reply.push(0);
            fake::write(&chain, &reply)
        }
        (1, 0) => {
            let data = &input[16..];
            m.cache[at..at + data.len()].copy_from_slice(data);
            fake::write(&chain, &[0])
        }
        (4, 0) => {
            m.durable.copy_from_slice(&m.cache);
            fake::write(&chain, &[0])
        }
        (_, 0) => fake::write(&chain, &[2]),
        (_, s) => {
            let mut reply = vec![0u8; fake::writable_len(&chain) - 1];
            reply.push(s);
            fake::write(&chain, &reply)
        }
    };
    d.complete(0, &chain, written);
    true
}

#[test]
fn the_block_conformance_suite_passes_on_a_disk_with_a_cache() {
    let (f, mut d, mut m) = disk(VERSION_1 | BLK_F_FLUSH, 64);
    assert_eq!(d.missing(), None, "nothing to report");
    drive(morgana_testkit::block::check_rw(&mut d), || serve(&f, &mut m));
    assert!(m.requests.contains(&4), "the suite's flush reached the device as VIRTIO_BLK_T_FLUSH");
}

#[test]
fn writes_are_durable_once_flush_returns_and_not_before() {
    let (f, mut d, mut m) = disk(VERSION_1 | BLK_F_FLUSH, 16);
    let data = morgana_testkit::block::pattern(3, 1, 1024);
    drive(d.write(3, &data), || serve(&f, &mut m)).expect("write");
    assert_eq!(m.cache[3 * 512..5 * 512], data[..], "the write reached the device");
    assert!(m.durable.iter().all(|&b| b == 0), "but not its stable storage yet");

    let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
    let mut flush = pin!(d.flush());
    assert!(poll_once(flush.as_mut(), &wakes).is_pending(), "flush waits for the device: it does not spin");
    assert!(serve(&f, &mut m), "the device has the flush request");
    assert_eq!(m.requests.last(), Some(&4), "VIRTIO_BLK_T_FLUSH");
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "its completion interrupt wakes the task");
    assert_eq!(poll_once(flush.as_mut(), &wakes), Poll::Ready(Ok(())));
    assert_eq!(m.durable[3 * 512..5 * 512], data[..], "after flush the write is durable");
}

#[test]
fn a_read_and_a_write_larger_than_a_request_round_trip() {
    let (f, mut d, mut m) = disk(VERSION_1 | BLK_F_FLUSH, 1024);
    // 200 KiB: four requests of at most 64 KiB each way.
    let data: Vec<u8> = (0..400u64).flat_map(|s| morgana_testkit::block::pattern(s, 9, 512)).collect();
    drive(d.write(100, &data), || serve(&f, &mut m)).expect("write");
    let mut back = vec![0u8; data.len()];
    drive(d.read(100, &mut back), || serve(&f, &mut m)).expect("read");
    assert!(back == data, "200 KiB read back as written");
    assert_eq!(m.requests, [1, 1, 1, 1, 0, 0, 0, 0], "in 64 KiB requests");
}

#[test]
fn a_disk_without_flush_is_reported_and_flush_sends_it_nothing() {
    let (f, mut d, mut m) = disk(VERSION_1, 16);
    let note = d.missing().expect("a disk without VIRTIO_BLK_F_FLUSH is reported");
    assert!(note.contains("VIRTIO_BLK_F_FLUSH") && !note.contains('\n'), "in one line: {note}");
    drive(d.write(0, &[7u8; 512]), || serve(&f, &mut m)).expect("write");
    assert_eq!(drive(d.flush(), || serve(&f, &mut m)), Ok(()));
    assert_eq!(m.requests, [1], "no flush command for a device that has none");
    assert_eq!(f.dev().accepted & BLK_F_FLUSH, 0);
}

#[test]
fn a_read_only_disk_refuses_writes_and_is_not_reported_for_flush() {
    let (f, mut d, mut m) = disk(VERSION_1 | BLK_F_RO, 8);
    assert_eq!(d.missing(), None, "a read-only disk needs no flush");
    drive(morgana_testkit::block::check_read_only(&mut d), || serve(&f, &mut m));
    assert!(!m.requests.contains(&1), "no write reached the device");
}

#[test]
fn a_device_error_is_an_io_error() {
    let (f, mut d, mut m) = disk(VERSION_1 | BLK_F_FLUSH, 8);
    m.status = 1;
    let mut buf = [0u8; 512];
    assert_eq!(drive(d.read(0, &mut buf), || serve(&f, &mut m)), Err(BlockError::Io(5)));
    assert_eq!(drive(d.write(0, &buf), || serve(&f, &mut m)), Err(BlockError::Io(5)));
    assert_eq!(drive(d.flush(), || serve(&f, &mut m)), Err(BlockError::Io(5)));
    m.status = 0;
    assert_eq!(drive(d.read(0, &mut buf), || serve(&f, &mut m)), Ok(()), "the disk works again after");
}

#[test]
fn a_cancelled_read_does_not_corrupt_the_next_one() {
    let (f, mut d, mut m) = disk(VERSION_1 | BLK_F_FLUSH, 8);
    m.cache[512..1024].fill(0x11);
    m.cache[1024..1536].fill(0x22);
    let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
    {
        let mut buf = [0u8; 512];
        let mut read = pin!(d.read(1, &mut buf));
        assert!(poll_once(read.as_mut(), &wakes).is_pending());
        // Dropped while the device holds the request.
    }
    let mut buf = [0u8; 512];
    drive(d.read(2, &mut buf), || serve(&f, &mut m)).expect("read");
    assert!(buf.iter().all(|&b| b == 0x22), "the next read gets its own sector");
}
