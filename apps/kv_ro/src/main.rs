//! `kv_ro` on every target: the compiled-in store, and `--kv DIR` where the target has
//! directories.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

morgana_app::main!(args: [kv_ro::ARGS], devices: [KvRo(kv_ro::DIR)], |t| {
    Ok(kv_ro::start(t.platform(), kv_ro::EMBEDDED, t.kv_ro("kv")?))
});
