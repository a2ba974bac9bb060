//! The district office's web dashboard: three static files compiled into the binary and served
//! with a strict content security policy (everything from this server, no inline script). The
//! pages talk to the JSON API under `/api/v1`; they hold no data of their own.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::office::openapi::Limits;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const ICON: &str = include_str!("../../web/icon.svg");

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The dashboard's routes: `/` redirects to `/office/`. They are in the OpenAPI document too, so
/// that it lists everything the server answers.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::default()
        .routes(routes!(root))
        .routes(routes!(office))
        .routes(routes!(page))
        .routes(routes!(script))
        .routes(routes!(styles))
        .routes(routes!(icon))
}

/// The server's address in a browser leads to the dashboard.
#[utoipa::path(get, path = "/", tag = "dashboard",
    responses(
        (status = 303, description = "To the dashboard.",
            headers(("Location" = String, description = "`/office/`"))),
        Limits,
    ))]
async fn root() -> Redirect {
    Redirect::to("/office/")
}

/// The dashboard's address without its trailing slash.
#[utoipa::path(get, path = "/office", tag = "dashboard",
    responses(
        (status = 303, description = "To the dashboard.",
            headers(("Location" = String, description = "`/office/`"))),
        Limits,
    ))]
async fn office() -> Redirect {
    Redirect::to("/office/")
}

/// The dashboard's page.
#[utoipa::path(get, path = "/office/", tag = "dashboard",
    responses((status = 200, description = "The file, compiled into the server.", body = String,
        content_type = "text/html"), Limits))]
async fn page() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// The dashboard's script.
#[utoipa::path(get, path = "/office/app.js", tag = "dashboard",
    responses((status = 200, description = "The file, compiled into the server.", body = String,
        content_type = "text/javascript"), Limits))]
async fn script() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

/// The dashboard's styles.
#[utoipa::path(get, path = "/office/app.css", tag = "dashboard",
    responses((status = 200, description = "The file, compiled into the server.", body = String,
        content_type = "text/css"), Limits))]
async fn styles() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

/// The dashboard's icon.
#[utoipa::path(get, path = "/office/icon.svg", tag = "dashboard",
    responses((status = 200, description = "The file, compiled into the server.", body = String,
        content_type = "image/svg+xml"), Limits))]
async fn icon() -> Response {
    asset(ICON, "image/svg+xml")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        // No CDN, no inline script: every script and stylesheet comes from /office/.
        for line in INDEX.lines() {
            if line.contains("<script") {
                assert!(line.contains("src=\"/office/app.js\""), "{line}");
            }
            assert!(
                !line.contains("http://") && !line.contains("https://"),
                "{line}"
            );
        }
        // The one address in the script is the SVG namespace, which is a name, not a fetch.
        let js = APP_JS.replace("http://www.w3.org/2000/svg", "");
        assert!(!js.contains("https://") && !js.contains("http://"));
        assert!(!APP_CSS.contains("url(http"));
    }
}
