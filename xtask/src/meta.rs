//! What each app says about itself in its `Cargo.toml`, read with `cargo metadata`:
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
//! hypervisor's (for the forwards of `cargo xtask run --target virtio`); `scheme` names the URL
//! xtask prints. xtask reads no app source.

use std::path::Path;

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

/// One app of the workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct App {
    /// The package name (also the binary's).
    pub name: String,
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
        Ok(Self {
            description: p["description"].as_str().unwrap_or_default().to_string(),
            nic: flag("nic")?,
            disk: flag("disk")?,
            ports,
            targets,
            name,
        })
    }
}

/// The apps: the workspace's packages under `apps/`, sorted by name.
pub fn apps(root: &Path) -> Result<Vec<App>, Failure> {
    let out = crate::cargo()
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|e| Failure::new(format!("cannot run cargo metadata: {e}")))?;
    if !out.status.success() {
        return Err(Failure::new(format!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    let meta: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Failure::new(format!("cargo metadata: unreadable output: {e}")))?;
    let apps_dir = root.join("apps");
    let mut apps = Vec::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        let under_apps = p["manifest_path"].as_str().is_some_and(|m| Path::new(m).starts_with(&apps_dir));
        if under_apps {
            apps.push(App::from_package(p).map_err(Failure::new)?);
        }
    }
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(apps)
}

/// The app named `name`.
pub fn app(root: &Path, name: &str) -> Result<App, Failure> {
    let all = apps(root)?;
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
        let get = |n: &str| apps.iter().find(|a| a.name == n).unwrap_or_else(|| panic!("no app {n}"));
        assert_eq!(apps.len(), 13);
        let www = get("www");
        assert!(www.nic && !www.disk && www.supports("virtio") && www.supports("unix"));
        assert_eq!(
            www.ports[0],
            PortDecl { arg: "port".into(), default: Some(443), scheme: Some("https".into()) }
        );
        assert_eq!(www.ports[1].default, None);
        assert!(get("block").disk && !get("block").nic);
        assert!(get("dns").nic && get("dns").ports.is_empty());
        assert!(!get("hello").nic && get("hello").ports.is_empty());
        assert!(get("echo").description.starts_with("mirage-skeleton"));
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
