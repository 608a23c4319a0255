//! `ping` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    const ARGS: &[&[morgana::args::ArgSpec]] = &[ping::ARGS, morgana_tcpip::ARGS];
    let specs: Vec<morgana::args::ArgSpec> = ARGS.iter().flat_map(|a| a.iter().copied()).collect();
    morgana_unix::run(&specs, |_platform, args| {
        let _config = ping::Config::from_args(args)?;
        Ok(async {
            Err::<(), _>(
                "ping needs a TAP device (--net tap:IFNAME), which the unix target does not open yet",
            )
        })
    })
}
