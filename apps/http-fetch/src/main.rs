//! `http-fetch` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

/// Hosted: host sockets and the host's resolver (`--net socket`), ring for the cryptography.
#[cfg(unix)]
fn main() {
    use std::sync::Arc;

    use morgana_unix::StartError;

    morgana_unix::run(http_fetch::ARGS, |platform, args| {
        let config = http_fetch::Config::from_args(args)?;
        let ca_pem = match args.get_opt::<String>("ca")? {
            Some(path) => {
                Some(std::fs::read(&path).map_err(|e| StartError::Device(format!("--ca {path}: {e}")))?)
            }
            None => None,
        };
        if config.url.https && ca_pem.is_none() && !config.dev_ca {
            return Err(StartError::Usage(http_fetch::FetchError::NoTrust.to_string()));
        }
        let stack = morgana_unix::stack(&platform, args)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(async move {
            http_fetch::start(platform, stack.clone(), stack, provider, ca_pem, config).await.map(drop)
        })
    })
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
morgana_virtio::entry!(main);

/// Bare metal: `morgana-tcpip` on the first NIC (its resolver asks the DHCP lease's DNS server,
/// or `--dns-server`), rustls-rustcrypto for the cryptography. There are no files to read a CA
/// from: `--dev-ca` trusts the development CA built into the image.
#[cfg(target_os = "none")]
fn main() -> ! {
    use alloc::sync::Arc;

    use morgana_virtio::StartError;

    morgana_virtio::run_with_devices(http_fetch::ARGS, |platform, mut devices, args| {
        let config = http_fetch::Config::from_args(args)?;
        if let Some(file) = args.raw("ca") {
            return Err(StartError::Usage(alloc::format!(
                "--ca {file}: bare metal has no files to read; --dev-ca trusts the built-in development CA"
            )));
        }
        if config.url.https && !config.dev_ca {
            return Err(StartError::Usage(alloc::string::ToString::to_string(
                &http_fetch::FetchError::NoTrust,
            )));
        }
        let stack = morgana_virtio::stack(&platform, &mut devices, args)?;
        let provider = Arc::new(rustls_rustcrypto::provider());
        Ok(async move {
            http_fetch::start(platform, stack.clone(), stack, provider, None, config).await.map(drop)
        })
    })
}
