//! libFuzzer entry point; the harness is [`morgana_fuzz::tcpip`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| morgana_fuzz::tcpip::run(data));
