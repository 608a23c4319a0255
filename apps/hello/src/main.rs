//! `hello` on every target.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

morgana_app::main!(args: [hello::ARGS], |t| {
    Ok(hello::start(t.platform(), hello::Config::from_args(t.args())?))
});
