//! `dns` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

/// Hosted: with `--net tap:IFNAME`, `morgana-tcpip` asks `--dns-server` (or the servers a
/// `--dhcp` lease names); with `--net socket` (the default) the host's resolver answers, as
/// `getaddrinfo` would (`/etc/hosts`, then the host's DNS servers; `--dns-server` is ignored).
#[cfg(unix)]
fn main() {
    morgana_unix::run(dns::ARGS, |platform, args| {
        let config = dns::Config::from_args(args)?;
        let stack = morgana_unix::stack(&platform, args)?;
        Ok(async move { dns::start(&stack, config).await.map(drop) })
    })
}

#[cfg(target_os = "none")]
morgana_virtio::entry!(main);

/// Bare metal: `morgana-tcpip` on the first virtio-net NIC asks `--dns-server`, or the servers
/// the DHCP lease names (DHCP unless `--ipv4` is given).
#[cfg(target_os = "none")]
fn main() -> ! {
    morgana_virtio::run_with_devices(dns::ARGS, |platform, mut devices, args| {
        let config = dns::Config::from_args(args)?;
        let stack = morgana_virtio::stack(&platform, &mut devices, args)?;
        Ok(async move { dns::start(&stack, config).await.map(drop) })
    })
}
