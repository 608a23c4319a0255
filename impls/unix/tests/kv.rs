//! `DirKv`: the KV suites on a real directory, atomicity, and keys that stay inside the root.

mod common;

use std::os::unix::fs::symlink;

use common::{TempDir, run};
use morgana::kv::{Key, KeyError, Kind, KvError, KvRo, KvRw};
use morgana_testkit as suite;
use morgana_unix::DirKv;

fn k(s: &str) -> Key {
    Key::parse(s).unwrap()
}

#[test]
fn dir_kv_passes_the_kv_suite() {
    let dir = TempDir::new("kv-rw");
    let kv = DirKv::open(dir.path()).unwrap();
    run(|_| async move { suite::kv::check_rw(&kv).await });
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "an emptied store leaves an empty directory (no temp files): {left:?}");
}

#[test]
fn dir_kv_passes_the_read_only_suite_on_files_made_by_the_host() {
    let dir = TempDir::new("kv-ro");
    let contents: &[(&str, &[u8])] =
        &[("/index.html", b"<h1>hi</h1>"), ("/css/site.css", b"body{}"), ("/a/b/c/deep", b"deep value")];
    for (path, value) in contents {
        let p = dir.path().join(&path[1..]);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, value).unwrap();
    }
    // Host clutter that is not part of the store: an empty directory.
    std::fs::create_dir_all(dir.join("empty/inner")).unwrap();
    let kv = DirKv::open(dir.path()).unwrap();
    run(|_| async move {
        suite::kv::check_ro(&kv, contents).await;
        assert_eq!(kv.exists(&k("/empty")).await, Ok(None), "an empty directory is not a dictionary");
    });
}

#[test]
fn values_survive_reopening_and_match_the_files() {
    let dir = TempDir::new("kv-persist");
    run(|_| async {
        let kv = DirKv::open(dir.path()).unwrap();
        kv.set(&k("/a/b"), b"persisted").await.unwrap();
        kv.set_partial(&k("/a/b"), 9, b"!").await.unwrap();
        kv.allocate(&k("/zeros"), 1 << 20).await.unwrap();
    });
    assert_eq!(std::fs::read(dir.join("a/b")).unwrap(), b"persisted!");
    let zeros = std::fs::metadata(dir.join("zeros")).unwrap();
    assert_eq!(zeros.len(), 1 << 20);
    assert!(std::os::unix::fs::MetadataExt::blocks(&zeros) < 64, "allocate makes a sparse file");
    run(|_| async {
        let kv = DirKv::open(dir.path()).unwrap();
        assert_eq!(kv.get(&k("/a/b")).await.unwrap(), b"persisted!");
        let mtime = kv.last_modified(&k("/a/b")).await.unwrap();
        let file_mtime = std::fs::metadata(dir.join("a/b")).unwrap().modified().unwrap();
        assert_eq!(mtime, file_mtime.duration_since(std::time::UNIX_EPOCH).unwrap(), "mtime is the file's");
    });
}

#[test]
fn a_set_replaces_the_file_instead_of_rewriting_it() {
    let dir = TempDir::new("kv-atomic");
    run(|_| async {
        let kv = DirKv::open(dir.path()).unwrap();
        kv.set(&k("/v"), b"old contents").await.unwrap();
        // A reader that opened the old value keeps reading the old value: the new one is a new
        // file renamed into place, never a partial overwrite.
        let mut reader = std::fs::File::open(dir.join("v")).unwrap();
        kv.set(&k("/v"), b"new").await.unwrap();
        let mut old = String::new();
        std::io::Read::read_to_string(&mut reader, &mut old).unwrap();
        assert_eq!(old, "old contents");
        assert_eq!(kv.get(&k("/v")).await.unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left behind");
    });
}

#[test]
fn keys_cannot_escape_the_root() {
    let outside = TempDir::new("kv-outside");
    std::fs::write(outside.join("secret"), b"outside the store").unwrap();
    let dir = TempDir::new("kv-escape");
    std::fs::write(dir.join("inside"), b"in").unwrap();
    symlink(outside.path(), dir.join("link")).unwrap();
    symlink(outside.join("secret"), dir.join("leaf")).unwrap();
    std::fs::create_dir(dir.join("d")).unwrap();
    symlink("../../", dir.join("d/up")).unwrap();
    std::fs::write(dir.join("d/v"), b"v").unwrap();

    // A path that climbs out is not even a key.
    assert_eq!(Key::parse("/../etc/passwd"), Err(KeyError::DotSegment));
    assert_eq!(Key::parse("/a/../../etc/passwd"), Err(KeyError::DotSegment));
    assert_eq!(Key::root().join(".."), Err(KeyError::DotSegment));
    assert_eq!(Key::root().join("../etc"), Err(KeyError::Slash));
    assert_eq!(Key::root().join("etc/passwd"), Err(KeyError::Slash));

    run(|_| async {
        let kv = DirKv::open(dir.path()).unwrap();
        // Symlinks are not part of the store: not listed, not read, not followed.
        assert_eq!(
            kv.list(&Key::root()).await.unwrap(),
            [(k("/d"), Kind::Dictionary), (k("/inside"), Kind::Value)]
        );
        assert_eq!(kv.list(&k("/d")).await.unwrap(), [(k("/d/v"), Kind::Value)]);
        assert_eq!(kv.exists(&k("/link")).await, Ok(None));
        assert_eq!(kv.get(&k("/link/secret")).await, Err(KvError::NotFound(k("/link/secret"))));
        assert_eq!(kv.get(&k("/leaf")).await, Err(KvError::NotFound(k("/leaf"))));
        assert_eq!(kv.get(&k("/d/up/etc/passwd")).await, Err(KvError::NotFound(k("/d/up/etc/passwd"))));
        assert_eq!(kv.list(&k("/link")).await, Err(KvError::NotFound(k("/link"))));
        // Writing through a symlinked directory is refused; the target is untouched.
        assert!(kv.set(&k("/link/secret"), b"pwned").await.is_err());
        assert!(kv.set(&k("/link/new"), b"pwned").await.is_err());
        assert!(kv.remove(&k("/link/secret")).await.is_err());
        assert!(kv.rename(&k("/inside"), &k("/link/moved")).await.is_err());
        assert_eq!(kv.get(&k("/inside")).await.unwrap(), b"in", "a refused rename loses nothing");
        // Setting a key held by a symlink replaces the link itself, never its target.
        kv.set(&k("/leaf"), b"replaced").await.unwrap();
        assert_eq!(kv.get(&k("/leaf")).await.unwrap(), b"replaced");
        // Removing the whole store does not reach through links either.
        kv.remove(&Key::root()).await.unwrap();
    });
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"outside the store");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1, "nothing was created outside");
}

#[test]
fn a_missing_root_is_an_error_not_a_panic() {
    let e = DirKv::open("/nonexistent/morgana-kv").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    let dir = TempDir::new("kv-create");
    let kv = DirKv::create(dir.join("new/store")).unwrap();
    assert!(kv.path().is_dir());
}
