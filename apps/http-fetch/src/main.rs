//! `http-fetch` on every target: the target's stack and resolver, its TLS provider, and the CA
//! file `--ca FILE` where the target has files (else `--dev-ca`: the development CA built in).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]
#![forbid(unsafe_code)]

morgana_app::main!(args: [http_fetch::ARGS], devices: [TcpStack, File(http_fetch::CA)], |t| {
    let config = http_fetch::Config::from_args(t.args())?;
    let ca_pem = t.file("ca")?;
    config.check_trust(ca_pem.is_some())?;
    let (platform, stack, provider) = (t.platform(), t.tcp_stack()?, morgana_app::tls_provider());
    Ok(async move {
        http_fetch::start(platform, stack.clone(), stack, provider, ca_pem, config).await.map(drop)
    })
});
