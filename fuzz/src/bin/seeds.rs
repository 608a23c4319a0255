//! `seeds DIR [TARGET]`: write the seed corpus of every target (or of TARGET) to DIR/TARGET/.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: seeds DIR [TARGET]");
        return ExitCode::from(2);
    };
    let only = args.next();
    for morgana_fuzz::Target { name, seeds, .. } in morgana_fuzz::TARGETS {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        let out = dir.join(name);
        if let Err(e) = std::fs::create_dir_all(&out) {
            eprintln!("seeds: cannot create {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
        let seeds = seeds();
        for (file, data) in &seeds {
            if let Err(e) = std::fs::write(out.join(file), data) {
                eprintln!("seeds: cannot write {}: {e}", out.join(file).display());
                return ExitCode::FAILURE;
            }
        }
        println!("{name}: {} seeds in {}", seeds.len(), out.display());
    }
    ExitCode::SUCCESS
}
