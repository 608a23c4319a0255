//! `block` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(block::ARGS, |platform, args| {
        let dev = morgana_unix::block(args)?;
        Ok(async move { block::start(platform, dev).await.map(drop) })
    })
}

#[cfg(target_os = "none")]
morgana_virtio::entry!(main);

/// The first virtio-blk disk (`cargo xtask run block --target virtio -- --block FILE` attaches
/// FILE as one).
#[cfg(target_os = "none")]
fn main() -> ! {
    morgana_virtio::run_with_devices(block::ARGS, |platform, mut devices, _args| {
        let dev = devices.block().ok_or_else(|| {
            morgana_virtio::StartError::Device(
                "no virtio-blk disk: attach a disk image (cargo xtask run block --target virtio -- --block disk.img)"
                    .into(),
            )
        })?;
        Ok(async move { block::start(platform, dev).await.map(drop) })
    })
}
