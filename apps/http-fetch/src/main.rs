//! `http-fetch` on each target.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(unix)]
fn main() {
    morgana_unix::run(http_fetch::ARGS, |_platform, args| {
        let config = http_fetch::Config::from_args(args)?;
        let ca = args.get_opt::<String>("ca")?;
        Ok(async move {
            let ca_pem = match ca {
                Some(path) => Some(std::fs::read(&path).map_err(|e| format!("--ca {path}: {e}"))?),
                None => None,
            };
            if config.url.https && ca_pem.is_none() {
                return Err(http_fetch::FetchError::NoTrust.to_string());
            }
            Err::<(), String>(
                "http-fetch needs the host socket stack (issue 3), which this build does not have yet".into(),
            )
        })
    })
}
