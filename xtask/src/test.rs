//! `cargo xtask test`: everything CI checks, fastest first.

use std::path::Path;
use std::process::Command;

use crate::{Failure, NO_STD_CRATES, NO_STD_TARGET, Outcome, cargo, exec};

fn step(name: &str, cmd: &mut Command) -> Outcome {
    println!("==> {name}");
    exec(cmd).inspect_err(|_| eprintln!("xtask test: step '{name}' failed"))
}

/// Make sure the bare-metal target is installed, installing it with rustup if it is not.
pub fn ensure_no_std_target() -> Outcome {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    if let Ok(out) = &installed
        && String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == NO_STD_TARGET)
    {
        return Ok(());
    }
    println!("==> rustup target add {NO_STD_TARGET}");
    match Command::new("rustup").args(["target", "add", NO_STD_TARGET]).status() {
        Ok(s) if s.success() => Ok(()),
        _ => Err(Failure::new(format!(
            "the {NO_STD_TARGET} target is missing and rustup could not install it: run `rustup target add {NO_STD_TARGET}`"
        ))),
    }
}

/// Run every check; with `qemu_only` or a `filter`, only the QEMU boots (those whose names
/// contain `filter`).
pub fn run(root: &Path, qemu_only: bool, filter: Option<&str>) -> Outcome {
    ensure_no_std_target()?;
    crate::tools::ensure(crate::tools::TEST_TOOLS)?;
    if qemu_only || filter.is_some() {
        return crate::virtio::test(root, filter);
    }
    step("cargo fmt --check", cargo().args(["fmt", "--all", "--", "--check"]))?;
    step(
        "cargo clippy -D warnings",
        cargo().args(["clippy", "--quiet", "--workspace", "--all-targets", "--", "-D", "warnings"]),
    )?;
    step("cargo test", cargo().args(["test", "--workspace"]))?;
    // Our smoltcp fork is not a workspace member (it keeps upstream's layout and tests): its own
    // tests, with the congestion controllers and the segmentation offload morgana-tcpip turns on.
    step(
        "smoltcp fork: cargo test",
        cargo()
            .args([
                "test",
                "--quiet",
                "--lib",
                "--features",
                "socket-tcp-cubic,socket-tcp-reno,segmentation-offload",
                "--manifest-path",
            ])
            .arg(root.join("stacks/smoltcp/Cargo.toml"))
            .env("CARGO_TARGET_DIR", root.join("target/smoltcp-fork")),
    )?;
    crate::fuzz::test(root)?;
    let mut nostd = cargo();
    nostd.args(["build", "--quiet", "--target", NO_STD_TARGET]);
    for c in NO_STD_CRATES {
        nostd.args(["-p", c]);
    }
    step(&format!("no_std build for {NO_STD_TARGET}"), &mut nostd)?;
    crate::virtio::test(root, None)?;
    println!("xtask test: all checks passed");
    Ok(())
}
