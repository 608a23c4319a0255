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
