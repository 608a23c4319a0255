//! `clock` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(clock::ARGS, |platform, args| {
        Ok(clock::start(platform, clock::Config::from_args(args)?))
    })
}
