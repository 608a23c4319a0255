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
