#![no_main]
//! libFuzzer entry of the `sync_response` target (see songpei_fuzz::sync_response).

libfuzzer_sys::fuzz_target!(|data: &[u8]| songpei_fuzz::sync_response(data));
