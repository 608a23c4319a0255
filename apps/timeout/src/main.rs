//! `timeout` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(timeout::ARGS, |platform, args| {
        let config = timeout::Config::from_args(args)?;
        Ok(async move { timeout::start(platform, config).await.map(|_| ()) })
    })
}

#[cfg(target_os = "none")]
morgana_virtio::entry!(main);

#[cfg(target_os = "none")]
fn main() -> ! {
    morgana_virtio::run(timeout::ARGS, |platform, args| {
        let config = timeout::Config::from_args(args)?;
        Ok(async move { timeout::start(platform, config).await.map(|_| ()) })
    })
}
