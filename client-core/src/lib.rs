//! songpei-core: the shared core of songpei, built into the Android and iOS apps, the CLI and the
//! district server.
//!
//! - [`domain`] and [`catalog`]: the records of village training and their vocabularies.
//! - [`validate`]: checks on everything a person types, each refusal naming its field.
//! - [`doc`]: the automerge documents that hold the records, read back with their conflicts.
//! - [`rules`]: payable days, the living allowance and the subsidy caps, with policy values as data.
//! - [`store`]: the phone's store (encrypted SQLite) behind the [`store::DocStore`] seam.
//! - [`phone`]: the coordinator's operations and queries over a store.
//! - [`qr`]: QR sign-in: class codes, responses and trainee cards, signed, as text and PNG.

pub mod blind_index;
pub mod catalog;
pub mod changes;
pub mod clock;
pub mod contain;
pub mod device;
pub mod doc;
pub mod domain;
pub mod error;
pub mod ids;
pub mod phone;
pub mod qr;
pub mod query;
pub mod rules;
pub mod store;
pub mod sync;
pub mod validate;

pub use error::{Error, ErrorKind, Result};
pub use phone::Phone;
