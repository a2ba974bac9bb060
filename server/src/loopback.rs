//! The server's router driven in memory, without a socket: a phone's transport for tests and the
//! fuzz targets, which exercise every layer a request passes through on a real socket but the TCP
//! connection itself.

use axum::http::Request;
use songpei_core::sync::engine::{Transport, TransportError};
use tower::ServiceExt;

use crate::AppState;

/// A phone's connection to `AppState`'s router.
pub struct Loopback<'a>(pub &'a AppState);

impl Loopback<'_> {
    /// POSTs `body` to `path` (a sync body when the path is `/v1/sync`, JSON otherwise) and returns
    /// the status and the response body. `None`: the request could not be built or run.
    pub fn post(&self, path: &str, body: &[u8], token: Option<&str>) -> Option<(u16, Vec<u8>)> {
        self.exchange(path, body, token)
            .map(|(status, _, bytes)| (status, bytes))
    }

    /// [`Loopback::post`], with the seconds of the response's `Retry-After`, if any.
    fn exchange(
        &self,
        path: &str,
        body: &[u8],
        token: Option<&str>,
    ) -> Option<(u16, Option<u64>, Vec<u8>)> {
        let mut req = Request::post(path);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if path != "/v1/sync" {
            req = req.header("Content-Type", "application/json");
        }
        let req = req.body(axum::body::Body::from(body.to_vec())).ok()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let resp = crate::app(self.0.clone()).oneshot(req).await.ok()?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .ok()?;
            Some((status, retry_after, bytes.to_vec()))
        })
    }

    fn answer(
        &self,
        path: &str,
        body: &[u8],
        token: Option<&str>,
    ) -> Result<Vec<u8>, TransportError> {
        let (status, retry_after_secs, bytes) = self
            .exchange(path, body, token)
            .ok_or_else(|| TransportError::Unreachable("the in-memory request failed".into()))?;
        if status == 200 {
            return Ok(bytes);
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        Err(TransportError::Refused {
            status,
            code: v["code"].as_str().unwrap_or_default().to_owned(),
            message: v["message"].as_str().unwrap_or_default().to_owned(),
            retry_after_secs,
        })
    }
}

impl Transport for Loopback<'_> {
    fn round_trip(&mut self, body: &[u8], token: &str) -> Result<Vec<u8>, TransportError> {
        self.answer("/v1/sync", body, Some(token))
    }

    fn call(&mut self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.answer(path, body, None)
    }
}
