//! `ping` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

/// Hosted: `morgana-tcpip` on the TAP device `--net tap:IFNAME` (root or `CAP_NET_ADMIN`). Host
/// sockets cannot answer pings for the unikernel (the host kernel answers them), so with
/// `--net socket` it says in one line that it needs a TAP.
#[cfg(unix)]
fn main() {
    morgana_unix::run(ping::ARGS, |platform, args| {
        let config = ping::Config::from_args(args)?;
        let net = morgana_unix::net(args)?;
        Ok(async move {
            let answered = ping::start(platform, net, config).await?;
            log::info!("answered {answered} echo requests: done");
            Ok::<(), morgana::StackError>(())
        })
    })
}

#[cfg(target_os = "none")]
morgana_virtio::entry!(main);

/// Bare metal: `morgana-tcpip` on the first virtio-net NIC, DHCP unless `--ipv4` is given.
#[cfg(target_os = "none")]
fn main() -> ! {
    morgana_virtio::run_with_devices(ping::ARGS, |platform, mut devices, args| {
        let mut config = ping::Config::from_args(args)?;
        config.tcpip = morgana_virtio::tcpip_config(args)?;
        let net = morgana_virtio::net(&mut devices)?;
        Ok(async move {
            let answered = ping::start(platform, net, config).await?;
            log::info!("answered {answered} echo requests: done");
            Ok::<(), morgana::StackError>(())
        })
    })
}
