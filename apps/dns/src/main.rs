//! `dns` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(dns::ARGS, |_platform, args| {
        let _config = dns::Config::from_args(args)?;
        Ok(async {
            Err::<(), _>(
                "dns needs a network stack, which the unix target does not wire yet (--net socket|tap:IFNAME)",
            )
        })
    })
}
