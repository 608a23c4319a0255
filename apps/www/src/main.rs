//! `www` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(unix)]
fn main() {
    use morgana::Platform;
    morgana_unix::run(www::ARGS, |platform, args| {
        let config = www::Config::from_args(args)?;
        let certs = args.get_opt::<String>("certs")?;
        Ok(async move {
            // Check what can be checked before the network: a bad --certs is reported first.
            let certs = match certs {
                Some(dir) => Some(unix::certs(&dir, platform.clock()).await?),
                None => None,
            };
            let _identity = www::identity(certs.as_ref()).await.map_err(|e| e.to_string())?;
            let _site = www::site::builtin(platform.clock()).await.map_err(|e| e.to_string())?;
            let _ = config;
            Err::<(), String>(
                "www needs the host socket stack (issue 3), which this build does not have yet".into(),
            )
        })
    })
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
morgana_virtio::entry!(main);

/// The site compiled into the image, the built-in development certificate, TLS by
/// rustls-rustcrypto (its randomness through getrandom from RDRAND), `morgana-tcpip` on the first
/// NIC. `cargo xtask run www --target virtio` forwards host port 8443 to the guest's 443.
#[cfg(target_os = "none")]
fn main() -> ! {
    use alloc::string::ToString;
    use alloc::sync::Arc;
    use morgana::Platform;
    morgana_virtio::run_with_devices(www::ARGS, |platform, mut devices, args| {
        let config = www::Config::from_args(args)?;
        if let Some(dir) = args.raw("certs") {
            return Err(morgana_virtio::StartError::Device(alloc::format!(
                "--certs {dir}: bare metal has no directories to read; drop --certs to serve the built-in development certificate"
            )));
        }
        let stack = morgana_virtio::stack(&platform, &mut devices, args)?;
        Ok(async move {
            let identity = www::identity::<morgana_mem::MemKv<morgana_virtio::VirtioClock>>(None)
                .await
                .map_err(|e| e.to_string())?;
            let site = www::site::builtin(platform.clock()).await.map_err(|e| e.to_string())?;
            let provider = Arc::new(rustls_rustcrypto::provider());
            www::start(platform, stack, site, identity, provider, config).await.map_err(|e| e.to_string())
        })
    })
}

#[cfg(unix)]
mod unix {
    use morgana::{Key, KvRw, WallClock};
    use morgana_mem::MemKv;

    /// `DIR/server.pem` and `DIR/server.key` in a store, as `www::start` reads them.
    pub async fn certs<C: WallClock>(dir: &str, clock: C) -> Result<MemKv<C>, String> {
        let kv = MemKv::new(clock);
        for name in ["server.pem", "server.key"] {
            let path = std::path::Path::new(dir).join(name);
            let data = std::fs::read(&path).map_err(|e| {
                format!(
                    "--certs {dir}: cannot read {}: {e} (expected server.pem and server.key)",
                    path.display()
                )
            })?;
            let key = Key::root().join(name).map_err(|e| e.to_string())?;
            kv.set(&key, &data).await.map_err(|e| e.to_string())?;
        }
        Ok(kv)
    }
}
