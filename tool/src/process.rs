//! Targets whose programs are host processes (`unix`): `cargo build` and `cargo run` of the
//! app's binary, in the debug or the release profile.

use std::path::PathBuf;
use std::process::Command;

use crate::meta::{App, Workspace};
use crate::{Failure, Outcome, cargo, exec};

/// `--features morgana-app/FEATURE`, selecting a target that shares the host's Rust target.
fn feature_args(feature: Option<&str>) -> Vec<String> {
    feature.map(|f| vec!["--features".into(), format!("morgana-app/{f}")]).unwrap_or_default()
}

/// The binary of `app`, or one line saying it has none.
pub fn bin(app: &App) -> Result<&str, Failure> {
    app.bin.as_deref().ok_or_else(|| {
        Failure::usage(format!(
            "{} has no binary to build: add a src/main.rs ({})",
            app.name,
            app.manifest.display()
        ))
    })
}

/// `cargo SUBCOMMAND --quiet` of `app`'s binary in the workspace `ws`.
fn cargo_on(
    ws: &Workspace,
    app: &App,
    subcommand: &str,
    feature: Option<&str>,
    release: bool,
) -> Result<Command, Failure> {
    let mut c = cargo();
    c.args([subcommand, "--quiet", "--manifest-path"]).arg(&ws.manifest);
    c.args(["-p", &app.name, "--bin", bin(app)?]).args(feature_args(feature));
    if release {
        c.arg("--release");
    }
    Ok(c)
}

/// Where the host binary of `app` is once built.
pub fn binary_path(ws: &Workspace, app: &App, release: bool) -> Result<PathBuf, Failure> {
    Ok(ws.target_dir.join(if release { "release" } else { "debug" }).join(bin(app)?))
}

/// Build `app`'s binary and print its path and size.
pub fn build(ws: &Workspace, app: &App, feature: Option<&str>, release: bool) -> Outcome {
    exec(&mut cargo_on(ws, app, "build", feature, release)?)?;
    let bin = binary_path(ws, app, release)?;
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    println!("{} ({} KiB)", bin.display(), size / 1024);
    Ok(())
}

/// Build and run `app`'s binary with `args`; its exit status is passed through.
pub fn run(ws: &Workspace, app: &App, feature: Option<&str>, release: bool, args: &[String]) -> Outcome {
    exec(cargo_on(ws, app, "run", feature, release)?.arg("--").args(args))
}
