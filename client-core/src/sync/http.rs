//! The built-in blocking HTTP transport (ureq with rustls), for the CLI and for apps that do not
//! bring their own.

use std::time::Duration;

use super::engine::{Transport, TransportError};
use super::protocol::CONTENT_TYPE;

/// Largest response body read, compressed.
const MAX_RESPONSE_BODY: u64 = 64 << 20;

/// Sends sync requests to `{server}/v1/sync`.
#[derive(Debug)]
pub struct HttpTransport {
    agent: ureq::Agent,
    url: String,
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
            url: format!("{}/v1/sync", server.trim_end_matches('/')),
        }
    }
}

impl Transport for HttpTransport {
    fn round_trip(&mut self, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut resp = self
            .agent
            .post(&self.url)
            .header("Content-Type", CONTENT_TYPE)
            .send(body)
            .map_err(|e| TransportError::Unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
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
        })
    }
}
