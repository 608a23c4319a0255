//! `kv_ro` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(kv_ro::ARGS, |platform, args| {
        let dir = morgana_unix::kv_opt(args)?;
        Ok(kv_ro::start(platform, kv_ro::EMBEDDED, dir))
    })
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
morgana_virtio::entry!(main);

/// The compiled-in store only: bare metal has no directory for `--kv`.
#[cfg(target_os = "none")]
fn main() -> ! {
    morgana_virtio::run(kv_ro::ARGS, |platform, args| {
        if let Some(dir) = args.raw("kv") {
            return Err(morgana_virtio::StartError::Device(alloc::format!(
                "--kv {dir}: bare metal has no directories to read; drop --kv to check the compiled-in store"
            )));
        }
        Ok(kv_ro::start(platform, kv_ro::EMBEDDED, None::<morgana_crunch::Crunch>))
    })
}
