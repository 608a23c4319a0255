//! `kv_ro` on in-memory stores, and the compiled-in store against the KV suite.

use morgana::{KvRw, Platform};
use morgana_mem::MemKv;
use morgana_mem::sim::Sim;

#[test]
fn the_compiled_in_store_holds_exactly_data_dir() {
    futures::executor::block_on(morgana_testkit::kv::check_ro(&kv_ro::EMBEDDED, kv_ro::KNOWN));
    for (path, want) in kv_ro::KNOWN {
        let on_disk = std::fs::read(format!("{}/data{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(&on_disk, want, "data{path} matches KNOWN");
    }
}

#[test]
fn both_stores_check_out_and_are_listed() {
    let out = Sim::new(1).run(|p| {
        let mem = MemKv::new(p.clock());
        async move {
            for (path, value) in kv_ro::KNOWN {
                mem.set(&path.parse().unwrap(), value).await.unwrap();
            }
            kv_ro::start(p, kv_ro::EMBEDDED, Some(mem)).await
        }
    });
    assert_eq!(out.result.unwrap(), Ok(()));
    let msgs = out.messages();
    for store in ["compiled-in", "directory"] {
        assert!(msgs.contains(&format!("{store}: /secret: 56 bytes, as expected").as_str()), "{msgs:?}");
        let listed: Vec<&str> = msgs
            .iter()
            .filter_map(|m| m.strip_prefix(&format!("{store}: ")))
            .filter(|m| m.contains("sha256"))
            .map(|m| m.split(' ').next().unwrap())
            .collect();
        assert_eq!(
            listed,
            ["/docs/nested/deep.txt", "/docs/readme.txt", "/secret"],
            "{store} tree, depth first"
        );
    }
}

#[test]
fn a_wrong_or_missing_value_fails_the_check() {
    let out = Sim::new(1).run(|p| {
        let mem = MemKv::new(p.clock());
        async move {
            mem.set(&"/secret".parse().unwrap(), b"tampered").await.unwrap();
            mem.set(&"/docs/readme.txt".parse().unwrap(), kv_ro::KNOWN[1].1).await.unwrap();
            kv_ro::start(p, kv_ro::EMBEDDED, Some(mem)).await
        }
    });
    let err = out.result.unwrap().unwrap_err();
    assert_eq!(err, kv_ro::Failed(2));
    assert_eq!(err.to_string(), "2 key check(s) failed");
    let msgs = out.messages();
    assert!(msgs.contains(&"directory: /secret: 8 bytes that differ from the expected 56"), "{msgs:?}");
    assert!(msgs.contains(&"directory: /docs/nested/deep.txt: not found"), "{msgs:?}");
}

#[test]
fn without_a_second_store_only_the_compiled_in_one_is_checked() {
    let out = Sim::new(1).run(|p| {
        kv_ro::start(p, kv_ro::EMBEDDED, None::<MemKv<<morgana_mem::sim::SimPlatform as Platform>::Clock>>)
    });
    assert_eq!(out.result.unwrap(), Ok(()));
    assert!(out.messages().last().unwrap().starts_with("no second store given"));
}
