//! The site compiled into `www`: `apps/www/htdocs/`.

use morgana::{Key, KvError, KvRw, WallClock};
use morgana_mem::MemKv;

/// Every file of the built-in site, by path.
pub const FILES: &[(&str, &[u8])] = &[
    ("/index.html", include_bytes!("../htdocs/index.html")),
    ("/about.html", include_bytes!("../htdocs/about.html")),
    ("/docs/index.html", include_bytes!("../htdocs/docs/index.html")),
    ("/style.css", include_bytes!("../htdocs/style.css")),
    ("/logo.svg", include_bytes!("../htdocs/logo.svg")),
    ("/favicon.png", include_bytes!("../htdocs/favicon.png")),
];

/// Store `files` in `kv`.
pub async fn load<K: KvRw>(kv: &K, files: &[(&str, &[u8])]) -> Result<(), KvError> {
    for (path, data) in files {
        let key = Key::parse(path).map_err(|_| KvError::NotFound(Key::root()))?;
        kv.set(&key, data).await?;
    }
    Ok(())
}

/// The built-in site in a fresh in-memory store, stamped with `clock`.
pub async fn builtin<C: WallClock>(clock: C) -> Result<MemKv<C>, KvError> {
    let kv = MemKv::new(clock);
    load(&kv, FILES).await?;
    Ok(kv)
}
