//! `hello-key` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(hello_key::ARGS, |platform, args| {
        Ok(hello_key::start(platform, hello_key::Config::from_args(args)?))
    })
}

#[cfg(target_os = "none")]
morgana_virtio::entry!(main);

#[cfg(target_os = "none")]
fn main() -> ! {
    morgana_virtio::run(hello_key::ARGS, |platform, args| {
        Ok(hello_key::start(platform, hello_key::Config::from_args(args)?))
    })
}
