//! `uniffi-bindgen`: UniFFI's generator, kept apart so its `cli` feature stays out of songpei-ffi.
//! Run by `scripts/bindings` in library mode against the built `libsongpei_ffi`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
