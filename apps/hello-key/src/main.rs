//! `hello-key` on every target.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

morgana_app::main!(args: [hello_key::ARGS], |t| {
    Ok(hello_key::start(t.platform(), hello_key::Config::from_args(t.args())?))
});
