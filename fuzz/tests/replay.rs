//! On stable, without libFuzzer: every target's seeds pass its harness, and every kept crash
//! input (`crashes/TARGET/*`, each a bug found and fixed) passes it too.

use std::path::Path;

#[test]
fn every_seed_passes_its_harness() {
    for (name, seeds) in morgana_fuzz::TARGETS {
        let seeds = seeds();
        assert!(!seeds.is_empty(), "{name}: no seeds");
        let run = harness(name);
        for (file, data) in seeds {
            eprintln!("{name}: seed {file}");
            run(&data);
        }
    }
}

#[test]
fn every_kept_crash_input_passes_its_harness() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crashes");
    let mut replayed = 0;
    for (name, _) in morgana_fuzz::TARGETS {
        let Ok(entries) = std::fs::read_dir(dir.join(name)) else { continue };
        let run = harness(name);
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).expect("readable crash input");
            eprintln!("{name}: replaying {}", entry.path().display());
            run(&data);
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} kept crash inputs");
}

fn harness(name: &str) -> fn(&[u8]) {
    match name {
        "args" => morgana_fuzz::args::run,
        "key" => morgana_fuzz::key::run,
        "crunch" => morgana_fuzz::crunch::run,
        "http_server" => morgana_fuzz::http_server::run,
        "http_client" => morgana_fuzz::http_client::run,
        "tls_server" => morgana_fuzz::tls_server::run,
        "tls_client" => morgana_fuzz::tls_client::run,
        "tcpip" => morgana_fuzz::tcpip::run,
        other => panic!("no harness for {other}"),
    }
}
