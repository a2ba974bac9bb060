//! Sessions: district accounts sign in and out. A session is a random token in a cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` when the public URL is HTTPS) and a row in the database
//! keyed by the token's hash: every replica sees it, logout and changes to the account end it, and
//! it ends after `[office] session_idle_minutes` unused or 8 hours in all.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::accounts::audit::{self, Entry};
use crate::accounts::refusals::Refusal;
use crate::accounts::{self, Role};
use crate::args;
use crate::db::Sql;
use crate::error::{ApiError, ErrorBody};
use crate::office::openapi::{Limits, Session as SessionRefused, Storage};

use super::{SESSION_COOKIE, SESSION_SECS, now_ms, with_conn, with_reader};

/// A signed-in district account.
#[derive(Clone, Debug)]
pub(super) struct Session {
    /// Username.
    pub username: String,
    /// Role.
    pub role: String,
}

/// The session token a request's cookie holds.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// What the database keeps of a session token: its SHA-256, so a copy of the database signs no
/// one in.
fn token_hash(token: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

/// Starts a session for `account`; returns the cookie's token. Sessions that ran out are removed.
fn start_session(
    conn: &dyn Sql,
    account: &str,
    now: i64,
    idle_ms: i64,
) -> Result<String, ApiError> {
    use base64::Engine;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    conn.execute(
        "DELETE FROM office_sessions WHERE created_ms < ?1 OR last_seen_ms < ?2",
        args![now - SESSION_SECS * 1000, now - idle_ms],
    )?;
    conn.execute(
        "INSERT INTO office_sessions (token_hash, account_id, created_ms, last_seen_ms)
         VALUES (?1, ?2, ?3, ?3)",
        args![token_hash(&token), account, now],
    )?;
    Ok(token)
}

/// The session of a request's cookie: kept in the database (every replica sees it; logout ends
/// it), within its absolute lifetime and its idle timeout, of an account that is still a district
/// account.
pub(super) fn session(
    state: &AppState,
    conn: &dyn Sql,
    headers: &HeaderMap,
) -> Result<Session, ApiError> {
    let token = cookie_token(headers).ok_or(ApiError::Unauthorized("unauthorized"))?;
    let hash = token_hash(&token);
    let row: Option<(i64, i64, String, String)> = conn.query_opt(
        "SELECT s.created_ms, s.last_seen_ms, a.username, a.role FROM office_sessions s
         JOIN accounts a ON a.id = s.account_id WHERE s.token_hash = ?1",
        args![&hash],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let (created, last_seen, username, role) = row.ok_or(ApiError::Unauthorized("unauthorized"))?;
    let now = now_ms();
    let idle_ms = i64::from(state.config.office.session_idle_minutes) * 60_000;
    if now >= created + SESSION_SECS * 1000 || now >= last_seen + idle_ms {
        // Ended whether or not the row goes now (a reader may find the database busy): it is
        // refused at every use from here on, and removed at the next chance.
        let _ = conn.execute(
            "DELETE FROM office_sessions WHERE token_hash = ?1",
            args![&hash],
        );
        return Err(ApiError::Unauthorized("session_expired"));
    }
    if !Role::parse(&role).is_some_and(is_district) {
        return Err(ApiError::Unauthorized("unauthorized"));
    }
    // Seen again: written at most once a minute, and best effort (a reader may find the
    // database busy with a merge; the next request writes it).
    if now - last_seen > 60_000 {
        let _ = conn.execute(
            "UPDATE office_sessions SET last_seen_ms = ?2 WHERE token_hash = ?1",
            args![&hash, now],
        );
    }
    Ok(Session { username, role })
}

pub(super) fn is_district(role: Role) -> bool {
    matches!(role, Role::DistrictAdmin | Role::DistrictViewer)
}

pub(super) fn admin_only(s: &Session) -> Result<(), ApiError> {
    if s.role == Role::DistrictAdmin.code() {
        Ok(())
    } else {
        Err(ApiError::NotAllowed(
            "only a district admin may do this".into(),
        ))
    }
}

/// Login request.
#[derive(Deserialize, ToSchema)]
pub(super) struct LoginRequest {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

/// The district.
#[derive(Serialize, ToSchema)]
pub(super) struct DistrictInfo {
    /// Six-digit code.
    pub code: String,
    /// Name.
    pub name: String,
}

/// Who is signed in.
#[derive(Serialize, ToSchema)]
pub(super) struct Me {
    /// Username.
    pub username: String,
    /// `district_admin` or `district_viewer`.
    pub role: String,
    /// The district.
    pub district: DistrictInfo,
}

pub(super) fn district_info(conn: &dyn Sql) -> Result<DistrictInfo, ApiError> {
    let d = accounts::district(conn)?.ok_or(ApiError::NotInitialised)?;
    Ok(DistrictInfo {
        code: d.code,
        name: d.name,
    })
}

/// Signs in a district account.
#[utoipa::path(post, path = "/api/v1/login", tag = "office", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in.", body = Me,
            headers(("Set-Cookie" = String, description = "The session cookie, `songpei_session`."))),
        (status = 400, body = ErrorBody, description = "`bad_request`: the body is not a login."),
        (status = 401, body = ErrorBody, description = "`bad_credentials`."),
        (status = 403, body = ErrorBody, description = "`not_allowed`: only district accounts \
            sign in to the dashboard."),
        Limits,
        Storage,
    ))]
pub(super) async fn login(
    State(state): State<AppState>,
    peer: Option<axum::Extension<crate::app::Peer>>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let peer = peer.map_or(crate::app::Peer(None), |p| p.0);
    let Json(req) = body.map_err(|_| ApiError::BadRequest("the body is not a login".into()))?;
    let username = req.username.trim().to_owned();
    let source = peer.source();
    let throttle_key = peer.throttle_key();
    // Throttled before any hashing; the hash read under the store's lock, checked outside it.
    if let Some(wait_s) = state.logins.throttled(&username, &throttle_key) {
        crate::metrics::refused("login");
        metrics::counter!("songpei_logins_total", "outcome" => "throttled").increment(1);
        state
            .refusals
            .note(&source, Refusal::BadCredentials, now_ms());
        return Err(ApiError::RateLimited(wait_s));
    }
    let hash = {
        let username = username.clone();
        with_reader(&state, move |_, conn| {
            Ok(accounts::password_hash(conn, &username)?)
        })
        .await?
    };
    if !state
        .logins
        .check(&username, &throttle_key, hash, req.password)
        .await
    {
        metrics::counter!("songpei_logins_total", "outcome" => "refused").increment(1);
        state
            .refusals
            .note(&source, Refusal::BadCredentials, now_ms());
        return Err(ApiError::Unauthorized("bad_credentials"));
    }
    metrics::counter!("songpei_logins_total", "outcome" => "ok").increment(1);
    let (me, cookie) = with_conn(&state, move |s, conn| {
        let Ok((account, role)) = accounts::account_by_username(conn, &username) else {
            return Err(ApiError::Unauthorized("bad_credentials"));
        };
        if !is_district(role) {
            return Err(ApiError::NotAllowed(
                "only district accounts sign in to the dashboard".into(),
            ));
        }
        let session = Session {
            username: username.clone(),
            role: role.code().to_owned(),
        };
        let idle_ms = i64::from(s.config.office.session_idle_minutes) * 60_000;
        let token = start_session(conn, &account, now_ms(), idle_ms)?;
        audit::append(
            conn,
            now_ms(),
            &[Entry::new(
                format!("account:{}", session.username),
                "login",
                session.username.clone(),
                serde_json::json!({}),
            )],
        )?;
        Ok((
            Me {
                username: session.username.clone(),
                role: session.role.clone(),
                district: district_info(conn)?,
            },
            token,
        ))
    })
    .await?;
    let mut resp = Json(me).into_response();
    let secure = if state.config.office.secure() {
        "; Secure"
    } else {
        ""
    };
    let c = format!(
        "{SESSION_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}{secure}"
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// Signs out.
#[utoipa::path(post, path = "/api/v1/logout", tag = "office",
    responses(
        (status = 204, description = "Signed out.",
            headers(("Set-Cookie" = String, description = "Clears the session cookie."))),
        Limits,
    ))]
pub(super) async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // The session ends on the server: the cookie, replayed, signs no one in.
    if let Some(token) = cookie_token(&headers) {
        let ended = with_conn(&state, move |s, conn| {
            let who = session(s, conn, &headers).ok();
            conn.execute(
                "DELETE FROM office_sessions WHERE token_hash = ?1",
                args![token_hash(&token)],
            )?;
            if let Some(who) = who {
                audit::append(
                    conn,
                    now_ms(),
                    &[Entry::new(
                        format!("account:{}", who.username),
                        "logout",
                        who.username.clone(),
                        serde_json::json!({}),
                    )],
                )?;
            }
            Ok(())
        })
        .await;
        if let Err(e) = ended {
            return e.into_response();
        }
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("songpei_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/v1/me", tag = "office", security(("session" = [])),
    responses((status = 200, description = "The account and its district.", body = Me),
        SessionRefused, Limits, Storage))]
pub(super) async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Me>, ApiError> {
    with_reader(&state, move |s, conn| {
        let session = session(s, conn, &headers)?;
        Ok(Json(Me {
            username: session.username,
            role: session.role,
            district: district_info(conn)?,
        }))
    })
    .await
}
