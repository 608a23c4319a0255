//! libFuzzer entry point; the harness is [`morgana_fuzz::args`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| morgana_fuzz::args::run(data));
