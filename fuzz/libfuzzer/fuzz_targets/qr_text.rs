#![no_main]
//! libFuzzer entry of the `qr_text` target (see songpei_fuzz::qr_text).

libfuzzer_sys::fuzz_target!(|data: &[u8]| songpei_fuzz::qr_text(data));
