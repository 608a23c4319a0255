//! On stable, without libFuzzer: every target's seeds pass its harness, and every kept crash
//! input (`crashes/TARGET/*`, each a bug found and fixed) passes it too.

use std::path::Path;

#[test]
fn every_seed_passes_its_harness() {
    for t in morgana_fuzz::TARGETS {
        let seeds = (t.seeds)();
        assert!(!seeds.is_empty(), "{}: no seeds", t.name);
        for (file, data) in seeds {
            eprintln!("{}: seed {file}", t.name);
            (t.run)(&data);
        }
    }
}

#[test]
fn every_kept_crash_input_passes_its_harness() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crashes");
    let mut replayed = 0;
    for t in morgana_fuzz::TARGETS {
        let Ok(entries) = std::fs::read_dir(dir.join(t.name)) else { continue };
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).expect("readable crash input");
            eprintln!("{}: replaying {}", t.name, entry.path().display());
            (t.run)(&data);
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} kept crash inputs");
}

/// Inputs under `failing/TARGET/` reproduce bugs found in code another change owns (each file's
/// README line says what): they must still fail, so that a fix shows here and the input moves
/// to `crashes/`.
#[test]
fn every_known_failing_input_still_fails() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("failing");
    for t in morgana_fuzz::TARGETS {
        let Ok(entries) = std::fs::read_dir(dir.join(t.name)) else { continue };
        for entry in entries.flatten().filter(|e| e.path().extension().is_none()) {
            let data = std::fs::read(entry.path()).expect("readable failing input");
            let run = t.run;
            let failed = std::panic::catch_unwind(move || run(&data)).is_err();
            assert!(failed, "{} now passes: move it to crashes/{}/", entry.path().display(), t.name);
        }
    }
}
