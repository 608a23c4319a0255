//! `new NAME --path DIR`: a standalone unikernel crate, ready for `cargo morgana run` and
//! `cargo test`.
//!
//! The app is a small TCP service: on each connection it sends the line `hello from NAME`, then
//! echoes what it receives. It listens on `--port` (default 8080), which its
//! `[package.metadata.morgana]` declares, so that `run --target virtio` forwards host port 8080
//! to it. The crate holds `Cargo.toml` (Morgana by path or by git), `src/lib.rs` (a `start`
//! generic over the platform and the TCP stack), the one-body `src/main.rs`, an in-memory test on
//! the simulated platform (`tests/sim.rs`), a README whose first lines are its commands, and
//! Morgana's `Cargo.lock` (the versions Morgana is tested with). It needs no `.cargo/config.toml`
//! and no profile: the tool passes the bare-metal flags and the image profile to cargo.

use std::fs;
use std::path::{Path, PathBuf};

use crate::{Failure, Outcome};

/// Where the new crate gets Morgana from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A Morgana checkout on this machine.
    Path(PathBuf),
    /// A git repository, at `rev` (else its default branch).
    Git {
        /// The repository's URL (`https://...`, `file:///...`).
        url: String,
        /// A commit, tag or branch.
        rev: Option<String>,
    },
}

impl Source {
    /// The dependency line's table for the Morgana crate at `dir` (in the repository).
    fn dependency(&self, dir: &str, extra: &str) -> String {
        match self {
            Source::Path(root) => {
                format!("{{ path = \"{}\"{extra} }}", toml_escape(&root.join(dir).display().to_string()))
            }
            Source::Git { url, rev: None } => format!("{{ git = \"{}\"{extra} }}", toml_escape(url)),
            Source::Git { url, rev: Some(rev) } => {
                format!("{{ git = \"{}\", rev = \"{}\"{extra} }}", toml_escape(url), toml_escape(rev))
            }
        }
    }

    /// The one line that installs the matching tool.
    fn install(&self) -> String {
        match self {
            Source::Path(root) => format!("cargo install --locked --path {}", root.join("tool").display()),
            Source::Git { url, rev } => {
                let rev = rev.as_ref().map(|r| format!(" --rev {r}")).unwrap_or_default();
                format!("cargo install --locked --git {url}{rev} cargo-morgana")
            }
        }
    }
}

/// A TOML basic string's contents.
fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Whether `name` can name the crate: a package name that is also a Rust identifier once `-`
/// becomes `_`, and not one of Morgana's own.
fn check_name(name: &str) -> Outcome {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(Failure::usage(format!(
            "{name:?}: a crate name is lowercase letters, digits, - and _, starting with a letter"
        )));
    }
    if name == "morgana" || name.starts_with("morgana-") || name.starts_with("morgana_") || name == "test" {
        return Err(Failure::usage(format!("{name}: that name is taken by Morgana or Rust: pick another")));
    }
    Ok(())
}

/// Write the crate `name` into `dir` (which must not exist, or be empty), depending on Morgana
/// from `source`, with `lock` (Morgana's `Cargo.lock`) copied in if given.
pub fn new(name: &str, dir: &Path, source: &Source, lock: Option<&Path>) -> Outcome {
    check_name(name)?;
    if let Ok(mut entries) = fs::read_dir(dir) {
        if entries.next().is_some() {
            return Err(Failure::usage(format!(
                "{} exists and is not empty: pick a new directory for {name}",
                dir.display()
            )));
        }
    } else if dir.exists() {
        return Err(Failure::usage(format!("{} exists and is not a directory", dir.display())));
    }
    let lib = name.replace('-', "_");
    let fill = |text: &str| {
        text.replace("{NAME}", name)
            .replace("{LIB}", &lib)
            .replace("{MORGANA}", &source.dependency("traits", ""))
            .replace("{ARGS}", &source.dependency("traits/args", ""))
            .replace("{APP}", &source.dependency("impls/app", ""))
            .replace("{MEM}", &source.dependency("impls/mem", ", features = [\"std\"]"))
            .replace("{COMMANDS}", &commands(&source.install()))
    };
    let files = [
        ("Cargo.toml", CARGO_TOML),
        ("README.md", README),
        (".gitignore", "/target\n"),
        ("rust-toolchain.toml", TOOLCHAIN),
        ("src/lib.rs", LIB_RS),
        ("src/main.rs", MAIN_RS),
        ("tests/sim.rs", SIM_RS),
    ];
    let write = |path: &Path, text: &[u8]| {
        fs::create_dir_all(path.parent().unwrap_or(dir))
            .and_then(|()| fs::write(path, text))
            .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))
    };
    for (file, text) in files {
        write(&dir.join(file), fill(text).as_bytes())?;
    }
    if let Some(lock) = lock {
        let text =
            fs::read(lock).map_err(|e| Failure::new(format!("cannot read {}: {e}", lock.display())))?;
        write(&dir.join("Cargo.lock"), &text)?;
    }
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "{NAME}"
description = "A Morgana unikernel: greets each TCP connection with `hello from {NAME}`, then echoes."
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
morgana = {MORGANA}
morgana-args = {ARGS}
morgana-app = {APP}
log = { version = "0.4", default-features = false }

[dev-dependencies]
morgana-mem = {MEM}

# What `cargo morgana run` reads: the app takes a NIC and serves --port (8080 without the
# argument), so that on virtio host port 8080 forwards to it.
[package.metadata.morgana]
nic = true
ports = [{ arg = "port", default = 8080 }]
"#;

const TOOLCHAIN: &str = r#"# Morgana builds on stable Rust; its bare-metal images need the x86_64-unknown-none target.
[toolchain]
channel = "stable"
targets = ["x86_64-unknown-none"]
"#;

const README: &str = r#"# {NAME}

```sh
{COMMANDS}```

A [Morgana](https://github.com/morgana-unikernel/morgana) unikernel: a TCP service that sends
`hello from {NAME}` to each connection, then echoes what it receives. `src/lib.rs` is the app,
generic over the platform and the TCP stack; `src/main.rs` wires it on every target;
`tests/sim.rs` runs it on in-memory devices and virtual time. `cargo morgana build --target
virtio` prints the bare-metal image's path; `cargo morgana run -- --help` lists the arguments.
"#;

/// The README's first lines: its commands, their comments lined up.
fn commands(install: &str) -> String {
    let lines = [
        (install, "once: the cargo morgana tool"),
        ("cargo morgana run -- --port 8080", "on Linux; then: nc 127.0.0.1 8080"),
        ("cargo morgana run --target virtio", "in QEMU; host port 8080 forwards to the guest's 8080"),
        ("cargo test", "on the simulated platform, in memory"),
    ];
    let width = lines.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    lines.iter().map(|(c, why)| format!("{c:<width$}   # {why}\n")).collect()
}

const LIB_RS: &str = r#"//! `{NAME}`: a TCP service that sends `hello from {NAME}` to each connection, then echoes what
//! it receives. Generic over the platform and the TCP stack, so the same code runs on host
//! sockets, on bare metal, and on in-memory devices in a test.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt;

use morgana::prelude::*;
use morgana_args::{ArgError, ArgSpec, Args};

/// The line each connection gets first.
pub const GREETING: &str = "hello from {NAME}\n";

/// `--port PORT`.
pub const ARGS: &[ArgSpec] = &[PORT];
const PORT: ArgSpec = ArgSpec::value("port", "PORT", "TCP port to listen on").default("8080");

/// Where the service listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The TCP port.
    pub port: u16,
}

impl Config {
    /// Read the configuration from the runtime arguments.
    pub fn from_args(args: &Args) -> Result<Self, ArgError> {
        let port = args.get("port")?;
        Ok(Self { port })
    }
}

/// Why the service could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenError {
    /// The port asked for.
    pub port: u16,
    /// What the stack said.
    pub error: StackError,
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot listen on TCP port {}: {}", self.port, self.error)
    }
}

/// Accept connections forever, serving each in its own task.
pub async fn start<P, S>(platform: P, stack: S, config: Config) -> Result<(), ListenError>
where
    P: Platform,
    S: TcpStack,
{
    let port = config.port;
    let listen = stack.listen(port, 16).await;
    let mut listener = listen.map_err(|error| ListenError { port, error })?;
    log::info!("listening on {}", listener.local_addr());
    let clock = platform.clock();
    let tasks = TaskGroup::unlimited(platform);
    loop {
        match listener.accept().await {
            Ok((conn, peer)) => {
                log::info!("connection from {peer}");
                tasks.spawn(serve(conn));
            }
            Err(e) => {
                // Out of sockets or buffers: let the open connections finish instead of spinning.
                log::warn!("accept failed: {e}");
                clock.sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Greet one connection, then echo it until the peer closes its side.
async fn serve<F: Flow<Error = StackError>>(mut conn: F) {
    let result = async {
        conn.write_all(GREETING.as_bytes()).await?;
        let mut buf = [0u8; 1024];
        loop {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                return conn.close().await;
            }
            conn.write_all(&buf[..n]).await?;
        }
    }
    .await;
    if let Err(e) = result {
        log::info!("connection ended: {e}");
    }
}
"#;

const MAIN_RS: &str = r#"//! `{NAME}` on every target: `cargo morgana run [--target virtio]`.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

morgana_app::main!(args: [{LIB}::ARGS], devices: [TcpStack], |t| {
    let config = {LIB}::Config::from_args(t.args())?;
    Ok({LIB}::start(t.platform(), t.tcp_stack()?, config))
});
"#;

const SIM_RS: &str = r#"//! `{NAME}` on in-memory devices and virtual time: a client on the simulated network is greeted,
//! then echoed.

use morgana::prelude::*;
use morgana_args::Args;
use morgana_mem::MemTcpNet;
use morgana_mem::sim::Sim;

use {LIB}::{ARGS, Config, GREETING};

#[test]
fn each_connection_is_greeted_then_echoed() {
    let out = Sim::new(1).run(|p| async move {
        let net = MemTcpNet::new();
        let server = net.host([10, 0, 0, 1]);
        let client = net.host([10, 0, 0, 2]);
        let service = {LIB}::start(p.clone(), server, Config { port: 8080 });
        p.spawn(async move { service.await.unwrap() });
        // Let the server's task run up to its listen.
        p.clock().sleep(Duration::from_millis(1)).await;
        for word in ["ping\n", "pong\n"] {
            let addr = "10.0.0.1:8080".parse().unwrap();
            let mut conn = client.connect(addr).await.unwrap();
            let mut greeting = [0u8; GREETING.len()];
            conn.read_exact(&mut greeting).await.unwrap();
            assert_eq!(greeting, GREETING.as_bytes());
            conn.write_all(word.as_bytes()).await.unwrap();
            let mut back = [0u8; 5];
            conn.read_exact(&mut back).await.unwrap();
            assert_eq!(back, word.as_bytes());
        }
    });
    out.result.unwrap();
    let log = out.messages();
    assert!(log.contains(&"listening on 10.0.0.1:8080"), "{log:?}");
    let connections = log.iter().filter(|m| m.starts_with("connection from"));
    assert_eq!(connections.count(), 2, "{log:?}");
}

#[test]
fn the_port_is_an_argument() {
    let config = |argv: &[&str]| {
        let args = Args::parse(&[ARGS], argv.iter().copied()).unwrap();
        Config::from_args(&args).map(|c| c.port)
    };
    assert_eq!(config(&[]), Ok(8080));
    assert_eq!(config(&["--port", "9000"]), Ok(9000));
    let bad = config(&["--port", "http"]).unwrap_err().to_string();
    assert!(bad.starts_with("--port:"), "{bad}");
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_that_is_not_empty_is_refused_in_one_line() {
        let dir = std::env::temp_dir().join(format!("morgana-template-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("notes.txt"), "mine").unwrap();
        let e = new("demo", &dir, &Source::Path("/m".into()), None).unwrap_err();
        assert_eq!(
            e.message,
            format!("{} exists and is not empty: pick a new directory for demo", dir.display())
        );
        assert_eq!(fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine", "left alone");
        fs::remove_file(dir.join("notes.txt")).unwrap();
        let git = Source::Git { url: "file:///m".into(), rev: Some("abc".into()) };
        new("my-svc", &dir, &git, None).unwrap();
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains(r#"morgana-app = { git = "file:///m", rev = "abc" }"#), "{manifest}");
        let main = fs::read_to_string(dir.join("src/main.rs")).unwrap();
        assert!(main.contains("my_svc::start(") && main.contains("my_svc::ARGS"), "{main}");
        let readme = fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(readme.contains("cargo install --locked --git file:///m --rev abc cargo-morgana"));
        fs::remove_dir_all(&dir).unwrap();
        assert!(new("Bad Name", &dir, &git, None).unwrap_err().message.contains("lowercase"));
        assert!(new("morgana-x", &dir, &git, None).is_err());
    }
}
