//! The GraphQL door (`functions/graphql`) as the integration tests reach it: `POST /graphql`
//! with a JSON body and `GET /graphql?query=…`, through the local HTTP front, with a bearer
//! token or none; and its answers as GraphQL over HTTP has them: `data`, and `errors` that say
//! what the client can do (`extensions.code`) and why (`extensions.reason`).

use anyhow::{Context, bail};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::Stack;

/// `POST /graphql` with `query` and its `variables` (`Value::Null`: none), sending `token` as
/// the bearer token (none: no Authorization header).
pub async fn post(
    stack: &Stack,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> anyhow::Result<Answer> {
    let mut body = json!({ "query": query });
    if !variables.is_null() {
        body["variables"] = variables;
    }
    let mut request = stack
        .http
        .post(format!("{}/graphql", stack.api_url))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Answer::read(request, "POST /graphql").await
}

/// `GET /graphql?query=…`, with `operationName` when one is given, sending `token` as the
/// bearer token (none: no Authorization header).
pub async fn get(
    stack: &Stack,
    token: Option<&str>,
    query: &str,
    operation_name: Option<&str>,
) -> anyhow::Result<Answer> {
    let mut parameters = vec![("query", query)];
    if let Some(name) = operation_name {
        parameters.push(("operationName", name));
    }
    let mut request = stack
        .http
        .get(format!("{}/graphql", stack.api_url))
        .query(&parameters);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Answer::read(request, "GET /graphql").await
}

/// What `/graphql` answered: its HTTP status, headers and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    async fn read(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Self> {
        let response = request.send().await.context(what.to_owned())?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("{what} answered {text}"))?
        };
        Ok(Self {
            status,
            headers,
            body,
        })
    }

    /// `data`: null when the request failed as a whole, or a non-null field failed.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// Every error the answer holds.
    pub fn errors(&self) -> Vec<GraphqlError> {
        self.body["errors"]
            .as_array()
            .map(|errors| errors.iter().map(GraphqlError::from).collect())
            .unwrap_or_default()
    }

    /// `data`, from a 200 without any error; an error saying what came instead otherwise.
    pub fn data_without_errors(&self) -> anyhow::Result<&Value> {
        if self.status != 200 || self.body.get("errors").is_some() || self.data().is_null() {
            bail!("/graphql answered {}: {}", self.status, self.body);
        }
        Ok(self.data())
    }

    /// The answer's one error; an error when it has none or several.
    pub fn only_error(&self) -> anyhow::Result<GraphqlError> {
        match self.errors().as_slice() {
            [error] => Ok(error.clone()),
            _ => bail!(
                "expected one error, /graphql answered {}: {}",
                self.status,
                self.body
            ),
        }
    }
}

/// One of an answer's `errors`, as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphqlError {
    /// `extensions.code`: `FORBIDDEN`, `NOT_FOUND`, `BAD_USER_INPUT`, `CONFLICT`, …
    pub code: String,
    /// `extensions.reason`: `forbidden`, `idempotency_key_reused`, `query_too_deep`, …
    pub reason: String,
    /// The field it is about, as its `path` names it (empty for a request refused whole).
    pub path: Vec<Value>,
    pub message: String,
}

impl From<&Value> for GraphqlError {
    fn from(error: &Value) -> Self {
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        Self {
            code: text(&error["extensions"]["code"]),
            reason: text(&error["extensions"]["reason"]),
            path: error["path"].as_array().cloned().unwrap_or_default(),
            message: text(&error["message"]),
        }
    }
}
