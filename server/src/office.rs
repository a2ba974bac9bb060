//! The district office's side: the JSON API under `/api/v1`, used by the dashboard — sign-in with a
//! district account (`sessions`), the `overview`, `classes`, `trainees` (lookup masked; unmasking
//! asks for a reason and is audited), the `review` queue, `targets`, the monthly `reports`, the
//! call-back list (`callbacks`, with the audit log), the per-coordinator `signals` — the
//! dashboard's files (`web`) and the OpenAPI document (`openapi`). Each route is registered from its
//! handler's `#[utoipa::path]`, so it is described in the OpenAPI document at `/api/openapi.json`.
//!
//! Only district accounts (`district_admin`, `district_viewer`) sign in; only an admin decides
//! reviews and imports targets. The session is a cookie holding the account and an expiry under the
//! server's MAC key, `HttpOnly` and `SameSite=Strict`.

use std::collections::BTreeMap;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::db::Sql;
use crate::error::ApiError;

mod callbacks;
mod classes;
pub(crate) mod openapi;
mod overview;
mod reports;
mod review;
mod sessions;
mod signals;
mod targets;
mod trainees;
pub(crate) mod web;

use overview::parse_day;
use sessions::{admin_only, district_info, session};
pub use targets::parse_targets;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "songpei_session";
/// How long a session lasts, in seconds.
const SESSION_SECS: i64 = 8 * 3600;

/// The routes of the API and their OpenAPI description. One `routes!` per path: handlers grouped in
/// one `routes!` are served on every path among them, so only the methods of one path share one.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(openapi::document))
        .routes(routes!(sessions::login))
        .routes(routes!(sessions::logout))
        .routes(routes!(sessions::me))
        .routes(routes!(overview::overview))
        .routes(routes!(classes::classes))
        .routes(routes!(classes::class_page))
        .routes(routes!(trainees::trainees))
        .routes(routes!(trainees::unmask))
        .routes(routes!(trainees::erase))
        .routes(routes!(review::review_queue, review::review_decide))
        .routes(routes!(targets::targets, targets::import_targets))
        .routes(routes!(reports::report_json))
        .routes(routes!(reports::report_xlsx))
        .routes(routes!(reports::report_csv))
        .routes(routes!(callbacks::call_list))
        .routes(routes!(callbacks::record_outcome))
        .routes(routes!(callbacks::disclose_phone))
        .routes(routes!(callbacks::audit_log))
        .routes(routes!(signals::signals))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs `f` on the blocking pool with the store's connection.
async fn with_conn<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&AppState, &dyn Sql) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let store = s.lock_store()?;
        f(&s, store.conn())
    })
    .await
    .map_err(|_| ApiError::Internal)?
}

/// Runs `f` with a connection that reads without waiting for a merge (a reader of the SQLite
/// database; on PostgreSQL, the store's connection), on the blocking pool. `f` may write single
/// statements only (a session seen again); anything else writes through [`with_conn`].
async fn with_reader<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&AppState, &dyn Sql) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let s = state.clone();
    tokio::task::spawn_blocking(move || match s.readers.clone() {
        Some(readers) => readers.with(|conn| f(&s, conn))?,
        None => {
            let store = s.lock_store()?;
            f(&s, store.conn())
        }
    })
    .await
    .map_err(|_| ApiError::Internal)?
}

/// Villages and townships by code, with their names.
pub(super) struct Places {
    villages: BTreeMap<String, (String, String)>,
    townships: BTreeMap<String, String>,
}

impl Places {
    pub(super) fn load(conn: &dyn Sql) -> Result<Self, ApiError> {
        let villages = conn
            .query_map("SELECT code, name, township FROM places", &[], |r| {
                Ok((r.get(0)?, (r.get(1)?, r.get(2)?)))
            })?
            .into_iter()
            .collect();
        let townships = conn
            .query_map("SELECT code, name FROM townships", &[], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .into_iter()
            .collect();
        Ok(Self {
            villages,
            townships,
        })
    }

    pub(super) fn village_name(&self, code: &str) -> String {
        self.villages
            .get(code)
            .map_or_else(|| code.to_owned(), |v| v.0.clone())
    }

    pub(super) fn township_of(&self, village: &str) -> String {
        self.villages
            .get(village)
            .map_or_else(|| village.chars().take(9).collect(), |v| v.1.clone())
    }

    pub(super) fn township_name(&self, village: &str) -> String {
        let t = self.township_of(village);
        self.townships.get(&t).cloned().unwrap_or(t)
    }
}
