//! libFuzzer entry point; the harness is [`morgana_fuzz::tls_server`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| morgana_fuzz::tls_server::run(data));
