//! songpei-server: the district sync server. Phones merge with it over `POST /v1/sync` in one round
//! trip when little changed; it keeps every document durably on its embedded SQLite, feeds each
//! village's changes back to the phones of that village, and projects typed rows for the district's
//! reports.
//!
//! The binary is a thin `main`: tests drive [`app`] without a socket, or [`run`] on port 0.

pub mod accounts;
pub mod admin;
mod app;
pub mod attendance;

pub mod config;
pub mod db;

pub mod error;
pub mod loopback;
pub mod office;
mod phones;
pub mod report;
pub mod review;

mod state;
pub mod store;

pub use accounts::{audit, erasure};
pub use app::{HEADER_TIMEOUT, app, routes, run};
pub use config::{Config, Limits};
pub use error::ApiError;
pub use phones::ratelimit;
pub use state::AppState;
pub use store::ServerStore;
