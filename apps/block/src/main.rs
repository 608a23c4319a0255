//! `block` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(block::ARGS, |platform, args| {
        let dev = morgana_unix::block(args)?;
        Ok(async move { block::start(platform, dev).await.map(drop) })
    })
}
