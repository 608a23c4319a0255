//! `clock` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(clock::ARGS, |platform, args| {
        Ok(clock::start(platform, clock::Config::from_args(args)?))
    })
}

#[cfg(target_os = "none")]
morgana_virtio::entry!(main);

#[cfg(target_os = "none")]
fn main() -> ! {
    morgana_virtio::run(clock::ARGS, |platform, args| {
        Ok(clock::start(platform, clock::Config::from_args(args)?))
    })
}
