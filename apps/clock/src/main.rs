//! `clock` on every target.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

morgana_app::main!(args: [clock::ARGS], |t| {
    Ok(clock::start(t.platform(), clock::Config::from_args(t.args())?))
});
