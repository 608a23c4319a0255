//! The server against a client of the handshake: what survives a cut, and refusals.

use super::protocol::*;
use super::*;
use std::io::{Read, Write};
use std::time::Duration;

/// The client side of the fixed newstyle handshake and of simple requests: enough to drive
/// the server here (QEMU drives it in the QEMU suite).
struct Client(UnixStream);

/// An export's size and transmission flags, or the type of the error reply to its option.
type Export = Result<(u64, u16), u32>;

impl Client {
    /// Handshake, an option the server does not know, then `NBD_OPT_GO` for `export`: the
    /// export's size and flags, or the error reply's type.
    fn connect(socket: &Path, export: &str) -> io::Result<(Self, Export)> {
        let mut s = UnixStream::connect(socket)?;
        assert_eq!((read_u64(&mut s)?, read_u64(&mut s)?), (NBDMAGIC, IHAVEOPT));
        assert_eq!(read_u16(&mut s)? & FLAG_FIXED_NEWSTYLE, FLAG_FIXED_NEWSTYLE);
        s.write_all(&(1u32 | FLAG_C_NO_ZEROES).to_be_bytes())?;
        let mut c = Self(s);
        c.option(8, &[])?; // NBD_OPT_STRUCTURED_REPLY
        assert_eq!(c.reply(8)?.0, REP_ERR_UNSUP);
        let mut go = (export.len() as u32).to_be_bytes().to_vec();
        go.extend_from_slice(export.as_bytes());
        go.extend_from_slice(&0u16.to_be_bytes());
        c.option(OPT_GO, &go)?;
        let (kind, info) = c.reply(OPT_GO)?;
        if kind != REP_INFO {
            return Ok((c, Err(kind)));
        }
        assert_eq!(c.reply(OPT_GO)?.0, REP_ACK);
        let size = u64::from_be_bytes(info[2..10].try_into().unwrap());
        Ok((c, Ok((size, u16::from_be_bytes([info[10], info[11]])))))
    }

    fn option(&mut self, option: u32, data: &[u8]) -> io::Result<()> {
        let mut out = IHAVEOPT.to_be_bytes().to_vec();
        out.extend_from_slice(&option.to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
        self.0.write_all(&out)
    }

    fn reply(&mut self, option: u32) -> io::Result<(u32, Vec<u8>)> {
        assert_eq!((read_u64(&mut self.0)?, read_u32(&mut self.0)?), (REPLY_MAGIC, option));
        let kind = read_u32(&mut self.0)?;
        let mut data = vec![0; read_u32(&mut self.0)? as usize];
        self.0.read_exact(&mut data)?;
        Ok((kind, data))
    }

    /// One request; its error and, for a read of `len` bytes, the data.
    fn request(&mut self, kind: u16, offset: u64, len: usize, data: &[u8]) -> io::Result<(u32, Vec<u8>)> {
        let mut out = REQUEST_MAGIC.to_be_bytes().to_vec();
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&7u64.to_be_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.extend_from_slice(data);
        self.0.write_all(&out)?;
        assert_eq!(read_u32(&mut self.0)?, SIMPLE_REPLY_MAGIC);
        let error = read_u32(&mut self.0)?;
        assert_eq!(read_u64(&mut self.0)?, 7, "the request's handle");
        let mut back = vec![0; if kind == CMD_READ && error == 0 { len } else { 0 }];
        self.0.read_exact(&mut back)?;
        Ok((error, back))
    }
}

fn socket(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("morgana-nbd-{tag}-{}.sock", std::process::id()))
}

#[test]
fn flushed_writes_survive_a_cut_and_pending_ones_as_the_cut_says() {
    let path = socket("cut");
    let server = Server::start(&path, "disk", vec![0; 8 * SECTOR]).unwrap();
    let (mut c, export) = Client::connect(&path, "disk").unwrap();
    assert_eq!(export, Ok((8 * SECTOR as u64, FLAG_HAS_FLAGS | FLAG_SEND_FLUSH)));
    assert_eq!(c.request(CMD_WRITE, 0, SECTOR, &[0xaa; SECTOR]).unwrap().0, 0);
    assert_eq!(c.request(CMD_FLUSH, 0, 0, &[]).unwrap().0, 0);
    assert_eq!(c.request(CMD_WRITE, 2 * SECTOR as u64, 4 * SECTOR, &[0xbb; 4 * SECTOR]).unwrap().0, 0);
    // Reads see the pending write.
    assert_eq!(c.request(CMD_READ, 2 * SECTOR as u64, 4 * SECTOR, &[]).unwrap(), (0, vec![0xbb; 4 * SECTOR]));
    assert_eq!(c.request(CMD_READ, 8 * SECTOR as u64, SECTOR, &[]).unwrap().0, EINVAL, "past the end");
    assert_eq!(server.counts(), Counts { reads: 1, writes: 2, flushes: 1 });

    let lost = server.cut(Cut::DropAll);
    let mut want = vec![0; 8 * SECTOR];
    want[..SECTOR].fill(0xaa);
    assert_eq!((lost.pending, lost.kept, lost.torn), (1, 0, None));
    assert!(lost.image == want, "only the flushed write survives");

    let torn = server.cut(Cut::Subset { seed: 3, tear: true });
    let (kept, of) = torn.torn.expect("a 4-sector write tears");
    assert!((torn.kept, of) == (1, 4) && (1..4).contains(&kept), "{:?}", torn.torn);
    let sectors: Vec<u8> = torn.image.chunks(SECTOR).map(|s| s[0]).collect();
    assert_eq!(sectors[..2], [0xaa, 0]);
    assert_eq!(sectors[2..6].iter().filter(|&&b| b == 0xbb).count(), kept, "{sectors:?}");
    assert!(sectors[2..].iter().all(|&b| b == 0 || b == 0xbb));

    // Cut: nothing is answered any more.
    c.0.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    assert!(c.request(CMD_READ, 0, SECTOR, &[]).is_err(), "a request answered after the cut");
}

#[test]
fn a_cut_armed_at_the_flush_keeps_the_writes_before_it_pending() {
    let path = socket("armed");
    let server = Server::start(&path, "disk", vec![0; 4 * SECTOR]).unwrap();
    let (mut c, _) = Client::connect(&path, "disk").unwrap();
    server.cut_at(At::Flush, Cut::DropAll);
    c.request(CMD_WRITE, 0, SECTOR, &[1; SECTOR]).unwrap();
    let mut flush = REQUEST_MAGIC.to_be_bytes().to_vec();
    flush.extend_from_slice(&[0, 0, 0, 3]);
    flush.extend_from_slice(&[0; 20]);
    c.0.write_all(&flush).unwrap();
    let report = server.wait_cut(Duration::from_secs(5)).expect("the flush cuts");
    assert_eq!((report.pending, report.counts.flushes), (1, 0));
    assert!(report.image.iter().all(|&b| b == 0));
}

#[test]
fn an_unknown_export_is_refused() {
    let path = socket("unknown");
    let _server = Server::start(&path, "disk", vec![0; SECTOR]).unwrap();
    let (_, export) = Client::connect(&path, "other").unwrap();
    assert_eq!(export, Err(REP_ERR_UNKNOWN));
}
