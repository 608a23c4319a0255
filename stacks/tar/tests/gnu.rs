//! Archives made by GNU `tar` in each of its formats, served through the read-only KV suite;
//! refusals of malformed images in one line; random corruptions that never panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use futures::executor::block_on;
use morgana::block::{Block, BlockError, BlockInfo};
use morgana::kv::{Key, Kind, KvError, KvRo, KvRw};
use morgana_mem::{ManualClock, MemBlock, MemKv};
use morgana_tar::{TarError, TarKv};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

fn k(s: &str) -> Key {
    Key::parse(s).unwrap()
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("morgana-tar-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The files of the test tree, relative paths and bytes. `long` adds names that only the GNU
/// and pax formats can hold (a path over 256 bytes).
fn files(long: bool) -> Vec<(String, Vec<u8>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut big = vec![0u8; 100_000];
    rng.fill_bytes(&mut big);
    let mut out = vec![
        ("index.html".to_string(), b"<h1>hello from a tar image</h1>\n".to_vec()),
        ("css/site.css".into(), b"body { color: #333 }\n".to_vec()),
        ("a/b/c/deep.bin".into(), big),
        ("empty".into(), Vec::new()),
        ("caf\u{e9}/men\u{fc}.txt".into(), b"UTF-8 names".to_vec()),
        (format!("{}/file-in-a-long-directory.txt", "d".repeat(90)), b"past 100 bytes".to_vec()),
        ("record/exactly-512".into(), vec![b'x'; 512]),
    ];
    if long {
        out.push((
            format!("{}/{}/{}.txt", "x".repeat(100), "y".repeat(100), "z".repeat(90)),
            b"past 256".to_vec(),
        ));
    }
    out
}

/// Write the tree under `dir`, with a known time on each file, a hard link, a symbolic link and
/// an empty directory (neither of the last two is a value).
fn write_tree(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (i, (path, data)) in files.iter().enumerate() {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + i as u64);
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(t).unwrap();
    }
    std::fs::create_dir_all(dir.join("empty-dir")).unwrap();
    std::os::unix::fs::symlink("index.html", dir.join("link-to-index")).unwrap();
    std::fs::hard_link(dir.join("index.html"), dir.join("hard-index.html")).unwrap();
}

/// `tar --format=FORMAT -cf - -C dir .`, as bytes.
fn tar(dir: &Path, format: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .args([&format!("--format={format}"), "--sort=name", "-cf", "-", "-C"])
        .arg(dir)
        .arg(".")
        .output()
        .expect("GNU tar is needed for these tests (apt-get install tar)");
    assert!(out.status.success(), "tar --format={format}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A RAM disk holding `image` (padded to whole sectors).
fn disk(image: &[u8], sector: u32) -> MemBlock {
    let sectors = (image.len() as u64).div_ceil(u64::from(sector));
    let mut d = MemBlock::new(sector, sectors);
    let mut padded = image.to_vec();
    padded.resize((sectors * u64::from(sector)) as usize, 0);
    block_on(d.write(0, &padded)).unwrap();
    d
}

/// What the store should hold for the tree of `files` (the hard link included).
fn expected(files: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = files.iter().map(|(p, d)| (format!("/{p}"), d.clone())).collect();
    out.push(("/hard-index.html".into(), files[0].1.clone()));
    out
}

/// The same values in `MemKv`, whose dictionary digests the tar store must match.
fn mem_kv(contents: &[(String, Vec<u8>)]) -> MemKv<ManualClock> {
    let kv = MemKv::new(ManualClock::default());
    for (p, d) in contents {
        block_on(kv.set(&k(p), d)).unwrap();
    }
    kv
}

fn check_image(image: &[u8], long: bool, format: &str) {
    let contents = expected(&files(long));
    let borrowed: Vec<(&str, &[u8])> = contents.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
    let mem = mem_kv(&contents);
    for sector in [512, 4096] {
        let store = block_on(TarKv::open(disk(image, sector))).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(store.len(), contents.len(), "{format}: every file is a value");
        block_on(morgana_testkit::kv::check_ro(&store, &borrowed));
        block_on(async {
            assert_eq!(store.exists(&k("/empty-dir")).await, Ok(None), "{format}: no empty dictionary");
            assert_eq!(store.exists(&k("/link-to-index")).await, Ok(None), "{format}: a symlink is no value");
            assert_eq!(
                store.last_modified(&k("/index.html")).await,
                Ok(std::time::Duration::from_secs(1_700_000_000)),
                "{format}: the member's time"
            );
            for dir in ["/", "/a", "/a/b", "/css", "/caf\u{e9}"] {
                assert_eq!(
                    store.digest(&k(dir)).await,
                    mem.digest(&k(dir)).await,
                    "{format}: digest of {dir}"
                );
            }
            // Twice: the second from the kept digest.
            let deep = k("/a/b/c/deep.bin");
            assert_eq!(store.digest(&deep).await, mem.digest(&deep).await);
            assert_eq!(store.digest(&deep).await, mem.digest(&deep).await);
            let tail = store.get_partial(&deep, 99_990, 100).await.unwrap();
            assert_eq!(tail, contents.iter().find(|(p, _)| *p == "/a/b/c/deep.bin").unwrap().1[99_990..]);
        });
    }
}

#[test]
fn archives_in_every_gnu_tar_format_pass_the_read_only_suite() {
    for (format, long) in [("gnu", true), ("pax", true), ("posix", true), ("ustar", false), ("oldgnu", true)]
    {
        let dir = scratch(format);
        write_tree(&dir, &files(long));
        let image = tar(&dir, format);
        check_image(&image, long, format);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn an_image_file_is_served_through_file_block() {
    let dir = scratch("file");
    let tree = dir.join("tree");
    write_tree(&tree, &files(true));
    let path = dir.join("site.tar");
    std::fs::write(&path, tar(&tree, "gnu")).unwrap();
    let dev = morgana_unix::FileBlock::options().read_only(true).open(&path).unwrap();
    let store = block_on(TarKv::open(dev)).unwrap();
    let contents = expected(&files(true));
    let borrowed: Vec<(&str, &[u8])> = contents.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
    block_on(morgana_testkit::kv::check_ro(&store, &borrowed));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A ustar header for `name`, with its checksum.
fn header(name: &str, size: u64, kind: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"14524046000\0");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    seal(&mut h);
    h
}

fn seal(h: &mut [u8; 512]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// An archive of `(name, data)` regular files, ended by two zero records.
fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in members {
        out.extend_from_slice(&header(name, data.len() as u64, b'0'));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn refused(image: &[u8]) -> String {
    let e = block_on(TarKv::open(disk(image, 512))).err().expect("the image is refused");
    let line = e.to_string();
    assert!(!line.contains('\n'), "one line: {line}");
    line
}

#[test]
fn malformed_images_are_refused_in_one_line() {
    let good = archive(&[("a.txt", b"alpha"), ("b/c.txt", b"gamma")]);
    assert_eq!(block_on(TarKv::open(disk(&good, 512))).unwrap().len(), 2);

    let mut bad_sum = good.clone();
    bad_sum[600] ^= 1; // the second member's header (the first's data ends at 512 + 512)
    bad_sum[1024] ^= 1;
    assert_eq!(
        refused(&bad_sum),
        "not a tar image, or a damaged one: the header at byte 1024 fails its checksum"
    );

    let mut truncated = archive(&[("a.txt", b"alpha")]);
    truncated.truncate(512);
    truncated.splice(0..512, header("big.bin", 5000, b'0'));
    truncated.extend_from_slice(&[7; 1024]);
    assert_eq!(
        refused(&truncated),
        "truncated tar image: 'big.bin' (header at byte 0) ends 4096 bytes past the end of the device"
    );

    let line = refused(&archive(&[("../etc/passwd", b"root")]));
    assert!(line.starts_with("the member '../etc/passwd' (header at byte 0) is not a valid key"), "{line}");
    let line = refused(&archive(&[("a//b", b"x")]));
    assert!(line.contains("is not a valid key: a key segment is empty"), "{line}");
    assert_eq!(
        refused(&archive(&[("a", b"file"), ("a/b", b"below a file")])),
        "/a is both a file and a directory in the tar image"
    );
    let mut dir_and_file = header("x/", 0, b'5').to_vec();
    dir_and_file.extend(archive(&[("x", b"file")]));
    assert_eq!(refused(&dir_and_file), "/x is both a file and a directory in the tar image");

    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut noise = vec![0u8; 64 * 1024];
    rng.fill_bytes(&mut noise);
    assert!(refused(&noise).starts_with("not a tar image, or a damaged one"));

    let mut bad_size = header("s", 0, b'0');
    bad_size[124..136].copy_from_slice(b"12345678z01\0");
    seal(&mut bad_size);
    assert_eq!(refused(&bad_size), "damaged tar image: the header at byte 0 has a malformed size field");

    let mut sparse = header("holes", 0, b'S').to_vec();
    sparse.extend_from_slice(&[0; 1024]);
    assert!(refused(&sparse).contains("is a GNU sparse file"));

    let mut pax = header("././@PaxHeader", 9, b'x').to_vec();
    pax.extend_from_slice(b"8 path=x\n");
    pax.resize(1024, 0);
    pax.extend(archive(&[("y", b"y")]));
    assert_eq!(refused(&pax), "damaged tar image: the pax extended header at byte 0 is malformed");

    let mut link = header("l", 0, b'1');
    link[157..163].copy_from_slice(b"nobody");
    seal(&mut link);
    assert!(refused(&link).contains("is a hard link to 'nobody', which is no earlier file"));
}

#[test]
fn blank_and_unterminated_images() {
    let store = block_on(TarKv::open(MemBlock::new(512, 64))).unwrap();
    assert!(store.is_empty());
    assert_eq!(block_on(store.list(&Key::root())), Ok(vec![]), "an all-zero device is an empty store");
    // No end-of-archive records: the end of the device at a header boundary ends it.
    let mut image = archive(&[("only", b"one member")]);
    image.truncate(1024);
    let store = block_on(TarKv::open(disk(&image, 512))).unwrap();
    assert_eq!(block_on(store.get(&k("/only"))).unwrap(), b"one member");
    // A pax path longer than any ustar field, and a later member replacing an earlier one.
    let long = "p/".repeat(300) + "leaf";
    let record = format!(" path={long}\n");
    // The length counts its own digits (three here).
    let len = record.len() + 3;
    let record = format!("{len}{record}");
    assert_eq!(record.len(), len);
    let mut image = header("././@PaxHeader", len as u64, b'x').to_vec();
    image.extend_from_slice(record.as_bytes());
    image.resize(image.len().div_ceil(512) * 512, 0);
    image.extend(archive(&[("short", b"old"), ("short", b"new"), ("short", b"newest")]));
    let store = block_on(TarKv::open(disk(&image, 512))).unwrap();
    assert_eq!(block_on(store.get(&k(&long))).unwrap(), b"old", "the pax path names the member after it");
    assert_eq!(block_on(store.get(&k("/short"))).unwrap(), b"newest", "the later member wins");
    assert_eq!(block_on(store.exists(&k("/p/p"))), Ok(Some(Kind::Dictionary)));
}

/// A RAM disk whose reads wait for the executor once, as a real disk's do, so that readers
/// interleave.
struct SlowRead(MemBlock);

impl Block for SlowRead {
    fn info(&self) -> BlockInfo {
        self.0.info()
    }
    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if yielded {
                return std::task::Poll::Ready(());
            }
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await;
        self.0.read(sector, buf).await
    }
    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.0.write(sector, buf).await
    }
    async fn flush(&mut self) -> Result<(), BlockError> {
        self.0.flush().await
    }
}

#[test]
fn concurrent_readers_take_turns_at_the_device() {
    let dir = scratch("concurrent");
    write_tree(&dir, &files(false));
    let image = tar(&dir, "gnu");
    std::fs::remove_dir_all(&dir).unwrap();
    let store = block_on(TarKv::open(SlowRead(disk(&image, 512)))).unwrap();
    let contents = expected(&files(false));
    block_on(async {
        let reads = contents.iter().cycle().take(40).map(|(p, d)| async {
            let key = k(p);
            let got = store.get(&key).await.unwrap();
            let digest = store.digest(&key).await.unwrap();
            (got == *d, digest)
        });
        let done = futures::future::join_all(reads).await;
        assert!(done.iter().all(|(same, _)| *same), "every concurrent read returned its value");
        // A reader dropped while it waits in the queue gives its place up, and one dropped while
        // it reads gives the device back.
        let (deep, index) = (k("/a/b/c/deep.bin"), k("/index.html"));
        let mut reading = Box::pin(store.get(&deep));
        let mut queued = Box::pin(store.get(&index));
        assert!(futures::poll!(reading.as_mut()).is_pending(), "the first reader holds the device");
        assert!(futures::poll!(queued.as_mut()).is_pending(), "the second waits its turn");
        drop(queued);
        assert_eq!(reading.await.unwrap().len(), 100_000);
        let mut cut = Box::pin(store.get(&deep));
        assert!(futures::poll!(cut.as_mut()).is_pending());
        drop(cut);
        assert_eq!(store.get(&index).await.unwrap(), contents[0].1, "the device is free again");
    });
}

/// Walk every value the store lists: each read is its listed size or an error, never a panic.
fn read_everything(store: &TarKv<MemBlock>) -> usize {
    let mut stack = vec![Key::root()];
    let mut values = 0;
    while let Some(dir) = stack.pop() {
        let Ok(list) = block_on(store.list(&dir)) else { continue };
        for (key, kind) in list {
            match kind {
                Kind::Dictionary => stack.push(key),
                Kind::Value => {
                    values += 1;
                    let size = block_on(store.size(&key)).unwrap();
                    if let Ok(v) = block_on(store.get(&key)) {
                        assert_eq!(v.len() as u64, size, "{key}: get returns its size");
                    }
                    let _ = block_on(store.get_partial(&key, size / 2, 10));
                    let _ = block_on(store.digest(&key));
                }
            }
        }
    }
    let _ = block_on(store.digest(&Key::root()));
    values
}

#[test]
fn random_corruptions_never_panic_and_headers_are_guarded() {
    let dir = scratch("fuzz");
    write_tree(&dir, &files(true));
    let image = tar(&dir, "gnu");
    std::fs::remove_dir_all(&dir).unwrap();
    let original = block_on(TarKv::open(disk(&image, 512))).unwrap();
    let truth = mem_kv(&expected(&files(true)));
    // Header records: where the checksum must catch a flipped byte.
    let mut headers = Vec::new();
    let mut pos = 0usize;
    while pos + 512 <= image.len() && image[pos..pos + 512].iter().any(|b| *b != 0) {
        headers.push(pos);
        let size = usize::from_str_radix(
            std::str::from_utf8(&image[pos + 124..pos + 135]).unwrap().trim_matches(char::from(0)),
            8,
        )
        .unwrap();
        pos += 512 + size.div_ceil(512) * 512;
    }
    assert!(headers.len() > 10, "{} headers", headers.len());
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let (mut refused, mut served) = (0, 0);
    for round in 0..3000 {
        let mut img = image.clone();
        let what = rng.next_u32() % 4;
        match what {
            // A flipped bit in a header (not in its checksum field, whose spaces do not count):
            // always refused.
            0 => {
                let h = headers[rng.next_u32() as usize % headers.len()];
                let mut at = rng.next_u32() as usize % 512;
                if (148..156).contains(&at) {
                    at = 0;
                }
                img[h + at] ^= 1 << (rng.next_u32() % 8);
            }
            // A header byte changed and its checksum fixed: the parsers see anything.
            1 => {
                let h = headers[rng.next_u32() as usize % headers.len()];
                for _ in 0..1 + rng.next_u32() % 4 {
                    img[h + rng.next_u32() as usize % 512] = rng.next_u32() as u8;
                }
                let rec: &mut [u8; 512] = (&mut img[h..h + 512]).try_into().unwrap();
                seal(rec);
            }
            // Bytes anywhere.
            2 => {
                for _ in 0..1 + rng.next_u32() % 8 {
                    let at = rng.next_u32() as usize % img.len();
                    img[at] = rng.next_u32() as u8;
                }
            }
            // Cut short at a record boundary.
            _ => img.truncate(512 * (1 + rng.next_u32() as usize % (img.len() / 512))),
        }
        match block_on(TarKv::open(disk(&img, 512))) {
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().contains('\n'));
            }
            Ok(store) => {
                assert_ne!(what, 0, "round {round}: a header with a flipped bit was accepted");
                served += 1;
                read_everything(&store);
                // What a damaged header leaves readable under an original name: the original
                // bytes, when the damage touched no header (data has no checksum in tar).
                if what == 3 {
                    for (p, _) in expected(&files(true)) {
                        if let Ok(v) = block_on(store.get(&k(&p))) {
                            assert_eq!(Ok(v), block_on(truth.get(&k(&p))), "round {round}: {p}");
                        }
                    }
                }
            }
        }
    }
    assert!(refused > 500 && served > 300, "refused {refused}, served {served}");
    assert_eq!(read_everything(&original), expected(&files(true)).len());
}

#[test]
fn a_missing_key_and_a_dictionary_are_told_apart() {
    let store = block_on(TarKv::open(disk(&archive(&[("d/f", b"v")]), 512))).unwrap();
    block_on(async {
        assert_eq!(store.get(&k("/d")).await, Err(KvError::ValueExpected(k("/d"))));
        assert_eq!(store.get(&k("/d/f/g")).await, Err(KvError::NotFound(k("/d/f/g"))));
        assert_eq!(store.list(&k("/d/f")).await, Err(KvError::DictionaryExpected(k("/d/f"))));
        assert_eq!(store.size(&k("/x")).await, Err(KvError::NotFound(k("/x"))));
    });
    let _: Option<TarError> = None;
}
