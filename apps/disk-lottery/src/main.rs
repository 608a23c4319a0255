//! `disk-lottery` on every target: the store is on the target's block device (`--block FILE`
//! on a host, the first virtio-blk disk on bare metal).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]
#![forbid(unsafe_code)]

morgana_app::main!(args: [disk_lottery::ARGS], devices: [Block], |t| {
    let config = disk_lottery::Config::from_args(t.args())?;
    let (platform, dev) = (t.platform(), t.block()?);
    Ok(async move { disk_lottery::start(platform, dev, config).await.map(drop) })
});
