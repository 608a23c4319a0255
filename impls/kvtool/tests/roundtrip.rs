//! The commands on real image files: a directory tree through import, put, get, ls and export
//! byte for byte; check on a clean image and on one with a flipped byte in a data page; bad
//! images refused in one line.

use std::path::{Path, PathBuf};

use morgana_kvtool::cli::{Command, run};
use morgana_kvtool::key;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("morgana-kvtool-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Bytes that do not repeat (a page of them is found again in the image).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write_tree(dir: &Path) {
    let files: [(&str, Vec<u8>); 6] = [
        ("index.html", b"<h1>notes</h1>\n".to_vec()),
        ("a/b/c/deep.bin", noise(300_000, 1)),
        ("a/empty", Vec::new()),
        ("a/page", noise(4096, 2)),
        ("caf\u{e9}/men\u{fc}", b"utf-8".to_vec()),
        ("many/x", vec![b'x'; 513]),
    ];
    for (p, d) in files {
        let p = dir.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, d).unwrap();
    }
}

/// Every file below `dir`, relative path and bytes, sorted.
fn read_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn text(cmd: Command) -> Result<String, String> {
    let mut out = Vec::new();
    run(&cmd, &mut out).map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).unwrap())
}

fn bytes(cmd: Command) -> Vec<u8> {
    let mut out = Vec::new();
    run(&cmd, &mut out).unwrap();
    out
}

#[test]
fn a_directory_tree_makes_the_round_trip_byte_for_byte() {
    let dir = scratch("roundtrip");
    let (tree, image, out) = (dir.join("tree"), dir.join("store.img"), dir.join("out"));
    write_tree(&tree);
    let said = text(Command::Mkfs { image: image.clone(), size: 16 << 20 }).unwrap();
    assert!(said.contains("an empty store of 16777216 bytes"), "{said}");
    let again = text(Command::Mkfs { image: image.clone(), size: 16 << 20 }).unwrap_err();
    assert!(again.ends_with("exists; mkfs makes a new image (remove it first)"), "{again}");

    let said = text(Command::Import { image: image.clone(), dir: tree.clone() }).unwrap();
    assert!(said.starts_with("6 files imported"), "{said}");
    std::fs::write(dir.join("extra"), b"put by hand").unwrap();
    text(Command::Put { image: image.clone(), key: key("/extra/one").unwrap(), file: dir.join("extra") })
        .unwrap();

    let got = bytes(Command::Get { image: image.clone(), key: key("/a/b/c/deep.bin").unwrap() });
    assert_eq!(got, noise(300_000, 1), "get streams the value to stdout");
    let ls = text(Command::Ls { image: image.clone(), dir: key("/a").unwrap(), recursive: false }).unwrap();
    assert_eq!(ls, "           -  /a/b/\n           0  /a/empty\n        4096  /a/page\n");
    let all = text(Command::Ls { image: image.clone(), dir: key("/").unwrap(), recursive: true }).unwrap();
    assert_eq!(all.lines().count(), 13, "{all}");
    assert!(all.contains("      300000  /a/b/c/deep.bin\n") && all.contains("  /extra/one\n"), "{all}");

    let said = text(Command::Export { image: image.clone(), dir: out.clone() }).unwrap();
    assert!(said.starts_with("7 files exported"), "{said}");
    let mut want = read_tree(&tree);
    want.push(("extra/one".into(), b"put by hand".to_vec()));
    want.sort();
    assert_eq!(read_tree(&out), want, "export gives back every file, byte for byte");

    let clean = text(Command::Check { image: image.clone() }).unwrap();
    assert!(clean.contains("clean: 7 values, 304640 bytes, every checksum verified"), "{clean}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_reports_a_flipped_byte_in_a_data_page() {
    let dir = scratch("check");
    let (tree, image) = (dir.join("tree"), dir.join("store.img"));
    write_tree(&tree);
    text(Command::Mkfs { image: image.clone(), size: 16 << 20 }).unwrap();
    text(Command::Import { image: image.clone(), dir: tree.clone() }).unwrap();
    // The page holding the second 4 KiB of /a/b/c/deep.bin.
    let pristine = std::fs::read(&image).unwrap();
    let chunk = &noise(300_000, 1)[4096..8192];
    let page =
        pristine.chunks(4096).position(|p| p == chunk).expect("the value's chunk is a page of the image");
    let flip = |img: &[u8]| {
        let mut img = img.to_vec();
        img[page * 4096 + 100] ^= 0x20;
        img
    };
    // In the newest commit, one damaged page is rebuilt from the commit's parity: said, and
    // nothing is lost.
    std::fs::write(&image, flip(&pristine)).unwrap();
    let said = text(Command::Check { image: image.clone() }).unwrap();
    assert!(said.contains("note: 1 page(s) of the last commit rebuilt from its parity"), "{said}");
    assert!(said.contains("clean: 6 values"), "{said}");
    // Once a later commit exists, it is damage.
    std::fs::write(&image, &pristine).unwrap();
    text(Command::Put { image: image.clone(), key: key("/later").unwrap(), file: tree.join("index.html") })
        .unwrap();
    let img = flip(&std::fs::read(&image).unwrap());
    std::fs::write(&image, &img).unwrap();

    let mut out = Vec::new();
    let e = run(&Command::Check { image: image.clone() }, &mut out).unwrap_err().to_string();
    let report = String::from_utf8(out).unwrap();
    assert!(report.contains("damaged: /a/b/c/deep.bin: stored data failed its checksum"), "{report}");
    assert_eq!(report.lines().filter(|l| l.starts_with("damaged:")).count(), 1, "{report}");
    assert!(
        e.ends_with("damaged: 1 problem(s) above; 6 values (4644 bytes) intact") && !e.contains('\n'),
        "{e}"
    );
    // The damaged value is refused, never returned as data; the rest is still served.
    let mut sink = Vec::new();
    let get = run(&Command::Get { image: image.clone(), key: key("/a/b/c/deep.bin").unwrap() }, &mut sink);
    assert!(get.unwrap_err().to_string().contains("failed its checksum"));
    assert_eq!(bytes(Command::Get { image: image.clone(), key: key("/a/page").unwrap() }), noise(4096, 2));
    assert_eq!(std::fs::read(&image).unwrap(), img, "check and get leave the image as it was");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_images_and_arguments_get_one_line() {
    let dir = scratch("bad");
    let zero = dir.join("zero.img");
    std::fs::write(&zero, b"").unwrap();
    let random = dir.join("random.img");
    std::fs::write(&random, noise(1 << 20, 3)).unwrap();
    let blank = dir.join("blank.img");
    std::fs::write(&blank, vec![0u8; 1 << 20]).unwrap();
    let k = || key("/x").unwrap();
    for (cmd, want) in [
        (Command::Check { image: zero.clone() }, "zero.img: the image is empty (0 bytes)"),
        (Command::Ls { image: zero.clone(), dir: k(), recursive: false }, "the image is empty"),
        (Command::Check { image: random.clone() }, "not a morgana-store image, refusing to format it"),
        (Command::Get { image: random.clone(), key: k() }, "not a morgana-store image"),
        (Command::Put { image: random.clone(), key: k(), file: zero.clone() }, "not a morgana-store image"),
        (Command::Check { image: blank.clone() }, "blank and read-only"),
        (Command::Check { image: dir.join("missing.img") }, "missing.img: no such file"),
        (Command::Mkfs { image: dir.join("odd.img"), size: 1000 }, "--size 1000: expected a whole number"),
        (Command::Mkfs { image: dir.join("tiny.img"), size: 4096 }, "a store needs at least"),
    ] {
        let e = text(cmd.clone()).unwrap_err();
        assert!(e.contains(want) && !e.contains('\n'), "{cmd:?}: {e}");
    }
    assert_eq!(std::fs::read(&random).unwrap(), noise(1 << 20, 3), "a foreign image is not written");
    assert!(!dir.join("tiny.img").exists(), "a failed mkfs leaves no file");
    assert_eq!(
        key("../etc").unwrap_err().to_string(),
        "'../etc' is not a valid key: a key segment is '.' or '..'"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
