//! `notes` on every target: the store is on the target's block device (`--block FILE` on a
//! host, the first virtio-blk disk on bare metal); the certificate is `--certs DIR` where the
//! target has directories, else the built-in development certificate.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]
#![forbid(unsafe_code)]

morgana_app::main!(args: [notes::ARGS], devices: [TcpStack, Block, KvRo(notes::CERTS)], |t| {
    let config = notes::Config::from_args(t.args())?;
    let certs = t.kv_ro("certs")?;
    let (platform, stack, dev) = (t.platform(), t.tcp_stack()?, t.block()?);
    let provider = morgana_app::tls_provider();
    Ok(async move {
        let identity = notes::identity(certs.as_ref()).await?;
        notes::start(platform, stack, dev, identity, provider, config).await
    })
});
