//! A unikernel in a crate of its own, outside this workspace, depending on `morgana-app` by
//! path as a user's crate depends on it by git: built for bare metal without the flags, it fails
//! with `morgana-virtio`'s one line saying what to add, before rust-lld runs; with the two
//! path-free flags in its `.cargo/config.toml`, it links an image.
//!
//! It shares this workspace's target directory, Cargo.lock and image profile, so the
//! dependencies `cargo xtask` has built for the images are reused.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};

use morgana_netns::{Need, Suite, target_missing, toolchain};

const TARGET: &str = "x86_64-unknown-none";
/// What the error asks for, in a user's `.cargo/config.toml`.
const CONFIG: &str = "[target.x86_64-unknown-none]\n\
    rustflags = [\"-C\", \"relocation-model=static\", \"-C\", \"force-frame-pointers=yes\", \"-C\", \"link-arg=-Tmorgana-virtio.ld\"]\n";
const MAIN: &str = "#![no_std]\n#![cfg_attr(target_os = \"none\", no_main)]\n\n\
    async fn start<P: morgana::Platform>(_p: P) -> Result<(), core::convert::Infallible> {\n    Ok(())\n}\n\n\
    morgana_app::main!(args: [], |t| Ok(start(t.platform())));\n";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root")
}

/// A new crate in a fresh temporary directory: `main.rs`, a manifest with the image profile,
/// the workspace's Cargo.lock, and `config` as its `.cargo/config.toml` if given.
fn user_crate(name: &str, config: Option<&str>) -> PathBuf {
    let root = root();
    let dir = std::env::temp_dir().join(format!("morgana-user-crate-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\nmorgana = {{ path = \"{r}/traits\" }}\nmorgana-app = {{ path = \"{r}/impls/app\" }}\n\n\
         [profile.release]\nlto = true\ncodegen-units = 1\ndebug = false\n\n\
         [profile.release-small]\ninherits = \"release\"\nopt-level = \"s\"\nstrip = true\n",
        r = root.display()
    );
    fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    fs::write(dir.join("src/main.rs"), MAIN).unwrap();
    fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    if let Some(config) = config {
        fs::create_dir_all(dir.join(".cargo")).unwrap();
        fs::write(dir.join(".cargo/config.toml"), config).unwrap();
    }
    dir
}

/// `cargo build` of the crate in `dir` for bare metal, offline, into the workspace's target
/// directory, with no flags from this environment.
fn build(dir: &Path) -> Output {
    let (cargo, rustc) = toolchain();
    let mut c = Command::new(cargo);
    c.current_dir(dir)
        .args(["build", "--offline", "--target", TARGET, "--profile", "release-small"])
        .env("CARGO_TARGET_DIR", root().join("target"));
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS",
    ] {
        c.env_remove(var);
    }
    if let Some(rustc) = rustc {
        c.env("RUSTC", rustc);
    }
    c.output().expect("cargo runs")
}

fn without_the_flags_one_line_says_what_to_add() -> Result<(), String> {
    let dir = user_crate("morgana-user-noflags", None);
    let out = build(&dir);
    let _ = fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return Err(format!("built without the flags:\n{stderr}"));
    }
    let ours: Vec<&str> =
        stderr.lines().map(str::trim).filter(|l| l.starts_with("error: morgana-virtio:")).collect();
    let [line] = ours[..] else { return Err(format!("expected one line from morgana-virtio:\n{stderr}")) };
    for needed in ["relocation-model=static", "link-arg=-Tmorgana-virtio.ld", "[target.x86_64-unknown-none]"]
    {
        if !line.contains(needed) {
            return Err(format!("the line does not say `{needed}`: {line}"));
        }
    }
    if stderr.contains("rust-lld") || stderr.contains("R_X86_64") || stderr.contains("__kernel_end") {
        return Err(format!("the linker ran:\n{stderr}"));
    }
    Ok(())
}

fn with_the_path_free_flags_it_links_an_image() -> Result<(), String> {
    let name = "morgana-user-flags";
    let dir = user_crate(name, Some(CONFIG));
    let out = build(&dir);
    let _ = fs::remove_dir_all(&dir);
    if !out.status.success() {
        return Err(format!("the build failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    let image = root().join("target").join(TARGET).join("release-small").join(name);
    let bytes = fs::read(&image).map_err(|e| format!("{}: {e}", image.display()))?;
    // A 64-bit ELF executable, entered at the PVH entry the linker script names, linked at 1 MiB.
    if bytes.get(..5) != Some(b"\x7fELF\x02") || u16::from_le_bytes([bytes[16], bytes[17]]) != 2 {
        return Err(format!("{} is not a 64-bit ELF executable", image.display()));
    }
    let entry = u64::from_le_bytes(bytes[24..32].try_into().unwrap());
    if !(0x10_0000..0x20_0000).contains(&entry) {
        return Err(format!("entry point {entry:#x} is not in the image at 1 MiB"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut suite = Suite::new();
    suite.one_at_a_time();
    let needs: Vec<Need> = target_missing(TARGET).map(Need::Missing).into_iter().collect();
    suite.check(
        "without_the_flags_one_line_says_what_to_add",
        &needs,
        without_the_flags_one_line_says_what_to_add,
    );
    suite.check(
        "with_the_path_free_flags_it_links_an_image",
        &needs,
        with_the_path_free_flags_it_links_an_image,
    );
    suite.run()
}
