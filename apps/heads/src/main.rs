//! `heads` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(heads::ARGS, |platform, _| Ok(heads::start(platform)))
}
