//! `echo` on every target.
#![no_std]
#![cfg_attr(target_os = "none", no_main)]

morgana_app::main!(args: [echo::ARGS], devices: [TcpStack], |t| {
    let config = echo::Config::from_args(t.args())?;
    Ok(echo::start(t.platform(), t.tcp_stack()?, config))
});
