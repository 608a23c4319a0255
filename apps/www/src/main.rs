//! `www` on every target: the site and the certificate are read-only stores, `--kv DIR` and
//! `--certs DIR` where the target has directories, or the site as a tar image on a block device
//! (`--block FILE`), else the compiled-in site and the built-in development certificate; TLS by
//! the target's provider.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]
#![forbid(unsafe_code)]

morgana_app::main!(args: [www::ARGS], devices: [TcpStack, KvRo(www::SITE), Archive(www::SITE_IMAGE), KvRo(www::CERTS)], |t| {
    let config = www::Config::from_args(t.args())?;
    www::check_connection_limit(&config, t.connection_limit());
    let htdocs = t.kv_ro_or_archive("kv", "block", www::site::HTDOCS)?;
    let certs = t.kv_ro("certs")?;
    let (platform, stack, provider) = (t.platform(), t.tcp_stack()?, morgana_app::tls_provider());
    let stats = www::Stats::new(t.counters());
    Ok(async move {
        let htdocs = htdocs.open().await?;
        let identity = www::identity(certs.as_ref()).await?;
        www::start_counted(platform, stack, htdocs, identity, provider, config, stats).await
    })
});
