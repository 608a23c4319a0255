//! `heads` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(heads::ARGS, |platform, _| Ok(heads::start(platform)))
}

#[cfg(target_os = "none")]
morgana_virtio::entry!(main);

#[cfg(target_os = "none")]
fn main() -> ! {
    morgana_virtio::run(heads::ARGS, |platform, _| Ok(heads::start(platform)))
}
