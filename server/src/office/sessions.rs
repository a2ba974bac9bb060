//! Sessions: district accounts sign in and out; the session is a cookie holding the account and
//! an expiry under the server's MAC key, `HttpOnly` and `SameSite=Strict`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::accounts::audit::{self, Entry};
use crate::accounts::{self, Role};
use crate::db::Sql;
use crate::error::{ApiError, ErrorBody};
use crate::office::openapi::{Limits, Session as SessionRefused, Storage};

use super::{SESSION_COOKIE, SESSION_SECS, now_ms, with_conn};

/// A signed-in district account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Session {
    /// Username.
    pub username: String,
    /// Role.
    pub role: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

pub(super) fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub(super) fn unb64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

pub(super) fn session_mac(state: &AppState, payload: &str) -> Vec<u8> {
    crate::state::mac(&state.token_key, &format!("web-session.{payload}"))
}

pub(super) fn mint_session(state: &AppState, s: &Session) -> String {
    let payload = b64(&serde_json::to_vec(s).unwrap_or_default());
    let tag = b64(&session_mac(state, &payload));
    format!("{payload}.{tag}")
}

/// The session of a request's cookie, checked against the accounts (a removed or demoted account
/// loses its session at once).
pub(super) fn session(
    state: &AppState,
    conn: &dyn Sql,
    headers: &HeaderMap,
) -> Result<Session, ApiError> {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
        .ok_or(ApiError::Unauthorized("unauthorized"))?;
    let (payload, tag) = cookie
        .split_once('.')
        .ok_or(ApiError::Unauthorized("unauthorized"))?;
    let tag = unb64(tag).ok_or(ApiError::Unauthorized("unauthorized"))?;
    let want = session_mac(state, payload);
    if !constant_eq(&tag, &want) {
        return Err(ApiError::Unauthorized("unauthorized"));
    }
    let s: Session = unb64(payload)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(ApiError::Unauthorized("unauthorized"))?;
    if s.exp <= now_ms() / 1000 {
        return Err(ApiError::Unauthorized("session_expired"));
    }
    match accounts::account_by_username(conn, &s.username) {
        Ok((_, role)) if role.code() == s.role && is_district(role) => Ok(s),
        _ => Err(ApiError::Unauthorized("unauthorized")),
    }
}

pub(super) fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|_| ApiError::BadRequest("the body is not a login".into()))?;
    let (me, cookie) = with_conn(&state, move |s, conn| {
        let ok = accounts::check_password(conn, req.username.trim(), &req.password)?;
        let role = accounts::account_by_username(conn, req.username.trim())
            .ok()
            .map(|(_, r)| r);
        let Some(role) = role.filter(|_| ok) else {
            return Err(ApiError::Unauthorized("bad_credentials"));
        };
        if !is_district(role) {
            return Err(ApiError::NotAllowed(
                "only district accounts sign in to the dashboard".into(),
            ));
        }
        let session = Session {
            username: req.username.trim().to_owned(),
            role: role.code().to_owned(),
            exp: now_ms() / 1000 + SESSION_SECS,
        };
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
            mint_session(s, &session),
        ))
    })
    .await?;
    let mut resp = Json(me).into_response();
    let c = format!(
        "{SESSION_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}"
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
pub(super) async fn logout() -> Response {
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
    with_conn(&state, move |s, conn| {
        let session = session(s, conn, &headers)?;
        Ok(Json(Me {
            username: session.username,
            role: session.role,
            district: district_info(conn)?,
        }))
    })
    .await
}
