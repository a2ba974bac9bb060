#![no_main]
//! libFuzzer entry of the `document` target (see songpei_fuzz::document).

libfuzzer_sys::fuzz_target!(|data: &[u8]| songpei_fuzz::document(data));
