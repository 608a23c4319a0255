//! `dns` on every target: the target's stack resolves. On a host with `--net socket` (the
//! default) that is the host's resolver, as `getaddrinfo` (`--dns-server` is ignored); on
//! `morgana-tcpip` (a TAP, bare metal) it asks `--dns-server` or the DHCP lease's servers.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

morgana_app::main!(args: [dns::ARGS], devices: [TcpStack], |t| {
    let (config, stack) = (dns::Config::from_args(t.args())?, t.tcp_stack()?);
    Ok(async move { dns::start(&stack, config).await.map(drop) })
});
