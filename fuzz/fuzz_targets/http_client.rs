//! libFuzzer entry point; the harness is [`morgana_fuzz::http_client`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| morgana_fuzz::http_client::run(data));
