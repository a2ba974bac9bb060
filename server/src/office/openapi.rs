//! The OpenAPI document of every route, served at `/api/openapi.json`. Its paths are not listed by
//! hand: each route is registered with `utoipa_axum::routes!` from its handler's
//! `#[utoipa::path]`, so the router that serves the requests and the document that describes them
//! come out of one value ([`crate::routes()`]). This module holds what the handlers' annotations
//! share: the document's title and security schemes, the error body, and the error answers common
//! to many routes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, Header, Object, OpenApi, Ref, RefOr, ResponseBuilder, Type,
    response::Response as ApiResponse,
};

use crate::error::ApiError;

/// The document's title, description and security schemes, before the routes add their paths.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "songpei district server",
        description = "Every route of the district sync server: the phones' sync, enrollment, \
                       tokens and cards under `/v1`, the district office's JSON API under \
                       `/api/v1`, the dashboard's files under `/office/`, and `/healthz`. Errors \
                       answer a JSON `ErrorBody` with a stable `code`; 429 and 503 carry \
                       `Retry-After`."
    ),
    tags(
        (name = "phones", description = "The coordinators' phones: enrollment, access tokens, \
                                         sync and trainee cards."),
        (name = "office", description = "The district office's JSON API, used by the \
                                         dashboard; a session cookie from `/api/v1/login`."),
        (name = "dashboard", description = "The dashboard's page, script, styles and icon."),
        (name = "meta", description = "Health and this document."),
        (name = "operations", description = "The server's metrics, for its operators."),
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&Schemes)
)]
pub(crate) struct Base;

struct Schemes;

impl utoipa::Modify for Schemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        // The phones' routes: an access token.
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "An access token of at most 15 minutes from `POST /v1/auth/token`; every request \
             also checks that the device is not revoked."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        // The office's routes: the session cookie.
        let cookie = ApiKeyValue::with_description(
            crate::office::SESSION_COOKIE,
            "Set by `POST /api/v1/login` (`HttpOnly`, `SameSite=Strict`, 8 hours); district \
             accounts only.",
        );
        components.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(cookie)));
    }
}

/// The document as served: taken from the same router as the routes, and handed to the handler of
/// `/api/openapi.json` by [`crate::app`].
#[derive(Clone)]
pub(crate) struct Document(pub(crate) Arc<OpenApi>);

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses(
        (status = 200, description = "This OpenAPI document.", content_type = "application/json"),
        Limits,
    ))]
pub(crate) async fn document(Extension(doc): Extension<Document>) -> Response {
    match doc.0.to_json() {
        Ok(j) => ([(header::CONTENT_TYPE, "application/json")], j).into_response(),
        Err(_) => ApiError::Internal.into_response(),
    }
}

fn error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

fn retry_after(description: &str) -> Header {
    let mut h = Header::new(Object::with_type(Type::Integer));
    h.description = Some(description.into());
    h
}

fn answers(list: Vec<(&str, ResponseBuilder)>) -> BTreeMap<String, RefOr<ApiResponse>> {
    list.into_iter()
        .map(|(status, r)| (status.to_owned(), r.build().into()))
        .collect()
}

/// What any route may answer, whatever it does, from the layers around every route: 408 when the
/// request outlasts the server's timeout, 429 when its address sent too many requests.
pub(crate) struct Limits;

impl utoipa::IntoResponses for Limits {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        answers(vec![
            (
                "408",
                ResponseBuilder::new().description(
                    "The request took longer than the server's request timeout; no body.",
                ),
            ),
            (
                "429",
                error("`rate_limited`: too many requests from this address.").header(
                    "Retry-After",
                    retry_after("Seconds to wait before trying again."),
                ),
            ),
        ])
    }
}

/// What a route that reads or writes the store may answer when the store fails or is not set up.
pub(crate) struct Storage;

impl utoipa::IntoResponses for Storage {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        answers(vec![
            ("500", error("`internal`: a bug on the server.")),
            (
                "503",
                error(
                    "`unavailable`: the store failed and nothing was stored; \
                     `not_initialised`: the server has no district yet.",
                )
                .header(
                    "Retry-After",
                    retry_after("Seconds to wait before trying again (30)."),
                ),
            ),
        ])
    }
}

/// The refusals of the office's routes that need a signed-in district account.
pub(crate) struct Session;

impl utoipa::IntoResponses for Session {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        answers(vec![(
            "401",
            error(
                "`unauthorized`: no valid session cookie, or its account was removed or demoted; \
                 `session_expired`: sign in again.",
            ),
        )])
    }
}

/// The refusals of the phones' routes that need an access token.
pub(crate) struct Token;

impl utoipa::IntoResponses for Token {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        answers(vec![(
            "401",
            error(
                "`missing_token`, `invalid_token`, `token_expired`: get a token from \
                 `POST /v1/auth/token`; `device_revoked`: the district withdrew this phone.",
            ),
        )])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use serde_json::Value;
    use tower::ServiceExt;

    use crate::{AppState, Config};

    /// Every route the server answers, written out by hand: a route added without its
    /// `#[utoipa::path]`, or described but not served, makes the document differ from this list.
    const ROUTES: &[(&str, &str)] = &[
        ("GET", "/"),
        ("GET", "/office"),
        ("GET", "/office/"),
        ("GET", "/office/app.js"),
        ("GET", "/office/app.css"),
        ("GET", "/office/icon.svg"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("POST", "/v1/sync"),
        ("POST", "/v1/enroll"),
        ("POST", "/v1/auth/challenge"),
        ("POST", "/v1/auth/token"),
        ("POST", "/v1/cards"),
        ("GET", "/api/openapi.json"),
        ("POST", "/api/v1/login"),
        ("POST", "/api/v1/logout"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/overview"),
        ("GET", "/api/v1/classes"),
        ("GET", "/api/v1/classes/{id}"),
        ("POST", "/api/v1/trainees/search"),
        ("POST", "/api/v1/trainees/{id}/unmask"),
        ("POST", "/api/v1/trainees/{id}/erase"),
        ("GET", "/api/v1/review"),
        ("POST", "/api/v1/review"),
        ("GET", "/api/v1/targets"),
        ("POST", "/api/v1/targets"),
        ("GET", "/api/v1/reports/monthly"),
        ("GET", "/api/v1/reports/monthly.xlsx"),
        ("GET", "/api/v1/reports/monthly.csv"),
        ("GET", "/api/v1/callbacks"),
        ("POST", "/api/v1/callbacks/{id}"),
        ("POST", "/api/v1/callbacks/{id}/phone"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/signals"),
    ];

    /// The methods probed on every path. HEAD is left out: axum answers it wherever GET is served.
    const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"];

    fn document() -> Value {
        serde_json::to_value(crate::routes().into_openapi()).expect("the document is JSON")
    }

    fn operations(doc: &Value) -> BTreeSet<(String, String)> {
        let paths = doc["paths"].as_object().expect("paths");
        paths
            .iter()
            .flat_map(|(path, item)| {
                METHODS
                    .iter()
                    .filter(|m| item.get(m.to_lowercase()).is_some())
                    .map(|m| ((*m).to_owned(), path.clone()))
            })
            .collect()
    }

    #[test]
    fn the_document_describes_exactly_the_routes() {
        let want: BTreeSet<_> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(operations(&document()), want);
    }

    /// Whether the router has a route for `method` on `path`: axum answers 405 for a method it has
    /// no handler for, and 404 with an empty body for a path it has no route for (a handler's 404
    /// carries the JSON error body).
    async fn served(app: &axum::Router, method: &str, path: &str) -> bool {
        let req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let resp = app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        !(status == StatusCode::METHOD_NOT_ALLOWED
            || (status == StatusCode::NOT_FOUND && body.is_empty()))
    }

    #[tokio::test]
    async fn the_served_router_answers_what_the_document_lists_and_nothing_more_on_its_paths() {
        let dir = tempfile::tempdir().expect("dir");
        let state = AppState::open(Config {
            data: dir.path().join("data"),
            ..Config::default()
        })
        .expect("state");
        let app = crate::app(state);
        let documented = operations(&document());
        let paths: BTreeSet<_> = documented.iter().map(|(_, p)| p.clone()).collect();
        for path in &paths {
            let uri = path.replace("{id}", "x");
            for method in METHODS {
                let listed = documented.contains(&((*method).to_owned(), path.clone()));
                assert_eq!(
                    served(&app, method, &uri).await,
                    listed,
                    "{method} {path}: served and documented differ"
                );
            }
        }
        assert!(!served(&app, "GET", "/no/such/route").await);
    }

    /// Routes come only from `routes!`: a route added to a router any other way would be served
    /// without being described, so the server's sources may not add one.
    #[test]
    fn no_route_is_added_around_the_document() {
        let forbidden = [
            concat!(".", "route("),
            concat!(".", "route_service("),
            concat!(".", "nest_service("),
            concat!(".", "fallback("),
            concat!(".", "fallback_service("),
            concat!("Router", "::new("),
        ];
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![src];
        let mut checked = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).expect("dir") {
                    files.push(entry.expect("entry").path());
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            for f in forbidden {
                assert!(!text.contains(f), "{} uses {f}", path.display());
            }
            checked += 1;
        }
        assert!(checked > 10, "the sources were not found");
    }

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_operation_says_what_it_answers() {
        let doc = document();
        let schemes = doc["components"]["securitySchemes"]
            .as_object()
            .expect("security schemes");
        for (method, path) in operations(&doc) {
            let op = &doc["paths"][&path][method.to_lowercase()];
            let at = format!("{method} {path}");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{at}: no tag"
            );
            let tags: Vec<_> = doc["tags"]
                .as_array()
                .expect("tags")
                .iter()
                .map(|t| &t["name"])
                .collect();
            for t in op["tags"].as_array().into_iter().flatten() {
                assert!(tags.contains(&t), "{at}: tag {t} is not described");
            }
            let summary = op["summary"].as_str().unwrap_or_default();
            assert!(
                !summary.is_empty() && !summary.contains('\n'),
                "{at}: summary {summary:?}"
            );
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().expect("name");
                assert_eq!(
                    p["in"] == "path",
                    path.contains(&format!("{{{name}}}")),
                    "{at}: parameter {name} is in {}",
                    p["in"]
                );
            }
            let in_path = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .count();
            assert_eq!(in_path, path.matches('{').count(), "{at}: path parameters");
            let responses = op["responses"].as_object().expect("responses");
            for (status, r) in responses {
                assert!(
                    r["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{at}: {status} has no description"
                );
            }
            assert!(
                responses
                    .keys()
                    .any(|s| s.starts_with('2') || s.starts_with('3')),
                "{at}: no success"
            );
            // Every request passes the per-address rate limit and the timeout.
            assert!(
                responses["429"]["headers"]["Retry-After"].is_object(),
                "{at}: no 429 with Retry-After"
            );
            assert!(responses.contains_key("408"), "{at}: no 408");
            if let Some(r) = responses.get("503") {
                assert!(
                    r["headers"]["Retry-After"].is_object(),
                    "{at}: 503 without Retry-After"
                );
            }
            for (status, r) in responses {
                if status.starts_with('4') && status != "408" && status != "413" {
                    assert!(r["content"].is_object(), "{at}: {status} has no body");
                }
            }
            for req in op["security"].as_array().into_iter().flatten() {
                for name in req.as_object().expect("requirement").keys() {
                    assert!(schemes.contains_key(name), "{at}: no scheme {name}");
                }
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r} is not a schema"));
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{r} is not in the document"
            );
        }
    }

    #[test]
    fn the_error_body_is_as_it_was_written() {
        use axum::response::IntoResponse;
        let body = |e: crate::ApiError| {
            let resp = e.into_response();
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let bytes = rt
                .block_on(axum::body::to_bytes(resp.into_body(), usize::MAX))
                .expect("body");
            String::from_utf8(bytes.to_vec()).expect("utf-8")
        };
        assert_eq!(
            body(crate::ApiError::NotFound("no such class".into())),
            r#"{"code":"not_found","message":"no such class"}"#
        );
        assert_eq!(
            body(crate::ApiError::Invalid {
                field: "month".into(),
                message: "must be YYYY-MM".into()
            }),
            r#"{"code":"bad_input","field":"month","message":"must be YYYY-MM"}"#
        );
        assert_eq!(
            body(crate::ApiError::BadCsv {
                message: "2 rows cannot be imported".into(),
                problems: vec![crate::accounts::CsvProblem {
                    line: 3,
                    problem: "no name".into()
                }]
            }),
            r#"{"code":"bad_csv","message":"2 rows cannot be imported","problems":[{"row":3,"problem":"no name"}]}"#
        );
    }
}
