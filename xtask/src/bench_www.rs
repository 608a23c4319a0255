//! `cargo xtask bench www`: figures for the HTTPS site, as ratios against a peer measured in the
//! same run.
//!
//! Now: morgana-tls against raw rustls (same provider, same in-memory pipe): full handshakes per
//! second and bulk MB/s (the `tls_bench` example of morgana-tls). To come once the host socket
//! stack lands: `wrk` against `www` and against nginx, and the bare-metal image size.

use std::path::Path;

use crate::{Outcome, cargo, exec};

/// Run the benchmarks (`quick`: one short round, to check that they run).
pub fn run(root: &Path, quick: bool) -> Outcome {
    let _ = root;
    println!("==> morgana-tls vs rustls (ring, in-memory pipe, release build)");
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--quiet", "-p", "morgana-tls", "--example", "tls_bench"]);
    if quick {
        cmd.args(["--", "--quick"]);
    }
    exec(&mut cmd)?;
    println!(
        "wrk vs nginx and the bare-metal image size: not measured yet (they need the host socket stack, issue 3)"
    );
    Ok(())
}
