//! `block` on every target: the disk is `--block FILE` on a host, the first virtio-blk disk on
//! bare metal (`cargo xtask run block --target virtio -- --block FILE` attaches FILE as one).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

morgana_app::main!(args: [block::ARGS], devices: [Block], |t| {
    let (platform, dev) = (t.platform(), t.block()?);
    Ok(async move { block::start(platform, dev).await.map(drop) })
});
