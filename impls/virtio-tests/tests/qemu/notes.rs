//! `notes` on its virtio-blk disk, stopped the hard ways while one curl PUTs through the
//! forwarded port: QEMU killed (the disk an image file), and a power cut under the real driver
//! by the suite's NBD server ([`morgana_virtio_tests::nbd`]: the writes since the last flush
//! lost, or some of them kept in any order and the last torn). After each, `notes` boots again
//! on what survived, and every acknowledged PUT is there with its exact body, nothing else is
//! (but the one PUT whose answer never came, whole or not at all), and the directory listings
//! say the same. Both boot under TCG: a TLS handshake is arithmetic, which this host's
//! software KVM emulates instruction by instruction.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use morgana_netns::{Proc, TempDir, free_port, payload};
use morgana_virtio_tests::Env;
use morgana_virtio_tests::nbd::{At, Cut, Server};

/// The disk: small, so that the store formats it quickly and the cuts copy little.
const DISK: usize = 8 << 20;
/// Keys the PUTs cycle through, in 4 directories: later PUTs replace earlier ones (204).
const KEYS: usize = 100;

/// The key of the `i`-th PUT.
fn key(i: usize) -> String {
    format!("/d{}/k{}", i % 4, i % KEYS)
}

/// The body of the `i`-th PUT: its own bytes, 1 to 6000 (up to 12 sectors).
fn body(i: usize) -> Vec<u8> {
    payload(1 + (i * 397) % 6000, i as u64 + 1)
}

/// `notes` booted under TCG on `disk` (a file or an NBD URL), served on 127.0.0.1:`port`; and
/// what the store said at open.
fn boot(env: &Env, port: u16, disk: &str) -> Result<(Proc, String), String> {
    let opts = ["--accel", "tcg", "--forward", &format!("{port}:443"), "--block", disk];
    let mut g = Proc::spawn_group(env.xtask_run("notes", &opts, &[]));
    let boot = Duration::from_secs(90);
    let store = g.try_wait_for("INFO  notes: store ", boot)?;
    g.try_wait_for("INFO  notes: serving notes on https://", boot)?;
    g.try_wait_for("DHCP lease: 10.0.2.15/24", boot)?;
    Ok((g, store.split("notes: ").last().unwrap_or(&store).to_string()))
}

/// `curl` on `path` of the guest at `port`, trusting the development CA.
fn curl(env: &Env, c: &mut Command, port: u16, path: &str) {
    c.args(["-sS", "--max-time", "60", "--cacert"])
        .arg(env.root.join("stacks/tls/dev-certs/ca.pem"))
        .arg(format!("https://127.0.0.1:{port}{path}"));
}

/// PUTs `range` through one curl (one connection, one PUT at a time); once `at` are
/// acknowledged, `stop` runs and the guest's process group is killed. How many were
/// acknowledged in order: every 201 or 204 up to the first other answer, those that arrived
/// after `stop` too (their flush completed before it).
fn put_until(
    env: &Env,
    g: Proc,
    port: u16,
    dir: &Path,
    range: Range<usize>,
    at: usize,
    stop: impl FnOnce(),
) -> Result<usize, String> {
    let mut c = Command::new("curl");
    for (n, i) in range.clone().enumerate() {
        let file = dir.join(format!("put{i}"));
        std::fs::write(&file, body(i)).map_err(|e| e.to_string())?;
        if n > 0 {
            c.arg("--next");
        }
        c.args(["-X", "PUT", "-o", "/dev/null", "-w", "%{stderr}%{http_code}\\n", "--data-binary"])
            .arg(format!("@{}", file.display()));
        curl(env, &mut c, port, &key(i));
    }
    // The answers go to stderr, which curl does not buffer.
    let mut c = c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().map_err(|e| format!("curl: {e}"))?;
    let answers = BufReader::new(c.stderr.take().ok_or("no stderr")?);
    let (mut acked, mut stop, mut g) = (0, Some(stop), Some(g));
    let mut log = String::new();
    for line in answers.lines().map_while(Result::ok) {
        match line.trim() {
            "201" | "204" => acked += 1,
            // The guest is gone: the PUT under way fails, and every one after it.
            _ if stop.is_none() => break,
            other => {
                let _ = c.kill();
                let log = g.as_mut().map(Proc::text).unwrap_or_default();
                return Err(format!("PUT {acked} answered {other} before the cut\n{log}"));
            }
        }
        if acked == at
            && let Some(stop) = stop.take()
        {
            stop();
            if let Some(mut g) = g.take() {
                log = g.text();
            }
        }
    }
    let _ = c.kill();
    let _ = c.wait();
    if stop.is_some() {
        let log = g.as_mut().map(Proc::text).unwrap_or(log);
        return Err(format!("only {acked} PUTs answered, the cut was due after {at}\n{log}"));
    }
    Ok(acked)
}

/// What the store must hold: per key, the PUT whose body it has; and the PUT whose answer never
/// came, which may be there whole or not at all.
#[derive(Default)]
struct Model {
    present: BTreeMap<String, usize>,
    in_flight: Option<usize>,
}

impl Model {
    /// PUTs `acked` were acknowledged, in order, and `in_flight` may have been applied.
    fn record(&mut self, acked: Range<usize>, in_flight: usize) {
        for i in acked {
            self.present.insert(key(i), i);
        }
        self.in_flight = Some(in_flight);
    }

    /// GET every key (one curl) and each directory's listing from the guest at `port`; `Ok`
    /// if they are as the model allows (which then takes in the PUT in flight if it was
    /// applied), saying how many keys there are and what became of that PUT.
    fn check(&mut self, env: &Env, port: u16, dir: &Path) -> Result<String, String> {
        let mut keys: BTreeSet<String> = self.present.keys().cloned().collect();
        keys.extend(self.in_flight.map(key));
        let keys: Vec<String> = keys.into_iter().collect();
        let mut c = Command::new("curl");
        for (n, k) in keys.iter().enumerate() {
            if n > 0 {
                c.arg("--next");
            }
            c.arg("-o").arg(dir.join(format!("get{n}"))).args(["-w", "%{http_code}\\n"]);
            curl(env, &mut c, port, k);
        }
        let out = c.output().map_err(|e| format!("curl: {e}"))?;
        let codes = String::from_utf8_lossy(&out.stdout);
        let codes: Vec<&str> = codes.lines().collect();
        if codes.len() != keys.len() {
            return Err(format!(
                "{} answers to {} GETs: {}",
                codes.len(),
                keys.len(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        for (n, (k, code)) in keys.iter().zip(codes).enumerate() {
            let got = match code {
                "200" => Some(std::fs::read(dir.join(format!("get{n}"))).map_err(|e| e.to_string())?),
                "404" => None,
                other => return Err(format!("GET {k}: HTTP {other}")),
            };
            let acked = self.present.get(k).copied();
            let flying = self.in_flight.filter(|&i| key(i) == *k);
            let is = |i: Option<usize>| got.as_deref() == i.map(body).as_deref();
            match () {
                _ if flying.is_some() && is(flying) => {
                    self.present.insert(k.clone(), flying.unwrap_or_default());
                }
                _ if is(acked) => {}
                _ => {
                    let what =
                        got.map_or("nothing".to_string(), |g| format!("{} bytes that are no PUT's", g.len()));
                    return Err(match acked {
                        Some(i) => format!("{k}: {what}, not the body of PUT {i} (acknowledged)"),
                        None => format!("{k}: {what}, where only PUT {flying:?} (never answered) may be"),
                    });
                }
            }
        }
        let flying = match self.in_flight.take() {
            Some(i) if self.present.get(&key(i)) == Some(&i) => "there",
            Some(_) => "not there",
            None => "none",
        };
        for d in 0..4 {
            let want: BTreeSet<String> = self
                .present
                .keys()
                .filter_map(|k| k.strip_prefix(&format!("/d{d}/")).map(str::to_string))
                .collect();
            let mut c = Command::new("curl");
            curl(env, &mut c, port, &format!("/d{d}/"));
            let out = c.output().map_err(|e| format!("curl: {e}"))?;
            let json = String::from_utf8_lossy(&out.stdout);
            let names: BTreeSet<String> = json
                .split("{\"name\":\"")
                .skip(1)
                .filter_map(|e| e.split_once("\",\"kind\":\"value\"}").map(|(n, _)| n.to_string()))
                .collect();
            if names != want || json.matches("\"name\"").count() != want.len() {
                return Err(format!("GET /d{d}/ listed {json:?}, not the {} keys {want:?}", want.len()));
            }
        }
        Ok(format!("{} keys, the PUT whose answer never came {flying}", self.present.len()))
    }
}

/// A zeroed image file of [`DISK`] bytes in `dir` (the store formats an all-zero device).
fn blank_image(dir: &TempDir) -> Result<String, String> {
    let image = dir.join("notes.img");
    std::fs::File::create(&image).and_then(|f| f.set_len(DISK as u64)).map_err(|e| e.to_string())?;
    image.to_str().map(str::to_string).ok_or_else(|| "a temporary path that is not UTF-8".into())
}

/// QEMU killed (its process group, SIGKILL) a third of the way through 240 PUTs on an image
/// file; restarted on the same file, `notes` has every acknowledged PUT.
pub fn qemu_killed(env: &Env) -> Result<(), String> {
    const PUTS: usize = 240;
    let dir = TempDir::new("notes-kill");
    let image = blank_image(&dir)?;
    let port = free_port();
    let (g, _) = boot(env, port, &image)?;
    let acked = put_until(env, g, port, dir.path(), 0..PUTS, PUTS / 3, || {})?;
    let mut model = Model::default();
    model.record(0..acked, acked);
    let port = free_port();
    let (mut g, store) = boot(env, port, &image)?;
    let found = model.check(env, port, dir.path()).map_err(|e| format!("{e}\n{}", g.text()))?;
    println!(
        "        {acked} of {PUTS} PUTs acknowledged before QEMU was killed; all there after the restart ({store}): {found}"
    );
    Ok(())
}

/// Six power cuts through the NBD server, each after a seeded number of acknowledged PUTs,
/// within the writes of the PUT under way or at its flush; in turn, every write since the last
/// flush dropped, a seeded subset kept in a seeded order, the same with the last one torn. QEMU is killed after each and `notes` boots on the surviving image
/// (served again): every PUT acknowledged before the cut is there. And the guest's flushes
/// reached the server: at least one `NBD_CMD_FLUSH` per acknowledged PUT.
pub fn nbd_power_cuts(env: &Env) -> Result<(), String> {
    const PUTS: usize = 100;
    const CUTS: usize = 6;
    let seed: u64 = std::env::var("MORGANA_NBD_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    println!("        seed {seed} (MORGANA_NBD_SEED)");
    let dir = TempDir::new("notes-nbd");
    let socket = dir.join("nbd.sock");
    let cuts = (0..CUTS as u64).map(|r| match r % 3 {
        0 => Cut::DropAll,
        n => Cut::Subset { seed: seed.wrapping_add(r), tear: n == 2 },
    });
    let (mut image, mut model, mut next) = (vec![0u8; DISK], Model::default(), 0);
    for (round, how) in cuts.enumerate() {
        let server = Server::start(&socket, "notes", image).map_err(|e| format!("NBD server: {e}"))?;
        let port = free_port();
        let (mut g, store) = boot(env, port, &server.url())?;
        if round > 0 {
            let found = model
                .check(env, port, dir.path())
                .map_err(|e| format!("after cut {round}: {e}\n{}", g.text()))?;
            println!("        after cut {round} ({store}): every acknowledged PUT there; {found}");
        }
        let flushes = server.counts().flushes;
        let at = 20 + (seed as usize * 7 + round * 13) % 40;
        // The cut falls within the next PUT's writes (or a later one's), or at its flush.
        let when = if round % 2 == 0 { At::Write(1 + (seed + round as u64) % 4) } else { At::Flush };
        let mut report = None;
        let range = next..next + PUTS;
        let acked = put_until(env, g, port, dir.path(), range.clone(), at, || {
            server.cut_at(when, how);
            report = server.wait_cut(Duration::from_secs(30));
        })?;
        let report = report.ok_or("the guest wrote nothing more after the cut was armed")?;
        let flushed = report.counts.flushes - flushes;
        println!(
            "        cut {} at {when:?}: {acked} PUTs acknowledged, {flushed} NBD flushes, {} writes; {how:?}: {} of {} pending writes kept, torn {:?}",
            round + 1,
            report.counts.writes,
            report.kept,
            report.pending,
            report.torn
        );
        if flushed < acked as u64 {
            return Err(format!(
                "{flushed} NBD_CMD_FLUSH for {acked} acknowledged PUTs: the guest's flushes do not reach the disk"
            ));
        }
        model.record(range.start..range.start + acked, range.start + acked);
        next = range.start + acked + 1;
        image = report.image;
    }
    let server = Server::start(&socket, "notes", image).map_err(|e| format!("NBD server: {e}"))?;
    let port = free_port();
    let (mut g, store) = boot(env, port, &server.url())?;
    let found =
        model.check(env, port, dir.path()).map_err(|e| format!("after the last cut: {e}\n{}", g.text()))?;
    println!("        after cut {CUTS} ({store}): every acknowledged PUT there; {found}");
    Ok(())
}

/// Keys of the large store: their bytes alone are more than the small guest's whole RAM.
const BIG_KEYS: usize = 400_000;
/// The small guest's RAM.
const SMALL_MEM: &str = "8M";

/// Key `i` of the large store (24 bytes, as `bench store`'s), spread over 16 directories.
fn big_key(i: usize) -> String {
    format!("/big/d{:x}/{:016x}{:02}", i % 16, (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), i % 100)
}

/// The value of key `i` (16 bytes, inline in its leaf).
fn big_value(i: usize) -> Vec<u8> {
    payload(16, i as u64 + 7)
}

/// An image holding [`BIG_KEYS`] keys, written on the host through the same store over a file.
fn big_image(dir: &TempDir) -> Result<(String, usize), String> {
    use morgana::kv::{Key, KvRw as _};
    let image = dir.join("big.img");
    let dev = morgana_unix::FileBlock::options().create(96 << 20).open(&image).map_err(|e| e.to_string())?;
    let store = futures::executor::block_on(morgana_store::Store::open(dev, morgana_kvtool::Wall))
        .map_err(|e| e.to_string())?;
    let mut key_bytes = 0;
    for from in (0..BIG_KEYS).step_by(20_000) {
        let mut batch = morgana_store::Batch::new();
        for i in from..(from + 20_000).min(BIG_KEYS) {
            let k = big_key(i);
            key_bytes += k.len();
            batch.set(Key::parse(&k).map_err(|e| e.to_string())?, big_value(i));
        }
        futures::executor::block_on(store.batch(&batch)).map_err(|e| e.to_string())?;
    }
    let check = Key::parse(&big_key(1)).map_err(|e| e.to_string())?;
    futures::executor::block_on(store.set(&check, &big_value(1))).map_err(|e| e.to_string())?;
    let image = image.to_str().ok_or("a temporary path that is not UTF-8")?.to_string();
    Ok((image, key_bytes))
}

/// `notes --mem 8M` on a store of 400,000 keys (their bytes alone 9.6 MB, more than the
/// guest's RAM; the tree about three times that): it opens, serves a sample of keys from all
/// over the tree with their exact values, takes new PUTs and DELETEs among them, and a listing.
pub fn big_store_small_guest(env: &Env) -> Result<(), String> {
    let dir = TempDir::new("notes-big");
    let t = std::time::Instant::now();
    let (image, key_bytes) = big_image(&dir)?;
    let built = t.elapsed();
    let port = free_port();
    let opts = ["--accel", "tcg", "--mem", SMALL_MEM, "--forward", &format!("{port}:443"), "--block", &image];
    let mut g = Proc::spawn_group(env.xtask_run("notes", &opts, &[]));
    let boot = Duration::from_secs(180);
    let t = std::time::Instant::now();
    let store = g.try_wait_for("INFO  notes: store ", boot)?;
    let opened = t.elapsed();
    g.try_wait_for("DHCP lease: 10.0.2.15/24", boot)?;
    let fail = |e: String, g: &mut Proc| format!("{e}\n{}", g.text());
    // Keys from all over the tree, each GET answered with its value.
    let sample: Vec<usize> = (0..40).map(|n| (n * 9_973 + 17) % BIG_KEYS).collect();
    let mut c = Command::new("curl");
    for (n, &i) in sample.iter().enumerate() {
        if n > 0 {
            c.arg("--next");
        }
        c.arg("-o").arg(dir.join(&format!("get{n}"))).args(["-w", "%{http_code}\\n"]);
        curl(env, &mut c, port, &big_key(i));
    }
    let out = c.output().map_err(|e| format!("curl: {e}"))?;
    let codes = String::from_utf8_lossy(&out.stdout).to_string();
    for (n, (&i, code)) in sample.iter().zip(codes.lines().chain(std::iter::repeat(""))).enumerate() {
        let got = std::fs::read(dir.join(&format!("get{n}"))).unwrap_or_default();
        if code != "200" || got != big_value(i) {
            return Err(fail(
                format!("GET {}: HTTP '{code}', {} bytes, not its 16-byte value", big_key(i), got.len()),
                &mut g,
            ));
        }
    }
    // New keys PUT and read back, one of them deleted.
    let fresh = |n: usize| format!("/big/new/k{n}");
    for n in 0..5 {
        let mut c = Command::new("curl");
        c.args(["-X", "PUT", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary"])
            .arg(format!("value {n}"));
        curl(env, &mut c, port, &fresh(n));
        let out = c.output().map_err(|e| format!("curl: {e}"))?;
        if out.stdout != b"201" {
            return Err(fail(
                format!("PUT {}: HTTP {}", fresh(n), String::from_utf8_lossy(&out.stdout)),
                &mut g,
            ));
        }
    }
    let mut c = Command::new("curl");
    c.args(["-X", "DELETE", "-o", "/dev/null", "-w", "%{http_code}"]);
    curl(env, &mut c, port, &fresh(2));
    let out = c.output().map_err(|e| format!("curl: {e}"))?;
    if out.stdout != b"204" {
        return Err(fail(
            format!("DELETE {}: HTTP {}", fresh(2), String::from_utf8_lossy(&out.stdout)),
            &mut g,
        ));
    }
    let mut c = Command::new("curl");
    curl(env, &mut c, port, "/big/new/");
    let listing = String::from_utf8_lossy(&c.output().map_err(|e| format!("curl: {e}"))?.stdout).to_string();
    let names: Vec<&str> =
        listing.split("{\"name\":\"").skip(1).filter_map(|e| e.split_once('"').map(|(n, _)| n)).collect();
    if names != ["k0", "k1", "k3", "k4"] {
        return Err(fail(format!("GET /big/new/ listed {listing:?}, not k0, k1, k3, k4"), &mut g));
    }
    let mut c = Command::new("curl");
    curl(env, &mut c, port, &fresh(3));
    let got = c.output().map_err(|e| format!("curl: {e}"))?.stdout;
    if got != b"value 3" {
        return Err(fail(
            format!("GET {}: {:?}, not 'value 3'", fresh(3), String::from_utf8_lossy(&got)),
            &mut g,
        ));
    }
    println!(
        "        {BIG_KEYS} keys ({:.1} MB of key bytes) built on the host in {:.1} s; --mem {SMALL_MEM}: {} after {:.1} s, 40 GETs, 5 PUTs, a DELETE and a listing right",
        key_bytes as f64 / 1e6,
        built.as_secs_f64(),
        store.split("notes: ").last().unwrap_or(&store),
        opened.as_secs_f64()
    );
    Ok(())
}
