//! `hello` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(hello::ARGS, |platform, args| {
        Ok(hello::start(platform, hello::Config::from_args(args)?))
    })
}

#[cfg(target_os = "none")]
morgana_virtio::entry!(main);

#[cfg(target_os = "none")]
fn main() -> ! {
    morgana_virtio::run(hello::ARGS, |platform, args| {
        Ok(hello::start(platform, hello::Config::from_args(args)?))
    })
}
