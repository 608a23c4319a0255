//! `noop` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(noop::ARGS, |platform, _| Ok(noop::start(platform)))
}
