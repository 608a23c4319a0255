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
