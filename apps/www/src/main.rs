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
