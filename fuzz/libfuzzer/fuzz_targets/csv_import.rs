#![no_main]
//! libFuzzer entry of the `csv_import` target (see songpei_fuzz::csv_import).

libfuzzer_sys::fuzz_target!(|data: &[u8]| songpei_fuzz::csv_import(data));
