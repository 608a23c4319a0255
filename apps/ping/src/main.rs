//! `ping` on every target: `morgana-tcpip` on the target's NIC (a TAP device on a host, where
//! host sockets cannot answer pings for the unikernel; the first virtio-net NIC on bare metal,
//! DHCP unless `--ipv4` is given).
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

morgana_app::main!(args: [ping::ARGS], devices: [Net], |t| {
    let config = ping::Config { tcpip: t.tcpip_config()?, ..ping::Config::from_args(t.args())? };
    let (platform, net) = (t.platform(), t.net()?);
    Ok(async move {
        let answered = ping::start(platform, net, config).await?;
        log::info!("answered {answered} echo requests: done");
        Ok::<(), morgana::StackError>(())
    })
});
