//! songpei-server: the district sync server. Phones merge with it over `POST /v1/sync` in one round
//! trip when little changed; it keeps every document durably on its embedded SQLite (or on
//! PostgreSQL), feeds each village's changes back to the phones of that village, projects typed rows
//! for the district's reports, and serves the district office's dashboard and API.
//!
//! The tree follows the audiences: `phones` (sync, enrollment and tokens, cards, rate limits),
//! `office` (the dashboard's API by feature, its files, the OpenAPI document), `report` (the
//! monthly report and its files), `attendance` (the checks of every record, the card keys),
//! `callbacks` (call-back sampling, outcomes and the holds a denial puts on a class),
//! `accounts` (accounts, devices, audit, erasure), `store` (documents, feed, projections, pay) and
//! `db` (one SQL interface over SQLite and PostgreSQL, and the migrations); `app` ties them into a
//! router and an accept loop, `state` is what every handler shares.
//!
//! The binary is a thin `main`: tests drive [`app`] without a socket, or [`run`] on port 0.

pub mod accounts;
pub mod admin;
mod app;
mod attendance;
mod callbacks;
mod config;
pub mod db;
mod error;
mod loopback;
pub mod metrics;
mod office;
mod phones;
pub mod ratelimit;
mod report;
mod review;
mod state;
mod store;

pub use accounts::audit;
pub use app::{HEADER_TIMEOUT, app, routes, run};
pub use attendance::{Checked, Flag};
pub use config::{Config, FileConfig, Limits};
pub use error::{ApiError, ErrorBody};
pub use loopback::Loopback;
pub use office::{SESSION_COOKIE, parse_targets};
pub use report::{Month, MonthlyReport, ReportError, write_file as write_monthly_report};
pub use state::AppState;
pub use store::{DbKey, ServerStore, StoreLocation, erasure};
