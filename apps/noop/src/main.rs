//! `noop` on every target.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

morgana_app::main!(args: [noop::ARGS], |t| Ok(noop::start(t.platform())));
