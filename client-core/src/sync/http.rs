//! The built-in blocking HTTP transport (ureq with rustls), for the CLI and for apps that do not
//! bring their own.

use std::time::Duration;

use super::engine::{Transport, TransportError};
use super::protocol::CONTENT_TYPE;

/// Largest response body read, compressed.
const MAX_RESPONSE_BODY: u64 = 64 << 20;

/// Sends sync requests to `{server}/v1/sync`, and enrollment and token requests beside it.
#[derive(Debug)]
pub struct HttpTransport {
    agent: ureq::Agent,
    server: String,
}

impl HttpTransport {
    /// A transport to `server` (e.g. `http://127.0.0.1:8080`) giving up on a round trip after
    /// `timeout`.
    pub fn new(server: &str, timeout: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            agent,
            server: server.trim_end_matches('/').to_owned(),
        }
    }

    fn answer(
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Vec<u8>, TransportError> {
        let mut resp = resp.map_err(|e| TransportError::Unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        let retry_after_secs = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BODY)
            .read_to_vec()
            .map_err(|e| TransportError::Unreachable(e.to_string()))?;
        if status == 200 {
            return Ok(bytes);
        }
        let (code, message) = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) => (
                v["code"].as_str().unwrap_or("unknown").to_owned(),
                v["message"].as_str().unwrap_or("").to_owned(),
            ),
            Err(_) => (
                "unknown".to_owned(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ),
        };
        Err(TransportError::Refused {
            status,
            code,
            message,
            retry_after_secs,
        })
    }
}

impl Transport for HttpTransport {
    fn round_trip(&mut self, body: &[u8], token: &str) -> Result<Vec<u8>, TransportError> {
        Self::answer(
            self.agent
                .post(format!("{}/v1/sync", self.server))
                .header("Content-Type", CONTENT_TYPE)
                .header("Authorization", format!("Bearer {token}"))
                .send(body),
        )
    }

    fn call(&mut self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        Self::answer(
            self.agent
                .post(format!("{}{path}", self.server))
                .header("Content-Type", "application/json")
                .send(body),
        )
    }

    fn call_authorized(
        &mut self,
        path: &str,
        body: &[u8],
        token: &str,
    ) -> Result<Vec<u8>, TransportError> {
        Self::answer(
            self.agent
                .post(format!("{}{path}", self.server))
                .header("Content-Type", "application/json")
                .header("Authorization", format!("Bearer {token}"))
                .send(body),
        )
    }
}
