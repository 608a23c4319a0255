//! The tool and the crate it builds must agree: the flags, the profile and the QEMU options of a
//! target are this tool's, and they change with Morgana. So the `morgana` crates a user's crate
//! resolves must be this tool's version, or the tool says in one line how to install the one
//! that matches.

use std::path::Path;

use crate::meta::{Resolved, Workspace};
use crate::{Failure, Outcome};

/// This tool's version: the Morgana release it was built from.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The crates whose version must be [`VERSION`].
const CRATES: &[&str] = &["morgana", "morgana-app"];

/// Whether the Morgana crates `ws` resolves (loaded with its dependencies) are this tool's
/// version; else one line saying what to install.
pub fn check(ws: &Workspace) -> Outcome {
    let ours: Vec<&Resolved> = ws.resolved.iter().filter(|p| CRATES.contains(&p.name.as_str())).collect();
    if ours.is_empty() {
        return Err(Failure::usage(format!(
            "{} does not depend on morgana-app: run this in a Morgana crate (make one with `cargo morgana new NAME --path DIR`)",
            ws.manifest.display()
        )));
    }
    match ours.iter().find(|p| p.version != VERSION) {
        None => Ok(()),
        Some(p) => Err(Failure::new(format!(
            "cargo-morgana {VERSION} does not match {} {}, which this crate depends on: install the matching tool with `{}`",
            p.name,
            p.version,
            install_command(p)
        ))),
    }
}

/// The command that installs the tool matching `p`, from where `p` comes from.
pub fn install_command(p: &Resolved) -> String {
    match p.source.as_deref() {
        // `git+URL?rev=R#COMMIT` (or `?branch=`, or no query): the commit resolved.
        Some(git) if git.starts_with("git+") => {
            let (url, commit) = git["git+".len()..].split_once('#').unwrap_or((&git[4..], ""));
            let url = url.split_once('?').map_or(url, |(u, _)| u);
            let rev = if commit.is_empty() { String::new() } else { format!(" --rev {commit}") };
            format!("cargo install --locked --git {url}{rev} cargo-morgana")
        }
        Some(_) => format!("cargo install --locked cargo-morgana --version {}", p.version),
        None => {
            let checkout = p.manifest.ancestors().find(|d| d.join("tool/Cargo.toml").is_file());
            let tool =
                checkout.map_or_else(|| Path::new("MORGANA_CHECKOUT").join("tool"), |d| d.join("tool"));
            format!("cargo install --locked --path {}", tool.display())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn ws(resolved: Vec<Resolved>) -> Workspace {
        Workspace {
            root: "/u/demo".into(),
            manifest: "/u/demo/Cargo.toml".into(),
            target_dir: "/u/demo/target".into(),
            members: Vec::new(),
            resolved,
        }
    }

    fn morgana(version: &str, source: Option<&str>) -> Resolved {
        Resolved {
            name: "morgana".into(),
            version: version.into(),
            source: source.map(String::from),
            manifest: PathBuf::from("/nowhere/traits/Cargo.toml"),
        }
    }

    #[test]
    fn a_matching_version_passes_and_a_crate_without_morgana_is_refused() {
        assert_eq!(check(&ws(vec![morgana(VERSION, None)])), Ok(()));
        let e = check(&ws(Vec::new())).unwrap_err();
        assert!(e.message.contains("does not depend on morgana-app") && e.code == 2, "{e:?}");
    }

    #[test]
    fn another_version_says_what_to_install_in_one_line() {
        let git = "git+file:///src/morgana?rev=abc#abcdef0123";
        let e = check(&ws(vec![morgana("9.9.9", Some(git))])).unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "cargo-morgana {VERSION} does not match morgana 9.9.9, which this crate depends on: install the \
                 matching tool with `cargo install --locked --git file:///src/morgana --rev abcdef0123 cargo-morgana`"
            )
        );
        let here = morgana("9.9.9", None);
        let mut from_this_checkout = here.clone();
        from_this_checkout.manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../traits/Cargo.toml");
        assert!(install_command(&from_this_checkout).ends_with("/../tool"));
        assert_eq!(install_command(&here), "cargo install --locked --path MORGANA_CHECKOUT/tool");
        let registry = morgana("9.9.9", Some("registry+https://github.com/rust-lang/crates.io-index"));
        assert_eq!(install_command(&registry), "cargo install --locked cargo-morgana --version 9.9.9");
    }
}
