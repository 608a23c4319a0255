//! libFuzzer entry point; the harness is [`morgana_fuzz::key`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| morgana_fuzz::key::run(data));
