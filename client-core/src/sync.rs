//! Sync with the district server: the wire protocol and the engine that turns the phone's state into
//! request bytes and applies response bytes. The engine does no I/O; transports (the built-in HTTP
//! one, the app's own through the FFI, a loopback one in tests) only move bytes.
//!
//! See `docs/protocol.md` for the protocol and `docs/adr/0002-sync-protocol.md` for why it is shaped
//! this way.

pub mod auth;
pub use crate::changes;
pub mod engine;
#[cfg(feature = "http")]
pub mod http;
pub(crate) mod pay;
pub mod protocol;
pub mod transport;
