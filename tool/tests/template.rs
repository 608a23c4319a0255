//! The user's path, end to end: `cargo morgana new` writes a crate in a temporary directory
//! outside this workspace, depending on this checkout by path (and once by `git = "file://..."`);
//! its own `cargo test` passes; the tool is installed with the first command of its README, and
//! `cargo morgana run` (that installed tool, found by cargo on `PATH`) runs it on unix and its
//! greeting is read over loopback; `cargo morgana run --target virtio` boots it under QEMU and
//! the greeting is read through the forwarded port.
//!
//! The crates share this workspace's target directory, so what `cargo xtask` built is reused
//! (the image profile is the same: the tool passes it to cargo), and they start from its
//! `Cargo.lock`, which `new` copies in.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use morgana_netns::{Need, Proc, Suite, echo_through, free_port, target_missing, toolchain};

/// The generated crate's name, and so its greeting.
const NAME: &str = "greeter";
const GREETING: &str = "hello from greeter\n";
const RUST_TARGET: &str = "x86_64-unknown-none";
/// A build of the crate and its dependencies on a busy 2-core machine, then its start.
const START: Duration = Duration::from_secs(900);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("the workspace root")
}

/// `cmd` run in `dir` as a user's shell would: this workspace's toolchain and target directory,
/// and no flags from this environment.
fn as_user(mut cmd: Command, dir: &Path) -> Command {
    let (_, rustc) = toolchain();
    cmd.current_dir(dir).env("CARGO_TARGET_DIR", root().join("target"));
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS",
        "CARGO_MANIFEST_DIR",
        "CARGO_PKG_NAME",
    ] {
        cmd.env_remove(var);
    }
    if let Some(rustc) = rustc {
        cmd.env("RUSTC", rustc);
    }
    cmd
}

/// `cargo morgana ARGS` in `dir`.
fn tool(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cargo-morgana"));
    c.arg("morgana").args(args);
    as_user(c, dir)
}

/// The tool installed as the path-dependent crate's README says: its first command, run as it
/// is written (with `--root` in a temporary directory added), once. The `bin` directory that
/// holds `cargo-morgana`.
fn installed() -> Result<&'static Path, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = by_path()?;
        let readme = fs::read_to_string(dir.join("README.md")).map_err(|e| e.to_string())?;
        let line = readme.lines().skip_while(|l| !l.starts_with("```")).nth(1).unwrap_or_default();
        let command = line.split('#').next().unwrap_or_default();
        let words: Vec<&str> = command.split_whitespace().collect();
        let ["cargo", args @ ..] = &words[..] else {
            return Err(format!("the README's first command is not a cargo command: {line}"));
        };
        let root = temp("install");
        let (cargo, _) = toolchain();
        let mut c = as_user(Command::new(cargo), dir);
        let out = c.args(args).arg("--root").arg(&root).output().map_err(|e| e.to_string())?;
        let bin = root.join("bin");
        if !out.status.success() || !bin.join("cargo-morgana").is_file() {
            return Err(format!("`{}` failed:\n{}", command.trim(), String::from_utf8_lossy(&out.stderr)));
        }
        Ok(bin)
    })
    .as_deref()
    .map_err(Clone::clone)
}

/// `cargo morgana ARGS` in `dir` as a user types it: cargo finds the installed tool on `PATH`.
fn user_tool(dir: &Path, args: &[&str]) -> Result<Command, String> {
    let bin = installed()?;
    let (cargo, _) = toolchain();
    let mut c = Command::new(cargo);
    c.arg("morgana").args(args);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let paths = std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&path));
    c.env("PATH", std::env::join_paths(paths).map_err(|e| e.to_string())?);
    Ok(as_user(c, dir))
}

/// A fresh temporary directory for `what`.
fn temp(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("morgana-template-{what}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// `cargo morgana new greeter --path DIR/greeter EXTRA...`, once per kind of dependency.
fn generate(what: &str, extra: &[&str]) -> Result<PathBuf, String> {
    let parent = temp(what);
    let dir = parent.join(NAME);
    let out = tool(&parent, &["new", NAME, "--path", &dir.display().to_string()])
        .args(extra)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("new failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let readme = fs::read_to_string(dir.join("README.md")).map_err(|e| e.to_string())?;
    let first: Vec<&str> = readme.lines().skip_while(|l| !l.starts_with("```")).skip(1).take(4).collect();
    let wanted = [
        "cargo install --locked",
        "cargo morgana run -- --port",
        "cargo morgana run --target virtio",
        "cargo test",
    ];
    for (line, want) in first.iter().zip(wanted) {
        if !line.starts_with(want) {
            return Err(format!("the README's commands do not start with `{want}`:\n{readme}"));
        }
    }
    Ok(dir)
}

/// The crate depending on this checkout by path, generated once.
fn by_path() -> Result<&'static Path, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| generate("path", &[])).as_deref().map_err(Clone::clone)
}

/// The crate depending on this checkout's HEAD by `git = "file://..."`, generated once. The
/// dependency is a one-commit repository made from HEAD's tree (`git archive`), so that the test
/// works in a shallow clone too, which cargo cannot fetch from.
fn by_git() -> Result<&'static Path, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let repo = temp("repo");
        let git = |dir: &Path, args: &[&str]| -> Result<String, String> {
            let out = Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(["-c", "user.name=morgana-test", "-c", "user.email=test@localhost"])
                .args(args)
                .output()
                .map_err(|e| format!("git: {e}"))?;
            if !out.status.success() {
                return Err(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let archive = repo.join("head.tar");
        git(&root(), &["archive", "--format=tar", "-o", &archive.display().to_string(), "HEAD"])?;
        let tree = repo.join("morgana");
        fs::create_dir_all(&tree).map_err(|e| e.to_string())?;
        let untar = Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&tree).status();
        if !untar.map(|s| s.success()).unwrap_or(false) {
            return Err(format!("tar could not unpack {}", archive.display()));
        }
        git(&tree, &["init", "-q"])?;
        git(&tree, &["add", "-A"])?;
        git(&tree, &["commit", "-q", "-m", "HEAD of the checkout under test"])?;
        let head = git(&tree, &["rev-parse", "HEAD"])?;
        let url = format!("file://{}", tree.display());
        generate("git", &["--git", &url, "--rev", &head])
    })
    .as_deref()
    .map_err(Clone::clone)
}

/// The first ` ```rust ` block of the README's "Writing an app" section, pasted into the
/// generated crate as a test file, passes there: the example a user copies cannot rot.
fn readme_example(dir: &Path) -> Result<(), String> {
    let readme = fs::read_to_string(root().join("README.md")).map_err(|e| e.to_string())?;
    let section =
        readme.split("\n## Writing an app").nth(1).ok_or("the README has no \"## Writing an app\"")?;
    let block = section.split("```rust\n").nth(1).and_then(|b| b.split("\n```").next());
    let block = block.ok_or("no ```rust block in the README's \"Writing an app\"")?;
    fs::write(dir.join("tests/readme.rs"), format!("{block}\n")).map_err(|e| e.to_string())?;
    let (cargo, _) = toolchain();
    let out = as_user(Command::new(cargo), dir).args(["test", "--test", "readme"]).output();
    let out = out.map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains("test result: ok. 1 passed") {
        return Err(format!(
            "the README's example failed in a new crate:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The README's `main.rs` example is `echo`'s, as it is in the repository.
fn readme_main_is_echos() -> Result<(), String> {
    let readme = fs::read_to_string(root().join("README.md")).map_err(|e| e.to_string())?;
    let main = fs::read_to_string(root().join("apps/echo/src/main.rs")).map_err(|e| e.to_string())?;
    let body: String = main.lines().filter(|l| !l.starts_with("//!")).map(|l| format!("{l}\n")).collect();
    if !readme.contains(&format!("```rust\n{body}```")) {
        return Err(format!("the README does not show apps/echo/src/main.rs as it is:\n{body}"));
    }
    Ok(())
}

fn cargo_test(dir: &Path) -> Result<(), String> {
    let (cargo, _) = toolchain();
    let mut c = as_user(Command::new(cargo), dir);
    let out = c.arg("test").output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains("test each_connection_is_greeted_then_echoed ... ok") {
        return Err(format!("cargo test failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// Connect to 127.0.0.1:`port` until the greeting and the echo come back (QEMU's forward accepts
/// before the guest listens), for at most `within`.
fn greeted(port: u16, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let want = format!("{GREETING}ping\n");
    loop {
        let got = echo_through(port, b"ping\n", Duration::from_secs(10));
        match got {
            Ok(bytes) if bytes == want.as_bytes() => return Ok(()),
            Ok(bytes) if !bytes.is_empty() => {
                return Err(format!(
                    "127.0.0.1:{port} answered {:?}, not {want:?}",
                    String::from_utf8_lossy(&bytes)
                ));
            }
            _ if Instant::now() > deadline => {
                return Err(format!("no greeting on 127.0.0.1:{port}: {got:?}"));
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn on_unix(dir: &Path) -> Result<(), String> {
    let port = free_port();
    let mut run = Proc::spawn_group(user_tool(dir, &["run", "--", "--port", &port.to_string()])?);
    run.try_wait_for("listening on", START).map_err(|e| format!("{e}\n{}", run.text()))?;
    greeted(port, Duration::from_secs(10)).map_err(|e| format!("{e}\n{}", run.text()))?;
    if !run.printed("connection from 127.0.0.1") {
        return Err(format!("the app did not log the connection:\n{}", run.text()));
    }
    Ok(())
}

fn under_qemu(dir: &Path) -> Result<(), String> {
    let port = free_port();
    let forward = format!("{port}:8080");
    let mut run = Proc::spawn_group(user_tool(dir, &["run", "--target", "virtio", "--forward", &forward])?);
    run.try_wait_for("listening on", START).map_err(|e| format!("{e}\n{}", run.text()))?;
    greeted(port, Duration::from_secs(120)).map_err(|e| format!("{e}\n{}", run.text()))?;
    if !run.printed(&format!("127.0.0.1:{port} forwards to the guest's TCP port 8080")) {
        return Err(format!("the forward was not announced:\n{}", run.text()));
    }
    Ok(())
}

fn new_refuses_a_directory_that_is_not_empty() -> Result<(), String> {
    let dir = temp("full");
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    let out = tool(&dir, &["new", NAME, "--path", &dir.display().to_string()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = fs::remove_dir_all(&dir);
    let want = format!(
        "cargo morgana: {} exists and is not empty: pick a new directory for {NAME}\n",
        dir.display()
    );
    if out.status.code() != Some(2) || stderr != want {
        return Err(format!("{:?}: {stderr}", out.status));
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut suite = Suite::new();
    suite.one_at_a_time();
    let mut qemu = vec![Need::program("qemu-system-x86_64", "qemu-system-x86")];
    qemu.extend(target_missing(RUST_TARGET).map(Need::Missing));
    suite.check("new_refuses_a_directory_that_is_not_empty", &[], new_refuses_a_directory_that_is_not_empty);
    suite.check("by_path_its_own_tests_pass", &[], || cargo_test(by_path()?));
    suite.check("by_path_on_unix_it_greets_over_loopback", &[], || on_unix(by_path()?));
    suite.check("by_path_under_qemu_it_greets_through_the_forwarded_port", &qemu, || under_qemu(by_path()?));
    suite.check("the_readme_main_rs_is_echos", &[], readme_main_is_echos);
    suite.check("by_path_the_readme_example_passes_pasted_into_it", &[], || readme_example(by_path()?));
    suite.check("by_git_its_own_tests_pass", &[], || cargo_test(by_git()?));
    suite.check("by_git_on_unix_it_greets_over_loopback", &[], || on_unix(by_git()?));
    suite.check("by_git_under_qemu_it_greets_through_the_forwarded_port", &qemu, || under_qemu(by_git()?));
    let status = suite.run();
    for what in ["path", "git", "repo", "install"] {
        let _ = fs::remove_dir_all(
            std::env::temp_dir().join(format!("morgana-template-{what}-{}", std::process::id())),
        );
    }
    status
}
