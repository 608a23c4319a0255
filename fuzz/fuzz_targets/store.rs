//! libFuzzer entry point; the harness is [`morgana_fuzz::store`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| morgana_fuzz::store::run(data));
