//! `echo` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(echo::ARGS, |platform, args| {
        let config = echo::Config::from_args(args)?;
        let stack = morgana_unix::stack(&platform, args)?;
        Ok(echo::start(platform, stack, config))
    })
}

#[cfg(target_os = "none")]
morgana_virtio::entry!(main);

#[cfg(target_os = "none")]
fn main() -> ! {
    morgana_virtio::run_with_devices(echo::ARGS, |platform, mut devices, args| {
        let config = echo::Config::from_args(args)?;
        let stack = morgana_virtio::stack(&platform, &mut devices, args)?;
        Ok(echo::start(platform, stack, config))
    })
}
