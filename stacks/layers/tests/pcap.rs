//! `PcapWriter` on an in-memory NIC pair: the capture holds every frame both ways, in order,
//! with its time, byte for byte, and `tshark` reads the same frames back from a file written
//! through a std `File`; a sink that fails stops the capture and nothing else.

use std::process::{Command, ExitCode};
use std::task::{Context, Waker};

use embedded_io::{ErrorKind, ErrorType};
use embedded_io_adapters::std::FromStd;
use morgana::net::{Net, RxToken, TxToken};
use morgana::{Clock, Duration, Instant};
use morgana_layers::{CaptureStats, PcapWriter};
use morgana_mem::{ManualClock, MemNet, pair};
use morgana_netns::{Need, Suite};
use morgana_testkit::net::frame;

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// One frame of the traffic: when `a` saw it, and what.
struct Sent {
    at: Instant,
    frame: Vec<u8>,
}

fn send<N: Net>(net: &mut N, f: &[u8]) {
    let mut cx = Context::from_waker(Waker::noop());
    net.transmit(&mut cx).expect("room to send").consume(f.len(), |buf| buf.copy_from_slice(f));
}

fn recv<N: Net>(net: &mut N) -> Vec<u8> {
    let mut cx = Context::from_waker(Waker::noop());
    net.receive(&mut cx).expect("a frame").0.consume(|f| f.to_vec())
}

/// Traffic through `a` (wrapped) and a peer: frames sent and received by `a`, in `a`'s order,
/// and one answered from the receive token (as smoltcp answers inside `consume`).
fn traffic<N: Net>(a: &mut N, mut b: MemNet, clock: &ManualClock) -> Vec<Sent> {
    let mut seen = Vec::new();
    for (i, len) in [60usize, 61, 100, 1000, 1514].into_iter().enumerate() {
        clock.advance(Duration::from_micros(1_234_567));
        let out = frame(B, A, i as u16, len);
        send(a, &out);
        seen.push(Sent { at: clock.now(), frame: out.clone() });
        assert_eq!(recv(&mut b), out);
        clock.advance(Duration::from_nanos(7));
        let back = frame(A, B, 100 + i as u16, 1574 - len);
        send(&mut b, &back);
        assert_eq!(recv(a), back);
        seen.push(Sent { at: clock.now(), frame: back });
    }
    // An answer sent from inside the receive token's `consume`.
    let ping = frame(A, B, 500, 98);
    send(&mut b, &ping);
    let pong = frame(B, A, 501, 98);
    let mut cx = Context::from_waker(Waker::noop());
    let (rx, tx) = a.receive(&mut cx).expect("the ping");
    rx.consume(|f| {
        assert_eq!(f, &ping[..]);
        tx.consume(pong.len(), |buf| buf.copy_from_slice(&pong));
    });
    seen.push(Sent { at: clock.now(), frame: ping });
    seen.push(Sent { at: clock.now(), frame: pong.clone() });
    assert_eq!(recv(&mut b), pong);
    seen
}

/// A capture of [`traffic`] into `sink`, and what was sent.
fn capture<W: embedded_io::Write>(sink: W) -> (W, CaptureStats, Vec<Sent>) {
    let clock = ManualClock::new(Duration::ZERO);
    let (a, b) = pair(A, B);
    let mut a = PcapWriter::new(a, clock.clone(), sink);
    let seen = traffic(&mut a, b, &clock);
    a.flush();
    let stats = a.capture_stats();
    (a.into_parts().1, stats, seen)
}

/// The records of a nanosecond little-endian pcap file: (time, frame), checking every field.
fn parse(file: &[u8]) -> Result<Vec<(Instant, Vec<u8>)>, String> {
    let word = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
    if file.len() < 24 || word(0) != 0xa1b2_3c4d || word(4) != 0x0004_0002 || word(20) != 1 {
        return Err("not a nanosecond Ethernet pcap file, version 2.4".into());
    }
    let (mut at, mut out) = (24, Vec::new());
    while at < file.len() {
        let (sec, nsec, kept, len) = (word(at), word(at + 4), word(at + 8) as usize, word(at + 12) as usize);
        if kept != len || nsec >= 1_000_000_000 || at + 16 + kept > file.len() {
            return Err(format!("bad record at byte {at}"));
        }
        let t = Instant::from_nanos(u64::from(sec) * 1_000_000_000 + u64::from(nsec));
        out.push((t, file[at + 16..at + 16 + kept].to_vec()));
        at += 16 + kept;
    }
    Ok(out)
}

fn the_capture_holds_every_frame_in_order_byte_for_byte() {
    let (file, stats, seen) = capture(Vec::new());
    assert_eq!(stats, CaptureStats { captured: seen.len() as u64, missed: 0, error: None });
    let records = parse(&file).unwrap();
    assert_eq!(records.len(), seen.len());
    for (i, ((t, f), s)) in records.iter().zip(&seen).enumerate() {
        assert_eq!((*t, f), (s.at, &s.frame), "record {i}");
    }
}

fn tshark_reads_back_the_same_frames() -> Result<(), String> {
    let path = std::env::temp_dir().join(format!("morgana-layers-{}.pcap", std::process::id()));
    let file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
    let (_, stats, seen) = capture(FromStd::new(file));
    assert_eq!(stats.captured, seen.len() as u64);
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args([
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "eth.src",
            "-e",
            "eth.dst",
            "-e",
            "frame.len",
            "-e",
            "data.data",
        ])
        .output()
        .map_err(|e| format!("tshark: {e}"))?;
    let _ = std::fs::remove_file(&path);
    if !out.status.success() {
        return Err(format!("tshark -r failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    let mac = |m: &[u8]| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    if lines.len() != seen.len() {
        return Err(format!(
            "tshark read {} frames, {} were captured:\n{}",
            lines.len(),
            seen.len(),
            lines.join("\n")
        ));
    }
    for (i, (line, s)) in lines.iter().zip(&seen).enumerate() {
        let ns = s.at.as_nanos();
        let expected = format!(
            "{}.{:09}\t{}\t{}\t{}\t{}",
            ns / 1_000_000_000,
            ns % 1_000_000_000,
            mac(&s.frame[6..12]),
            mac(&s.frame[..6]),
            s.frame.len(),
            hex(&s.frame[14..]),
        );
        if *line != expected {
            return Err(format!("frame {i}: tshark read\n  {line}\nexpected\n  {expected}"));
        }
    }
    Ok(())
}

/// A sink that takes `room` bytes, then fails.
struct Full {
    room: usize,
    taken: Vec<u8>,
}

impl ErrorType for Full {
    type Error = ErrorKind;
}

impl embedded_io::Write for Full {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        let n = buf.len().min(self.room - self.taken.len());
        if n == 0 {
            return Err(ErrorKind::OutOfMemory);
        }
        self.taken.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

fn a_failing_sink_stops_the_capture_not_the_network() {
    // Room for the header and the first two frames (60 and 1514 bytes), not the third's header.
    let room = 24 + 16 + 60 + 16 + 1514 + 10;
    let (sink, stats, seen) = capture(Full { room, taken: Vec::new() });
    // Every frame still went through (traffic() checks each arrives), and the capture says
    // where it stopped and why.
    assert_eq!(stats.captured, 2);
    assert_eq!(stats.missed, seen.len() as u64 - 2);
    assert_eq!(stats.error, Some(ErrorKind::OutOfMemory));
    let records = parse(&sink.taken[..24 + 16 + 60 + 16 + 1514]).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].1, seen[1].frame);
}

fn main() -> ExitCode {
    let mut suite = Suite::new();
    suite.test(
        "the_capture_holds_every_frame_in_order_byte_for_byte",
        &[],
        the_capture_holds_every_frame_in_order_byte_for_byte,
    );
    suite.check(
        "tshark_reads_back_the_same_frames",
        &[Need::program("tshark", "tshark")],
        tshark_reads_back_the_same_frames,
    );
    suite.test(
        "a_failing_sink_stops_the_capture_not_the_network",
        &[],
        a_failing_sink_stops_the_capture_not_the_network,
    );
    suite.run()
}
