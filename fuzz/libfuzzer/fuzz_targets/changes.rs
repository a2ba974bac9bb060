#![no_main]
//! libFuzzer entry of the `changes` target (see songpei_fuzz::changes).

libfuzzer_sys::fuzz_target!(|data: &[u8]| songpei_fuzz::changes(data));
