//! `hello` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(hello::ARGS, |platform, args| {
        Ok(hello::start(platform, hello::Config::from_args(args)?))
    })
}
