//! Space: what a store gives back when it shrinks, and chunks that must not be given back.

mod common;

use common::{Fixed, k, now};
use morgana::kv::{KvRo, KvRw};
use morgana_mem::MemBlock;
use morgana_store::{Batch, Store};

/// Pages in use beyond those of an empty store.
fn used<C: morgana::time::WallClock>(store: &Store<MemBlock, C>, empty: u64) -> u64 {
    now(store.pages_in_use()).len() as u64 - empty
}

#[test]
fn a_store_that_deletes_most_of_its_keys_gives_its_pages_back() {
    let store = now(Store::open(MemBlock::new(512, 16384), Fixed)).unwrap();
    let empty = now(store.pages_in_use()).len() as u64;
    let key = |i: u32| k(&format!("/users/{:08x}", i.wrapping_mul(0x9e37_79b9)));
    for chunk in 0..8u32 {
        let mut b = Batch::new();
        for i in chunk * 500..(chunk + 1) * 500 {
            b.set(key(i), vec![i as u8; 100]);
        }
        now(store.batch(&b)).unwrap();
    }
    let full = used(&store, empty);
    // Remove 99 keys in 100, in random order, a batch at a time and one by one.
    for chunk in 0..8u32 {
        let mut b = Batch::new();
        for i in (chunk * 500..(chunk + 1) * 500).filter(|i| i % 100 != 0 && i % 7 != 0) {
            b.remove(key(i));
        }
        now(store.batch(&b)).unwrap();
    }
    for i in (0..4000u32).filter(|i| i % 100 != 0 && i % 7 == 0) {
        now(store.remove(&key(i))).unwrap();
    }
    let left = used(&store, empty);
    eprintln!("4000 keys: {full} pages; 40 left: {left} pages");
    assert!(full > 100, "4000 keys of 100 bytes take pages ({full})");
    assert!(left * 20 < full, "after removing 99 keys in 100 the tree keeps {left} of its {full} pages");
    for i in (0..4000u32).filter(|i| i % 100 == 0) {
        assert_eq!(now(store.get(&key(i))).unwrap(), vec![i as u8; 100]);
    }
    // Reopened, the same: the pages that were given back are free on the device too.
    let store = now(Store::open(store.into_inner(), Fixed)).unwrap();
    assert_eq!(used(&store, empty), left);
    assert_eq!(now(store.list(&k("/users"))).unwrap().len(), 40);
}

#[test]
fn renaming_a_value_onto_the_dictionary_that_holds_it_keeps_its_bytes() {
    let store = now(Store::open(MemBlock::new(512, 4096), Fixed)).unwrap();
    let value: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    now(store.set(&k("/a/b/x"), &value)).unwrap();
    now(store.set(&k("/a/b/y"), b"gone")).unwrap();
    now(store.rename(&k("/a/b/x"), &k("/a/b"))).unwrap();
    assert_eq!(now(store.get(&k("/a/b"))).unwrap(), value);
    // Enough writes to reuse every page that was freed: the value's chunks must not be among them.
    for i in 0..200u32 {
        now(store.set(&k(&format!("/fill/{}", i % 10)), &vec![i as u8; 6000])).unwrap();
    }
    assert_eq!(now(store.get(&k("/a/b"))).unwrap(), value);
    let store = now(Store::open(store.into_inner(), Fixed)).unwrap();
    assert!(store.report().damaged.is_empty());
    assert_eq!(now(store.get(&k("/a/b"))).unwrap(), value);
}
