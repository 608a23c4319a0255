//! The `cargo morgana` command line: `build`, `run` and `new`, in any crate that depends on
//! Morgana, and `kv` on a disk image anywhere.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::meta::{self, App, Workspace};
use crate::target::{self, Target};
use crate::template::{self, Source};
use crate::virtio::QemuArgs;
use crate::{Failure, Outcome, version};

/// What cargo runs: `cargo morgana ...` is `cargo-morgana morgana ...`.
#[derive(Parser)]
#[command(name = "cargo", bin_name = "cargo")]
enum CargoCli {
    /// Build, run and start Morgana unikernels.
    #[command(version)]
    Morgana(Cli),
}

/// `cargo morgana`'s arguments.
#[derive(clap::Args)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// Which crate: the one around the current directory, or `--manifest-path`.
#[derive(clap::Args, Debug, Default)]
struct Crate {
    /// The crate's Cargo.toml (default: found from the current directory).
    #[arg(long, value_name = "PATH")]
    manifest_path: Option<PathBuf>,
    /// The app's package, when the workspace has several.
    #[arg(long, short = 'p', value_name = "NAME")]
    package: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the app and print where its binary is.
    Build {
        /// What to build it for.
        #[arg(long, value_enum, default_value = "unix")]
        target: Target,
        /// Build with optimisations (unix; images are always optimised).
        #[arg(long)]
        release: bool,
        #[command(flatten)]
        krate: Crate,
    },
    /// Build and run the app.
    Run {
        /// Where to run it.
        #[arg(long, value_enum, default_value = "unix")]
        target: Target,
        /// Build with optimisations (unix; images are always optimised).
        #[arg(long)]
        release: bool,
        /// QEMU options (--target virtio).
        #[command(flatten)]
        qemu: QemuArgs,
        #[command(flatten)]
        krate: Crate,
        /// Arguments for the app (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Write a new unikernel crate: a TCP service that greets each connection, then echoes.
    New(NewArgs),
    /// Read and write a morgana-store disk image on the host: `kv mkfs IMAGE --size SIZE`,
    /// `kv put IMAGE KEY FILE`, `kv get IMAGE KEY`, `kv ls IMAGE [DIR]`, `kv import IMAGE DIR`,
    /// `kv export IMAGE DIR`, `kv check IMAGE` (the same as `cargo xtask kv` in Morgana's checkout).
    Kv {
        #[command(subcommand)]
        cmd: morgana_kvtool::cli::Command,
    },
}

/// `new NAME --path DIR [--git URL [--rev REV]]`, shared with `cargo xtask new`.
#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// The crate's name.
    pub name: String,
    /// Where to write it (a directory that does not exist, or is empty).
    #[arg(long)]
    pub path: PathBuf,
    /// Depend on Morgana from this git repository instead of this checkout.
    #[arg(long, value_name = "URL")]
    pub git: Option<String>,
    /// The commit, tag or branch of --git.
    #[arg(long, value_name = "REV", requires = "git")]
    pub rev: Option<String>,
}

impl NewArgs {
    /// Write the crate, depending on the Morgana checkout at `checkout` unless `--git` says
    /// otherwise (and with its `Cargo.lock`); then say what to do next.
    pub fn write(&self, checkout: Option<&Path>) -> Outcome {
        let source = match (&self.git, checkout) {
            (Some(url), _) => Source::Git { url: url.clone(), rev: self.rev.clone() },
            (None, Some(checkout)) => Source::Path(checkout.to_path_buf()),
            (None, None) => return Err(Failure::usage("new: no Morgana checkout here: pass --git URL")),
        };
        let lock = checkout.map(|c| c.join("Cargo.lock")).filter(|l| l.is_file());
        template::new(&self.name, &self.path, &source, lock.as_deref())?;
        println!(
            "created {} in {}: its README.md starts with the commands (cd {} && cargo morgana run)",
            self.name,
            self.path.display(),
            self.path.display()
        );
        Ok(())
    }
}

/// The Morgana checkout this tool was built from (the default dependency of `new`).
fn checkout() -> Result<PathBuf, Failure> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("/")).to_path_buf();
    if dir.join("impls/app/Cargo.toml").is_file() {
        Ok(dir)
    } else {
        Err(Failure::usage(format!(
            "this cargo-morgana was built from {}, which holds no Morgana checkout any more: pass --git URL",
            dir.display()
        )))
    }
}

/// The app to build in `ws`: `--package`, else the member that depends on `morgana-app` and
/// holds `at` (the manifest's directory or the current directory), else the only one.
fn the_app(ws: &Workspace, package: Option<&str>, at: &Path) -> Result<App, Failure> {
    if let Some(name) = package {
        return meta::app(&ws.members, name);
    }
    let apps: Vec<&App> =
        ws.members.iter().filter(|a| a.dependencies.iter().any(|d| d == "morgana-app")).collect();
    let holding = apps
        .iter()
        .filter(|a| a.manifest.parent().is_some_and(|d| at.starts_with(d)))
        .max_by_key(|a| a.manifest.components().count());
    match (holding, &apps[..]) {
        (Some(app), _) | (None, [app]) => Ok((*app).clone()),
        (None, []) => Err(Failure::usage(format!(
            "no package of {} depends on morgana-app: run this in a Morgana crate (make one with `cargo morgana new NAME --path DIR`)",
            ws.manifest.display()
        ))),
        (None, several) => {
            let names: Vec<&str> = several.iter().map(|a| a.name.as_str()).collect();
            Err(Failure::usage(format!("several apps here ({}): pick one with -p NAME", names.join(", "))))
        }
    }
}

/// Load the crate, pick the app, check the versions.
fn load(krate: &Crate) -> Result<(Workspace, App), Failure> {
    let ws = Workspace::load(krate.manifest_path.as_deref(), true)?;
    let cwd = std::env::current_dir().unwrap_or_default();
    let at = match &krate.manifest_path {
        Some(m) => cwd.join(m).parent().map(Path::to_path_buf).unwrap_or(cwd),
        None => cwd,
    };
    let at = at.canonicalize().unwrap_or(at);
    let app = the_app(&ws, krate.package.as_deref(), &at)?;
    version::check(&ws)?;
    Ok((ws, app))
}

/// Run `cargo morgana` with these arguments (the program's name first).
pub fn main_with(mut argv: Vec<OsString>) -> ExitCode {
    // Run directly as `cargo-morgana build`, not through cargo: the same as `cargo morgana build`.
    if argv.get(1).is_none_or(|a| a != "morgana") {
        argv.insert(1.min(argv.len()), "morgana".into());
    }
    let CargoCli::Morgana(cli) = CargoCli::parse_from(argv);
    let result = match cli.command {
        Cmd::Build { target, release, krate } => {
            load(&krate).and_then(|(ws, app)| target::build(&ws, &app, target, release))
        }
        Cmd::Run { target, release, qemu, krate, args } => {
            load(&krate).and_then(|(ws, app)| target::run(&ws, &app, target, release, &qemu, &args))
        }
        Cmd::New(new) => match (checkout(), &new.git) {
            (Ok(checkout), _) => new.write(Some(&checkout)),
            // From git, the lock file of this checkout is only a nicety.
            (Err(_), Some(_)) => new.write(None),
            (Err(e), None) => Err(e),
        },
        Cmd::Kv { cmd } => morgana_kvtool::cli::run(&cmd, &mut std::io::stdout().lock())
            .map_err(|e| Failure::new(format!("kv: {e}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { message, code }) => {
            if !message.is_empty() {
                eprintln!("cargo morgana: {message}");
            }
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let argv = ["cargo-morgana", "morgana"].into_iter().chain(args.iter().copied());
        CargoCli::try_parse_from(argv).map(|CargoCli::Morgana(cli)| cli)
    }

    #[test]
    fn the_command_lines_parse() {
        let Cmd::Run { target, qemu, args, krate, .. } =
            parse(&["run", "--target", "virtio", "--forward", "9000:8080", "--", "--port", "8080"])
                .unwrap()
                .command
        else {
            panic!("not a run")
        };
        assert_eq!(
            (target.name, qemu.forward, args),
            ("virtio", vec!["9000:8080".into()], vec!["--port".into(), "8080".into()])
        );
        assert_eq!(krate.manifest_path, None);
        let Cmd::Build { target, krate, .. } =
            parse(&["build", "--manifest-path", "x/Cargo.toml"]).unwrap().command
        else {
            panic!("not a build")
        };
        assert_eq!((target.name, krate.manifest_path), ("unix", Some("x/Cargo.toml".into())));
        let Cmd::New(new) =
            parse(&["new", "demo", "--path", "../demo", "--git", "file:///m", "--rev", "abc"])
                .unwrap()
                .command
        else {
            panic!("not a new")
        };
        assert_eq!((new.name.as_str(), new.rev.as_deref()), ("demo", Some("abc")));
        assert!(parse(&["new", "demo", "--path", "d", "--rev", "abc"]).is_err(), "--rev needs --git");
        assert!(parse(&["run", "--target", "vmware"]).is_err());
    }

    #[test]
    fn the_app_is_the_crate_here_or_the_only_one() {
        let app = |name: &str, dir: &str, morgana: bool| App {
            name: name.into(),
            manifest: Path::new(dir).join("Cargo.toml"),
            dependencies: if morgana { vec!["morgana-app".into()] } else { Vec::new() },
            ..App::default()
        };
        let mut ws = Workspace {
            root: "/w".into(),
            manifest: "/w/Cargo.toml".into(),
            target_dir: "/w/target".into(),
            members: vec![app("a", "/w/a", true), app("b", "/w/b", true), app("tools", "/w/tools", false)],
            resolved: Vec::new(),
        };
        let pick = |ws: &Workspace, at: &str| the_app(ws, None, Path::new(at)).map(|a| a.name);
        assert_eq!(pick(&ws, "/w/b/src"), Ok("b".into()));
        assert!(
            pick(&ws, "/w").unwrap_err().message.contains("several apps here (a, b): pick one with -p NAME")
        );
        assert_eq!(the_app(&ws, Some("a"), Path::new("/w")).map(|a| a.name), Ok("a".into()));
        ws.members.remove(1);
        assert_eq!(pick(&ws, "/w"), Ok("a".into()));
        ws.members.remove(0);
        assert!(pick(&ws, "/w").unwrap_err().message.contains("depends on morgana-app"));
    }

    #[test]
    fn kv_makes_an_image_and_puts_a_file_in_it() {
        let dir = std::env::temp_dir().join(format!("cargo-morgana-kv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (image, file) = (dir.join("disk.img"), dir.join("today.txt"));
        std::fs::write(&file, b"hello from the host\n").unwrap();
        let run = |args: &[&str]| {
            let argv = ["cargo-morgana", "morgana", "kv"].into_iter().chain(args.iter().copied());
            main_with(argv.map(OsString::from).collect())
        };
        let img = image.to_str().unwrap();
        assert_eq!(run(&["mkfs", img, "--size", "1M"]), ExitCode::SUCCESS);
        assert_eq!(run(&["put", img, "/notes/today", file.to_str().unwrap()]), ExitCode::SUCCESS);
        assert_eq!(run(&["mkfs", img, "--size", "1M"]), ExitCode::FAILURE, "mkfs never overwrites");
        let store = morgana_kvtool::Image::open(&image, false).unwrap();
        let mut out = Vec::new();
        store.get(&morgana_kvtool::key("/notes/today").unwrap(), &mut out).unwrap();
        assert_eq!(out, b"hello from the host\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
