//! The admin API of one stack, as `paysaga-admin` calls it: the operator's actions that the
//! audit trail records with who did them (the bearer token's subject) and why, a replay of a
//! parked message first among them. The local stack serves it at `http://127.0.0.1:3000`; a
//! deployed stack at its `ApiUrl` output, with a token carrying the `paysaga/admin` scope.

use paysaga_services::redrive::parking::Replayed;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// The local stack's API (local-lambda's front).
pub const LOCAL_API_URL: &str = "http://127.0.0.1:3000";

#[derive(Debug, thiserror::Error)]
pub enum AdminApiError {
    #[error("cannot reach the admin API at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    /// The API answered with its error body: `code` says why (`not_found`, `already_replayed`,
    /// `settled`, `contract_violation`, `no_destination`, `forbidden`, ...).
    #[error("the admin API answered {status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the admin API answered what this paysaga-admin cannot read: {0}")]
    Answer(String),
}

/// The admin API, called with an operator's token.
pub struct AdminApi {
    http: reqwest::Client,
    base_url: String,
    token: String,
}

/// A replay to ask for: a parked message, its fixed body, where to, whether despite the
/// contracts, and why (required: the audit trail keeps it).
#[derive(Debug, Clone, Default)]
pub struct ReplayAsk {
    pub body: Option<String>,
    pub destination: Option<String>,
    pub force: bool,
    pub reason: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

impl AdminApi {
    pub fn new(base_url: &str, token: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.into(),
        }
    }

    /// Sends a parked message again (`POST /admin/parked/{parked_id}/replay`).
    pub async fn replay(
        &self,
        parked_id: &str,
        ask: &ReplayAsk,
    ) -> Result<Replayed, AdminApiError> {
        let mut body = json!({ "force": ask.force, "reason": ask.reason });
        if let Some(fixed) = &ask.body {
            body["body"] = fixed.clone().into();
        }
        if let Some(destination) = &ask.destination {
            body["destination"] = destination.clone().into();
        }
        let path = format!("/admin/parked/{}/replay", encode_segment(parked_id));
        self.post(&path, &body).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, AdminApiError> {
        let url = format!("{}{path}", self.base_url);
        let unreachable = |error: reqwest::Error| AdminApiError::Unreachable {
            url: self.base_url.clone(),
            detail: error.without_url().to_string(),
        };
        let response = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(match serde_json::from_str::<ErrorBody>(&text) {
                Ok(ErrorBody { error }) => AdminApiError::Refused {
                    status: status.as_u16(),
                    code: error.code,
                    message: error.message,
                },
                Err(_) => AdminApiError::Refused {
                    status: status.as_u16(),
                    code: "unexpected".to_owned(),
                    message: redact::shown(&text),
                },
            });
        }
        serde_json::from_str(&text).map_err(|error| AdminApiError::Answer(error.to_string()))
    }
}

/// What a path segment keeps as it is: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment, percent-encoded: a parked id is `<queue name>/<message id>`, whose `/` must
/// not split the route.
fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_id_stays_one_path_segment() {
        assert_eq!(
            encode_segment("paysaga-payments-dlq/4f1c-9a"),
            "paysaga-payments-dlq%2F4f1c-9a"
        );
        assert_eq!(encode_segment("a b?#"), "a%20b%3F%23");
    }
}
