//! `www` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

/// Hosted: host sockets (`--net socket`), the compiled-in site or `--kv DIR`, the certificate
/// from `--certs DIR` or the development one, and ring for the cryptography.
#[cfg(unix)]
fn main() {
    use std::sync::Arc;

    use morgana_unix::{DirKv, StartError};

    morgana_unix::run(www::ARGS, |platform, args| {
        if args.flag("http-serve") && args.raw("http-port").is_none() {
            return Err(StartError::Usage(
                "--http-serve serves the site on the plain HTTP port: add --http-port PORT (e.g. 8080)"
                    .into(),
            ));
        }
        let config = www::Config::from_args(args)?;
        // A descriptor per connection, and a few for the listeners, epoll, stdio and files.
        let needed = config.max_connections as u64 + 64;
        if let Some(limit) = morgana_unix::open_files_limit()
            && limit < needed
        {
            log::warn!(
                "--max-connections {} needs about {needed} open files, but the hard limit (RLIMIT_NOFILE) is {limit}: \
                 beyond about {} connections new ones wait until one ends (raise it with ulimit -Hn or LimitNOFILE=, or lower --max-connections)",
                config.max_connections,
                limit.saturating_sub(64)
            );
        }
        let certs = match args.get_opt::<String>("certs")? {
            Some(dir) => Some(DirKv::open(&dir).map_err(|e| {
                StartError::Device(format!(
                    "--certs {dir}: {e} (give a directory with server.pem and server.key)"
                ))
            })?),
            None => None,
        };
        let htdocs = morgana_unix::kv_opt(args)?;
        let stack = morgana_unix::stack(&platform, args)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(async move {
            let identity = www::identity(certs.as_ref()).await?;
            match htdocs {
                Some(dir) => www::start(platform, stack, dir, identity, provider, config).await,
                None => www::start(platform, stack, www::site::HTDOCS, identity, provider, config).await,
            }
        })
    })
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
morgana_virtio::entry!(main);

/// Bare metal: the site compiled into the image, the built-in development certificate, TLS by
/// rustls-rustcrypto (its randomness through getrandom from RDRAND), `morgana-tcpip` on the first
/// NIC. `cargo xtask run www --target virtio` forwards host port 8443 to the guest's 443.
#[cfg(target_os = "none")]
fn main() -> ! {
    use alloc::sync::Arc;

    use morgana_virtio::StartError;

    morgana_virtio::run_with_devices(www::ARGS, |platform, mut devices, args| {
        let config = www::Config::from_args(args)?;
        if let Some(dir) = args.raw("certs") {
            return Err(StartError::Device(alloc::format!(
                "--certs {dir}: bare metal has no directories to read; drop --certs to serve the built-in development certificate"
            )));
        }
        let stack = morgana_virtio::stack(&platform, &mut devices, args)?;
        Ok(async move {
            let identity = www::identity::<morgana_crunch::Crunch>(None).await?;
            let provider = Arc::new(rustls_rustcrypto::provider());
            www::start(platform, stack, www::site::HTDOCS, identity, provider, config).await
        })
    })
}
