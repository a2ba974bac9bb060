//! songpei-ffi: the UniFFI bindings of the songpei core for Android and iOS. The API arrives with
//! the FFI work; the crate exists so the workspace already builds the library artefacts.

pub use songpei_core::Error;
