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
        if config.url.https && ca_pem.is_none() {
            return Err(StartError::Usage(http_fetch::FetchError::NoTrust.to_string()));
        }
        let stack = morgana_unix::stack(&platform, args)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(async move {
            http_fetch::start(platform, stack.clone(), stack, provider, ca_pem, config).await.map(drop)
        })
    })
}
