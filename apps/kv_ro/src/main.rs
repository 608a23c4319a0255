//! `kv_ro` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(kv_ro::ARGS, |platform, args| {
        let dir = morgana_unix::kv_opt(args)?;
        Ok(kv_ro::start(platform, kv_ro::EMBEDDED, dir))
    })
}
