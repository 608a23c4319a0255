//! Key-value stores: Mirage_kv semantics.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use morgana::kv::{Key, Kind, KvError, KvRo, KvRw};
use sha2::{Digest, Sha256};

fn k(s: &str) -> Key {
    Key::parse(s).expect("suite keys are valid")
}

/// Check a read-write store that starts empty.
pub async fn check_rw<K: KvRw>(kv: &K) {
    // The empty store: only the root exists.
    assert_eq!(kv.exists(&Key::root()).await, Ok(Some(Kind::Dictionary)), "the root is a dictionary");
    assert_eq!(kv.list(&Key::root()).await, Ok(vec![]), "a new store is empty");
    assert_eq!(kv.get(&k("/a")).await, Err(KvError::NotFound(k("/a"))), "get of a missing key");

    // Values and implicit dictionaries.
    kv.set(&k("/a/b/c"), b"hello").await.expect("set /a/b/c");
    kv.set(&k("/a/d"), b"world!").await.expect("set /a/d");
    kv.set(&k("/top"), b"").await.expect("set an empty value");
    assert_eq!(kv.exists(&k("/a/b/c")).await, Ok(Some(Kind::Value)), "exists on a value");
    assert_eq!(kv.exists(&k("/a/b")).await, Ok(Some(Kind::Dictionary)), "exists on a dictionary");
    assert_eq!(kv.exists(&k("/a/b/c/x")).await, Ok(None), "exists below a value");
    assert_eq!(kv.exists(&k("/nope")).await, Ok(None), "exists on a missing key");
    assert_eq!(kv.get(&k("/a/b/c")).await.as_deref(), Ok(&b"hello"[..]), "get returns what set stored");
    assert_eq!(kv.get(&k("/top")).await, Ok(vec![]), "an empty value is a value");
    assert_eq!(kv.get(&k("/a")).await, Err(KvError::ValueExpected(k("/a"))), "get on a dictionary");
    assert_eq!(kv.size(&k("/a/d")).await, Ok(6), "size of a value");
    assert_eq!(kv.size(&k("/a")).await, Err(KvError::ValueExpected(k("/a"))), "size of a dictionary");
    assert_eq!(kv.size(&k("/zz")).await, Err(KvError::NotFound(k("/zz"))), "size of a missing key");

    // Listing nested dictionaries.
    assert_eq!(
        kv.list(&Key::root()).await,
        Ok(vec![(k("/a"), Kind::Dictionary), (k("/top"), Kind::Value)]),
        "list of the root"
    );
    assert_eq!(
        kv.list(&k("/a")).await,
        Ok(vec![(k("/a/b"), Kind::Dictionary), (k("/a/d"), Kind::Value)]),
        "list of a nested dictionary"
    );
    assert_eq!(kv.list(&k("/a/b")).await, Ok(vec![(k("/a/b/c"), Kind::Value)]), "list one level down");
    assert_eq!(kv.list(&k("/a/d")).await, Err(KvError::DictionaryExpected(k("/a/d"))), "list of a value");
    assert_eq!(kv.list(&k("/none")).await, Err(KvError::NotFound(k("/none"))), "list of a missing key");

    // Partial reads: bounds.
    let ad = k("/a/d");
    let part = |o, l| kv.get_partial(&ad, o, l);
    assert_eq!(part(0, 3).await.as_deref(), Ok(&b"wor"[..]), "get_partial from the start");
    assert_eq!(part(3, 100).await.as_deref(), Ok(&b"ld!"[..]), "get_partial is cut at the end");
    assert_eq!(part(6, 1).await, Ok(vec![]), "get_partial at the end is empty");
    assert_eq!(part(1000, 1).await, Ok(vec![]), "get_partial past the end is empty");
    assert_eq!(part(2, 0).await, Ok(vec![]), "get_partial of zero bytes");
    assert_eq!(
        kv.get_partial(&k("/a"), 0, 1).await,
        Err(KvError::ValueExpected(k("/a"))),
        "get_partial on a dictionary"
    );
    assert_eq!(kv.get_partial(&k("/q"), 0, 1).await, Err(KvError::NotFound(k("/q"))), "get_partial missing");

    // Digests: SHA-256 of a value, deterministic for a dictionary, changing with its contents.
    let d = kv.digest(&k("/a/b/c")).await.expect("digest of a value");
    assert_eq!(d[..], Sha256::digest(b"hello")[..], "the digest of a value is its SHA-256");
    let dir1 = kv.digest(&k("/a")).await.expect("digest of a dictionary");
    assert_eq!(kv.digest(&k("/a")).await, Ok(dir1), "a dictionary digest is deterministic");
    assert_eq!(kv.digest(&k("/x/y")).await, Err(KvError::NotFound(k("/x/y"))), "digest of a missing key");

    // Overwrites and structural errors.
    kv.set(&k("/a/b/c"), b"HELLO").await.expect("overwrite a value");
    assert_eq!(kv.get(&k("/a/b/c")).await.as_deref(), Ok(&b"HELLO"[..]), "the overwrite is visible");
    assert_ne!(kv.digest(&k("/a")).await, Ok(dir1), "a dictionary digest follows its contents");
    assert_eq!(
        kv.set(&k("/a/b"), b"x").await,
        Err(KvError::ValueExpected(k("/a/b"))),
        "set over a dictionary is refused"
    );
    assert_eq!(
        kv.set(&k("/a/d/e"), b"x").await,
        Err(KvError::DictionaryExpected(k("/a/d"))),
        "set below a value is refused"
    );
    assert_eq!(kv.get(&k("/a/d")).await.as_deref(), Ok(&b"world!"[..]), "a refused set loses nothing");
    assert_eq!(
        kv.set(&Key::root(), b"x").await,
        Err(KvError::ValueExpected(Key::root())),
        "set of the root is refused"
    );

    // Partial writes.
    kv.set_partial(&k("/a/d"), 5, b"?!!").await.expect("set_partial that extends");
    assert_eq!(
        kv.get(&k("/a/d")).await.as_deref(),
        Ok(&b"world?!!"[..]),
        "set_partial overwrites and extends"
    );
    kv.set_partial(&k("/p"), 2, b"xy").await.expect("set_partial that creates");
    assert_eq!(
        kv.get(&k("/p")).await.as_deref(),
        Ok(&b"\0\0xy"[..]),
        "set_partial pads a new value with zeros"
    );
    assert_eq!(
        kv.set_partial(&k("/a"), 0, b"x").await,
        Err(KvError::ValueExpected(k("/a"))),
        "set_partial on a dictionary"
    );

    // Allocate.
    kv.allocate(&k("/z/big"), 4096).await.expect("allocate");
    assert_eq!(kv.get(&k("/z/big")).await, Ok(vec![0u8; 4096]), "allocate binds zeros");
    assert_eq!(
        kv.allocate(&k("/z/big"), 1).await,
        Err(KvError::AlreadyPresent(k("/z/big"))),
        "allocate over a value"
    );
    assert_eq!(
        kv.allocate(&k("/a"), 1).await,
        Err(KvError::AlreadyPresent(k("/a"))),
        "allocate over a dictionary"
    );

    // Rename.
    kv.rename(&k("/p"), &k("/q/p2")).await.expect("rename a value");
    assert_eq!(kv.exists(&k("/p")).await, Ok(None), "rename removes the source");
    assert_eq!(kv.get(&k("/q/p2")).await.as_deref(), Ok(&b"\0\0xy"[..]), "rename moves the value");
    kv.rename(&k("/a"), &k("/moved")).await.expect("rename a dictionary");
    assert_eq!(kv.get(&k("/moved/b/c")).await.as_deref(), Ok(&b"HELLO"[..]), "rename moves a subtree");
    assert_eq!(kv.exists(&k("/a")).await, Ok(None), "the old subtree is gone");
    assert_eq!(
        kv.rename(&k("/moved"), &k("/moved/b/inner")).await,
        Err(KvError::RenameSourcePrefix { source: k("/moved"), dest: k("/moved/b/inner") }),
        "rename into its own subtree is refused"
    );
    assert_eq!(
        kv.get(&k("/moved/d")).await.as_deref(),
        Ok(&b"world?!!"[..]),
        "a refused rename loses nothing"
    );
    assert_eq!(
        kv.rename(&k("/ghost"), &k("/g2")).await,
        Err(KvError::NotFound(k("/ghost"))),
        "rename missing"
    );
    kv.set(&k("/r1"), b"one").await.expect("set /r1");
    kv.set(&k("/r2"), b"two").await.expect("set /r2");
    kv.rename(&k("/r1"), &k("/r2")).await.expect("rename over a value");
    assert_eq!(kv.get(&k("/r2")).await.as_deref(), Ok(&b"one"[..]), "rename replaces the destination");

    // Remove.
    kv.remove(&k("/moved")).await.expect("remove a dictionary");
    assert_eq!(kv.exists(&k("/moved/b/c")).await, Ok(None), "remove of a dictionary removes its subtree");
    assert_eq!(kv.exists(&k("/moved")).await, Ok(None), "the removed dictionary is gone");
    kv.remove(&k("/q/p2")).await.expect("remove the last value of a dictionary");
    assert_eq!(kv.exists(&k("/q")).await, Ok(None), "a dictionary disappears with its last value");
    assert_eq!(kv.remove(&k("/q/p2")).await, Err(KvError::NotFound(k("/q/p2"))), "remove of a missing key");
    assert_eq!(
        kv.list(&Key::root()).await,
        Ok(vec![(k("/r2"), Kind::Value), (k("/top"), Kind::Value), (k("/z"), Kind::Dictionary)]),
        "what is left after removes"
    );

    // Modification times are POSIX times and a dictionary's is its latest entry's.
    let t_top = kv.last_modified(&k("/top")).await.expect("last_modified of a value");
    let t_z = kv.last_modified(&k("/z")).await.expect("last_modified of a dictionary");
    let t_big = kv.last_modified(&k("/z/big")).await.expect("last_modified of /z/big");
    assert_eq!(t_z, t_big, "a dictionary's time is its latest entry's");
    assert!(t_top.as_secs() > 0, "last_modified is POSIX time");
    assert_eq!(
        kv.last_modified(&k("/gone")).await,
        Err(KvError::NotFound(k("/gone"))),
        "last_modified missing"
    );

    // Many keys.
    for i in 0..100u32 {
        kv.set(&k(&format!("/many/{i:03}")), &i.to_le_bytes()).await.expect("set many");
    }
    let listed = kv.list(&k("/many")).await.expect("list many");
    assert_eq!(listed.len(), 100, "every key is listed");
    assert_eq!(listed[42].0, k("/many/042"), "the listing is sorted");
    kv.remove(&Key::root()).await.expect("remove the root");
    assert_eq!(kv.list(&Key::root()).await, Ok(vec![]), "removing the root empties the store");
}

/// Check a store that holds exactly `contents` (path, value) and nothing else.
pub async fn check_ro<K: KvRo>(kv: &K, contents: &[(&str, &[u8])]) {
    assert_eq!(kv.exists(&Key::root()).await, Ok(Some(Kind::Dictionary)), "the root is a dictionary");
    for (path, value) in contents {
        let key = k(path);
        assert_eq!(kv.exists(&key).await, Ok(Some(Kind::Value)), "{path}: exists as a value");
        assert_eq!(kv.get(&key).await.as_deref(), Ok(*value), "{path}: get");
        assert_eq!(kv.size(&key).await, Ok(value.len() as u64), "{path}: size");
        let mid = value.len() / 2;
        assert_eq!(
            kv.get_partial(&key, mid as u64, 7).await.as_deref(),
            Ok(&value[mid..value.len().min(mid + 7)]),
            "{path}: get_partial"
        );
        assert_eq!(kv.get_partial(&key, value.len() as u64 + 1, 1).await, Ok(vec![]), "{path}: past the end");
        let digest = kv.digest(&key).await.expect("digest");
        assert_eq!(digest[..], Sha256::digest(value)[..], "{path}: digest is SHA-256");
        assert!(kv.last_modified(&key).await.is_ok(), "{path}: last_modified");
        assert_eq!(
            kv.list(&key).await,
            Err(KvError::DictionaryExpected(key.clone())),
            "{path}: list of a value"
        );
        // Every ancestor is a dictionary that lists its child.
        let mut child = key.clone();
        while !child.is_root() {
            let parent = child.parent();
            assert_eq!(kv.exists(&parent).await, Ok(Some(Kind::Dictionary)), "{parent}: a dictionary");
            assert_eq!(
                kv.get(&parent).await,
                Err(KvError::ValueExpected(parent.clone())),
                "{parent}: get on a dictionary"
            );
            let listed = kv.list(&parent).await.expect("list a parent");
            assert!(listed.iter().any(|(c, _)| *c == child), "{parent}: lists {child}");
            let mut sorted = listed.clone();
            sorted.sort();
            assert_eq!(listed, sorted, "{parent}: listing is sorted");
            child = parent;
        }
    }
    // Nothing else is there.
    let mut stack: Vec<Key> = vec![Key::root()];
    let mut values = 0;
    while let Some(dir) = stack.pop() {
        for (key, kind) in kv.list(&dir).await.expect("list") {
            match kind {
                Kind::Dictionary => stack.push(key),
                Kind::Value => {
                    values += 1;
                    let path = format!("{key}");
                    assert!(contents.iter().any(|(p, _)| k(p) == key), "{path}: unexpected value");
                }
            }
        }
    }
    assert_eq!(values, contents.len(), "the store holds exactly the expected values");
    let missing = k("/no/such/key");
    assert_eq!(kv.exists(&missing).await, Ok(None), "missing key");
    assert_eq!(kv.get(&missing).await, Err(KvError::NotFound(missing.clone())), "get of a missing key");
}
