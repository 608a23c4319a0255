//! `timeout` on every target.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

morgana_app::main!(args: [timeout::ARGS], |t| {
    let (platform, config) = (t.platform(), timeout::Config::from_args(t.args())?);
    Ok(async move { timeout::start(platform, config).await.map(drop) })
});
