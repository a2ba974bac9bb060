#![no_main]
//! libFuzzer entry of the `sync_request` target (see songpei_fuzz::sync_request).

libfuzzer_sys::fuzz_target!(|data: &[u8]| songpei_fuzz::sync_request(data));
