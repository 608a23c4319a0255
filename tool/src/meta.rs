//! The crates `cargo metadata` finds, and what each app says about itself in its `Cargo.toml`:
//!
//! ```toml
//! [package.metadata.morgana]
//! nic = true                       # it takes a network interface (user networking by default)
//! disk = true                      # it takes a disk (--block FILE)
//! ports = [{ arg = "port", default = 443, scheme = "https" }, { arg = "http-port", scheme = "http" }]
//! targets = ["unix"]               # where it runs; absent: every target
//! ```
//!
//! A port's `default` is the one it listens on with no argument on a target whose NIC is the
//! hypervisor's (for the forwards of `run --target virtio`); `scheme` names the URL printed.
//! No app source is read.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Failure;

/// A TCP port an app serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortDecl {
    /// The argument that sets it, without `--`.
    pub arg: String,
    /// The port with no argument.
    pub default: Option<u16>,
    /// The URL scheme it speaks (`https`), if any.
    pub scheme: Option<String>,
}

/// One app: a package of the workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct App {
    /// The package name.
    pub name: String,
    /// Its binary (the first `[[bin]]`, usually named as the package), if it has one.
    pub bin: Option<String>,
    /// Its `Cargo.toml`.
    pub manifest: PathBuf,
    /// The names of its dependencies.
    pub dependencies: Vec<String>,
    /// Its one-line description.
    pub description: String,
    /// Whether it takes a NIC.
    pub nic: bool,
    /// Whether it takes a disk.
    pub disk: bool,
    /// The ports it serves.
    pub ports: Vec<PortDecl>,
    /// The targets it runs on; `None`: every one.
    pub targets: Option<Vec<String>>,
}

impl App {
    /// Whether the app runs on `target`.
    pub fn supports(&self, target: &str) -> bool {
        self.targets.as_ref().is_none_or(|t| t.iter().any(|t| t == target))
    }

    fn from_package(p: &Value) -> Result<Self, String> {
        let name = p["name"].as_str().ok_or("a package without a name")?.to_string();
        let m = &p["metadata"]["morgana"];
        let bad = |what: &str| format!("{name}: [package.metadata.morgana] {what}");
        let flag = |key: &str| match &m[key] {
            Value::Null => Ok(false),
            Value::Bool(b) => Ok(*b),
            _ => Err(bad(&format!("{key}: expected true or false"))),
        };
        let mut ports = Vec::new();
        for port in m["ports"].as_array().into_iter().flatten() {
            let arg = port["arg"].as_str().ok_or_else(|| bad("ports: each needs arg = \"NAME\""))?;
            let default = match &port["default"] {
                Value::Null => None,
                v => Some(
                    v.as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or_else(|| bad("ports: default is a port"))?,
                ),
            };
            let scheme = port["scheme"].as_str().map(String::from);
            ports.push(PortDecl { arg: arg.into(), default, scheme });
        }
        let targets = match &m["targets"] {
            Value::Null => None,
            Value::Array(a) => Some(
                a.iter()
                    .map(|t| t.as_str().map(String::from).ok_or_else(|| bad("targets: a list of names")))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(bad("targets: a list of names")),
        };
        let bin = p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin")))
            .and_then(|t| t["name"].as_str())
            .map(String::from);
        let dependencies = p["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["name"].as_str().map(String::from))
            .collect();
        Ok(Self {
            bin,
            manifest: PathBuf::from(p["manifest_path"].as_str().unwrap_or_default()),
            dependencies,
            description: p["description"].as_str().unwrap_or_default().to_string(),
            nic: flag("nic")?,
            disk: flag("disk")?,
            ports,
            targets,
            name,
        })
    }
}

/// A package `cargo metadata` resolved, for the version check ([`crate::version`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Where it comes from (`git+file:///...?rev=R#COMMIT`, `registry+...`); `None` for a path.
    pub source: Option<String>,
    /// Its `Cargo.toml`.
    pub manifest: PathBuf,
}

/// A workspace (or a lone crate) as `cargo metadata` sees it.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// Its root directory.
    pub root: PathBuf,
    /// The manifest cargo commands are given (`--manifest-path`).
    pub manifest: PathBuf,
    /// Where cargo puts what it builds.
    pub target_dir: PathBuf,
    /// Its member packages, sorted by name.
    pub members: Vec<App>,
    /// Every package of the resolved dependency graph; empty when loaded without dependencies.
    pub resolved: Vec<Resolved>,
}

impl Workspace {
    /// `cargo metadata` of the crate at `manifest` (else the one around the current directory);
    /// with `deps`, its dependency graph too (for [`crate::version`]; slower).
    pub fn load(manifest: Option<&Path>, deps: bool) -> Result<Self, Failure> {
        let mut c = crate::cargo();
        c.args(["metadata", "--format-version", "1"]);
        if !deps {
            c.arg("--no-deps");
        }
        if let Some(m) = manifest {
            c.arg("--manifest-path").arg(m);
        }
        let out = c.output().map_err(|e| Failure::new(format!("cannot run cargo metadata: {e}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let err: Vec<&str> = err.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            return Err(Failure::new(format!("cargo metadata failed: {}", err.join(" "))));
        }
        let meta: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| Failure::new(format!("cargo metadata: unreadable output: {e}")))?;
        Self::from_metadata(&meta, manifest)
    }

    fn from_metadata(meta: &Value, manifest: Option<&Path>) -> Result<Self, Failure> {
        let path = |key: &str| PathBuf::from(meta[key].as_str().unwrap_or_default());
        let root = path("workspace_root");
        let ids: Vec<&str> =
            meta["workspace_members"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let mut members = Vec::new();
        let mut resolved = Vec::new();
        let all_deps = !meta["resolve"].is_null();
        for p in meta["packages"].as_array().into_iter().flatten() {
            if p["id"].as_str().is_some_and(|id| ids.contains(&id)) {
                members.push(App::from_package(p).map_err(Failure::new)?);
            }
            if all_deps {
                resolved.push(Resolved {
                    name: p["name"].as_str().unwrap_or_default().into(),
                    version: p["version"].as_str().unwrap_or_default().into(),
                    source: p["source"].as_str().map(String::from),
                    manifest: PathBuf::from(p["manifest_path"].as_str().unwrap_or_default()),
                });
            }
        }
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let manifest = manifest.map_or_else(|| root.join("Cargo.toml"), Path::to_path_buf);
        Ok(Self { target_dir: path("target_directory"), root, manifest, members, resolved })
    }

    /// The members under `dir` (the Morgana workspace's `apps/`).
    pub fn apps_under(&self, dir: &Path) -> Vec<App> {
        self.members.iter().filter(|a| a.manifest.starts_with(dir)).cloned().collect()
    }
}

/// The apps of the Morgana workspace at `root`: its packages under `apps/`, sorted by name.
pub fn apps(root: &Path) -> Result<Vec<App>, Failure> {
    Ok(Workspace::load(Some(&root.join("Cargo.toml")), false)?.apps_under(&root.join("apps")))
}

/// The app named `name` among `all`.
pub fn app(all: &[App], name: &str) -> Result<App, Failure> {
    match all.iter().find(|a| a.name == name) {
        Some(a) => Ok(a.clone()),
        None => {
            let names: Vec<&str> = all.iter().map(|a| a.name.as_str()).collect();
            Err(Failure::usage(format!("unknown app '{name}'; valid apps: {}", names.join(", "))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apps_describe_themselves() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let apps = apps(root).unwrap_or_else(|f| panic!("{}", f.message));
        assert_eq!(get_bin(&apps, "hello-key"), Some("hello-key"));
        let get = |n: &str| apps.iter().find(|a| a.name == n).unwrap_or_else(|| panic!("no app {n}"));
        assert_eq!(apps.len(), 15);
        let www = get("www");
        assert!(www.nic && !www.disk && www.supports("virtio") && www.supports("unix"));
        assert_eq!(
            www.ports[0],
            PortDecl { arg: "port".into(), default: Some(443), scheme: Some("https".into()) }
        );
        assert_eq!(www.ports[1].default, None);
        assert!(get("block").disk && !get("block").nic);
        let lottery = get("disk-lottery");
        assert!(lottery.disk && !lottery.nic && lottery.supports("virtio"));
        assert!(get("dns").nic && get("dns").ports.is_empty());
        assert!(!get("hello").nic && get("hello").ports.is_empty());
        assert!(get("echo").description.starts_with("mirage-skeleton"));
    }

    fn get_bin<'a>(apps: &'a [App], name: &str) -> Option<&'a str> {
        apps.iter().find(|a| a.name == name)?.bin.as_deref()
    }

    #[test]
    fn bad_metadata_is_one_line_naming_the_app() {
        let p = serde_json::json!({"name": "x", "metadata": {"morgana": {"nic": "yes"}}});
        assert_eq!(
            App::from_package(&p).unwrap_err(),
            "x: [package.metadata.morgana] nic: expected true or false"
        );
        let p = serde_json::json!({"name": "x", "metadata": {"morgana": {"ports": [{"arg": "port", "default": 70000}]}}});
        assert!(App::from_package(&p).unwrap_err().contains("default is a port"));
        let p = serde_json::json!({"name": "x", "metadata": {"morgana": {"targets": ["unix"]}}});
        let only_unix = App::from_package(&p).unwrap();
        assert!(only_unix.supports("unix") && !only_unix.supports("virtio"));
    }
}
