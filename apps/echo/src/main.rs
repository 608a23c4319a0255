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
