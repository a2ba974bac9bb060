//! The district office's web dashboard: three static files compiled into the binary and served
//! with a strict content security policy (everything from this server, no inline script). The
//! pages talk to the JSON API under `/api/v1`; they hold no data of their own.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");
const ICON: &str = include_str!("../web/icon.svg");

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The dashboard's routes: `/` redirects to `/office/`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/office/") }))
        .route("/office", get(|| async { Redirect::to("/office/") }))
        .route(
            "/office/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/office/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/office/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/office/icon.svg",
            get(|| async { asset(ICON, "image/svg+xml") }),
        )
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
