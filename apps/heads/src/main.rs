//! `heads` on every target.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

morgana_app::main!(args: [heads::ARGS], |t| Ok(heads::start(t.platform())));
