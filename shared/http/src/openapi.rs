//! The HTTP API's OpenAPI 3.1 document (`docs/openapi.json`), assembled from what each function
//! says it serves ([`Operation`]s: `api::openapi::operations()`, `admin_api::openapi::operations()`)
//! and the JSON Schemas schemars generates from the Rust types the handlers read and answer.
//! OpenAPI 3.1 takes JSON Schema 2020-12 as it is, so the schemas are schemars' own; request
//! bodies and parameters are described as they are deserialized, answers as they are
//! serialized.
//!
//! Only with the `openapi` feature (the tests that write and check the document turn it on):
//! the deployed functions carry none of this.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::error::{ErrorBody, GatewayError};
use crate::{ADMIN_SCOPE, ApiError};

/// Why the document could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    /// Two operations under one method and path.
    #[error("{method} {path} is described twice")]
    DuplicateOperation { method: Method, path: String },
    /// A path parameter the path does not hold, or one the path holds and no parameter names.
    #[error("{method} {path}: path parameters {documented:?} do not match the path")]
    PathParameters {
        method: Method,
        path: String,
        documented: Vec<String>,
    },
    /// One schema name for two different schemas (a request's and an answer's, say).
    #[error("two different schemas are named {0}: rename one (#[schemars(rename = ...)])")]
    SchemaNameTaken(String),
    #[error("the document cannot be written as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// How a schema is made: from a Rust type ([`schema_of`]), or written beside the code that
/// parses the value ([`literal`]).
type SchemaSource = Box<dyn Fn(&mut SchemaGenerator) -> Schema>;

/// The schema of `T` (a `$ref` to it among the components when it is named).
pub fn schema_of<T: JsonSchema>() -> SchemaSource {
    Box::new(|generator: &mut SchemaGenerator| generator.subschema_for::<T>())
}

/// A schema written out, for a value a handler parses by hand (a query parameter).
pub fn literal(schema: Schema) -> SchemaSource {
    Box::new(move |_: &mut SchemaGenerator| schema.clone())
}

/// Where a parameter is.
#[derive(Clone, Copy)]
enum Location {
    Path,
    Query,
    Header,
}

impl Location {
    fn as_str(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Query => "query",
            Self::Header => "header",
        }
    }
}

struct Parameter {
    name: &'static str,
    location: Location,
    required: bool,
    description: &'static str,
    schema: SchemaSource,
    example: Option<Value>,
}

/// A successful answer: its status, what it means, its body and headers.
struct Answer {
    status: StatusCode,
    description: &'static str,
    body: SchemaSource,
    /// `(name, description)` of headers it always carries (strings).
    headers: Vec<(&'static str, &'static str)>,
}

/// One error a route answers: the status and code come from the [`ApiError`] itself.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    when: &'static str,
}

/// One route of the HTTP API, as its function serves it: what it reads, answers and refuses.
pub struct Operation {
    method: Method,
    path: &'static str,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: Option<&'static str>,
    admin: bool,
    parameters: Vec<Parameter>,
    body: Option<(&'static str, SchemaSource)>,
    body_example: Option<Value>,
    answers: Vec<Answer>,
    refusals: Vec<Refusal>,
}

impl Operation {
    fn new(method: Method, path: &'static str, id: &'static str, summary: &'static str) -> Self {
        Self {
            method,
            path,
            id,
            tag: "",
            summary,
            description: None,
            admin: false,
            parameters: Vec::new(),
            body: None,
            body_example: None,
            answers: Vec::new(),
            refusals: Vec::new(),
        }
    }

    /// `GET path`, named `id` (the operationId).
    pub fn get(path: &'static str, id: &'static str, summary: &'static str) -> Self {
        Self::new(Method::GET, path, id, summary)
    }

    /// `POST path`, named `id` (the operationId).
    pub fn post(path: &'static str, id: &'static str, summary: &'static str) -> Self {
        Self::new(Method::POST, path, id, summary)
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path template, as the router and the template name it: `/wallets/{wallet_id}`.
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// The group it is listed under.
    pub fn tag(mut self, tag: &'static str) -> Self {
        self.tag = tag;
        self
    }

    pub fn description(mut self, description: &'static str) -> Self {
        self.description = Some(description);
        self
    }

    /// Only for callers whose token holds the [`ADMIN_SCOPE`]: the gateway refuses others with
    /// its own 403, and the function refuses them again.
    pub fn admin(mut self) -> Self {
        self.admin = true;
        self.refuses(
            ApiError::Forbidden(String::new()),
            "the token lacks the paysaga/admin scope",
        )
    }

    /// A `{name}` segment of the path, read as `T` (a malformed one is a 400).
    pub fn path_parameter<T: JsonSchema>(
        mut self,
        name: &'static str,
        description: &'static str,
    ) -> Self {
        self.parameters.push(Parameter {
            name,
            location: Location::Path,
            required: true,
            description,
            schema: schema_of::<T>(),
            example: None,
        });
        self.refuses(
            ApiError::InvalidRequest(String::new()),
            "a path parameter is malformed",
        )
    }

    /// A query parameter (a malformed one is a 400).
    pub fn query_parameter(
        mut self,
        name: &'static str,
        required: bool,
        description: &'static str,
        schema: SchemaSource,
    ) -> Self {
        self.parameters.push(Parameter {
            name,
            location: Location::Query,
            required,
            description,
            schema,
            example: None,
        });
        self.refuses(
            ApiError::InvalidRequest(String::new()),
            "a query parameter is missing or malformed",
        )
    }

    /// The `Idempotency-Key` header, required: the request moves money, and only a retry
    /// under the same key is safe.
    pub fn idempotency_key(mut self, example: &'static str, description: &'static str) -> Self {
        self.parameters.push(Parameter {
            name: "Idempotency-Key",
            location: Location::Header,
            required: true,
            description,
            // What `IdempotencyKey::parse` accepts (it also refuses a key holding a secret or
            // personal data, which no pattern can say).
            schema: literal(json_schema!({
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "pattern": "^[!-~]+$",
            })),
            example: Some(json!(example)),
        });
        self.refuses(
            ApiError::InvalidRequest(String::new()),
            "the Idempotency-Key header is missing or malformed",
        )
    }

    /// The JSON body, read as `T` (bad JSON, a wrong type, an unknown field: a 400; a body
    /// over the limit: a 413).
    pub fn body<T: JsonSchema>(mut self, description: &'static str) -> Self {
        self.body = Some((description, schema_of::<T>()));
        self.refuses(
            ApiError::InvalidRequest(String::new()),
            "the body is not the JSON this route takes",
        )
        .refuses(ApiError::PayloadTooLarge, "the body is too large")
    }

    /// A body that the route takes and carries out (schemathesis starts from it, and a test
    /// holds it to the body's schema).
    pub fn body_example(mut self, example: Value) -> Self {
        self.body_example = Some(example);
        self
    }

    /// An example of the parameter `name`, a value the route finds (a wallet the body
    /// examples open, say).
    pub fn parameter_example(mut self, name: &str, example: Value) -> Self {
        if let Some(parameter) = self.parameters.iter_mut().find(|p| p.name == name) {
            parameter.example = Some(example);
        }
        self
    }

    /// A successful answer with the JSON body `T`.
    pub fn answers<T: JsonSchema>(mut self, status: StatusCode, description: &'static str) -> Self {
        self.answers.push(Answer {
            status,
            description,
            body: schema_of::<T>(),
            headers: Vec::new(),
        });
        self
    }

    /// A header the last answer always carries.
    pub fn with_header(mut self, name: &'static str, description: &'static str) -> Self {
        if let Some(answer) = self.answers.last_mut() {
            answer.headers.push((name, description));
        }
        self
    }

    /// An error the route answers with, and when: its status and code are the error's own.
    pub fn refuses(mut self, error: ApiError, when: &'static str) -> Self {
        let (status, code) = error.status_and_code();
        self.refusals.push(Refusal { status, code, when });
        self
    }

    /// The operation object, its schemas generated into `requests` (parameters, bodies:
    /// deserialized) and `answers` (serialized).
    fn to_json(
        &self,
        requests: &mut SchemaGenerator,
        answers: &mut SchemaGenerator,
    ) -> Result<Value, OpenApiError> {
        self.check_path_parameters()?;
        let mut operation = Map::new();
        operation.insert("operationId".into(), json!(self.id));
        operation.insert("summary".into(), json!(self.summary));
        if let Some(description) = self.description {
            operation.insert("description".into(), json!(description));
        }
        if !self.tag.is_empty() {
            operation.insert("tags".into(), json!([self.tag]));
        }
        if self.admin {
            operation.insert("security".into(), json!([{ "bearer": [ADMIN_SCOPE] }]));
        }
        if !self.parameters.is_empty() {
            let parameters: Vec<Value> = self
                .parameters
                .iter()
                .map(|parameter| {
                    let mut object = json!({
                        "name": parameter.name,
                        "in": parameter.location.as_str(),
                        "required": parameter.required,
                        "description": parameter.description,
                        "schema": (parameter.schema)(requests),
                    });
                    if let Some(example) = &parameter.example {
                        object["example"] = example.clone();
                    }
                    object
                })
                .collect();
            operation.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some((description, schema)) = &self.body {
            let mut media = json!({ "schema": schema(requests) });
            if let Some(example) = &self.body_example {
                media["example"] = example.clone();
            }
            operation.insert(
                "requestBody".into(),
                json!({
                    "description": description,
                    "required": true,
                    "content": { "application/json": media },
                }),
            );
        }
        operation.insert("responses".into(), self.responses(answers));
        Ok(Value::Object(operation))
    }

    /// Every `{name}` of the path is a path parameter, and every path parameter is in the path.
    fn check_path_parameters(&self) -> Result<(), OpenApiError> {
        let mut in_path: Vec<&str> = self
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let mut documented: Vec<&str> = self
            .parameters
            .iter()
            .filter(|parameter| matches!(parameter.location, Location::Path))
            .map(|parameter| parameter.name)
            .collect();
        in_path.sort_unstable();
        documented.sort_unstable();
        if in_path == documented {
            Ok(())
        } else {
            Err(OpenApiError::PathParameters {
                method: self.method.clone(),
                path: self.path.to_owned(),
                documented: documented.into_iter().map(str::to_owned).collect(),
            })
        }
    }

    /// The answers and every refusal, by status. Every route may also answer 401 (no valid
    /// token), 500 and 503 (a dependency failed: retry, with the same key).
    fn responses(&self, answers: &mut SchemaGenerator) -> Value {
        let mut responses = Map::new();
        for answer in &self.answers {
            let mut response = json!({
                "description": answer.description,
                "content": { "application/json": { "schema": (answer.body)(answers) } },
            });
            if !answer.headers.is_empty() {
                let headers: Map<String, Value> = answer
                    .headers
                    .iter()
                    .map(|(name, description)| {
                        let header = json!({
                            "description": description,
                            "required": true,
                            "schema": { "type": "string" },
                        });
                        ((*name).to_owned(), header)
                    })
                    .collect();
                response["headers"] = Value::Object(headers);
            }
            responses.insert(answer.status.as_u16().to_string(), response);
        }
        let mut by_status: BTreeMap<u16, Vec<&Refusal>> = BTreeMap::new();
        for refusal in &self.refusals {
            by_status
                .entry(refusal.status.as_u16())
                .or_default()
                .push(refusal);
        }
        // What every route may answer: described once among the components, unless the route
        // has refusals of its own under that status.
        let shared = every_route();
        for (name, refusal) in &shared {
            match by_status.get_mut(&refusal.status.as_u16()) {
                Some(own) => own.push(refusal),
                None => {
                    let reference = json!({ "$ref": format!("#/components/responses/{name}") });
                    responses.insert(refusal.status.as_str().to_owned(), reference);
                }
            }
        }
        for (status, refusals) in by_status {
            responses.insert(
                status.to_string(),
                error_response(status, &refusals, self.admin, answers),
            );
        }
        Value::Object(responses)
    }
}

/// What every route may answer besides its own refusals, by the name of its response among the
/// components: 401 (no valid token), 500, and 503 (a dependency failed: retry, with the same
/// key).
fn every_route() -> [(&'static str, Refusal); 3] {
    [
        (
            "Unauthorized",
            Refusal {
                status: StatusCode::UNAUTHORIZED,
                code: ApiError::Unauthenticated("").status_and_code().1,
                when: "No valid bearer token (the gateway answers `{\"message\": \"Unauthorized\"}` \
                       itself), or a token whose claims name no usable subject",
            },
        ),
        (
            "InternalError",
            Refusal {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: ApiError::Internal.status_and_code().1,
                when: "Something that should not happen; it is logged",
            },
        ),
        (
            "Unavailable",
            Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: ApiError::Unavailable.status_and_code().1,
                when: "A dependency is unavailable: send the same request again (with the same \
                       Idempotency-Key), it has the effect of one",
            },
        ),
    ]
}

/// The response of one error status: the function's `{"error": ...}` with the codes it
/// may carry, or, where the gateway (or its local stand-in) answers that status itself,
/// the gateway's `{"message": ...}`.
fn error_response(
    status: u16,
    refusals: &[&Refusal],
    admin: bool,
    answers: &mut SchemaGenerator,
) -> Value {
    let mut codes: Vec<&str> = refusals.iter().map(|refusal| refusal.code).collect();
    codes.sort_unstable();
    codes.dedup();
    let mut whens: Vec<&str> = Vec::new();
    for refusal in refusals {
        if !whens.contains(&refusal.when) {
            whens.push(refusal.when);
        }
    }
    // One sentence: its clauses joined, its first letter a capital.
    let joined = whens.join("; ");
    let mut letters = joined.chars();
    let description = letters
        .next()
        .map(|first| first.to_uppercase().chain(letters).collect::<String>())
        .unwrap_or_default();
    let function = json!({
        "allOf": [
            answers.subschema_for::<ErrorBody>(),
            { "properties": { "error": { "properties": { "code": { "enum": codes } } } } },
        ],
    });
    // The gateway's own answers: an invalid token, a missing scope on the operators'
    // routes, a body over its limit, a failed or timed-out integration.
    let gateway_answers = match status {
        401 | 413 | 500 | 503 => true,
        403 => admin,
        _ => false,
    };
    let schema = if gateway_answers {
        json!({ "anyOf": [function, answers.subschema_for::<GatewayError>()] })
    } else {
        function
    };
    let mut response = json!({
        "description": description,
        "content": { "application/json": { "schema": schema } },
    });
    if status == StatusCode::SERVICE_UNAVAILABLE.as_u16() {
        response["headers"] = json!({
            "Retry-After": {
                "description": "Seconds to wait before the retry (the function's answer)",
                "schema": { "type": "string" },
            },
        });
    }
    response
}

/// The document's top level, in the order a reader expects.
#[derive(Serialize)]
struct OpenApi {
    openapi: &'static str,
    #[serde(rename = "jsonSchemaDialect")]
    json_schema_dialect: &'static str,
    info: Value,
    servers: Value,
    security: Value,
    tags: Value,
    paths: Map<String, Value>,
    components: Value,
}

/// What `info.description` says: what the document covers, and what it does not.
const DESCRIPTION: &str = "\
The REST routes of paysaga's HTTP API (an API Gateway HTTP API): wallets, top-ups, payouts, \
transfers and their lists, served by the `api` function, and the operators' routes under \
`/admin`, served by `admin-api` with the `paysaga/admin` scope. Every route needs a bearer \
token (a JWT the gateway's authorizer checks); a caller reads and moves only its own wallets. \
Amounts are integer minor units of an ISO 4217 currency. Errors are `{\"error\": {\"code\", \
\"message\"}}`; what the gateway answers itself (an invalid token's 401, a missing scope's \
403) is `{\"message\": \"...\"}`.\n\n\
The API's other doors have contracts of their own and are not in this document: GraphQL \
(`/graphql`, its SDL) and Connect/gRPC-Web (`/paysaga.wallet.v1.WalletService/*`, its \
.proto). Generated from the Rust types (docs/api.md says how, and how it is checked).";

/// The whole document, as the text of `docs/openapi.json`: every operation of `operations`,
/// with the schemas of their parameters, bodies and answers among the components.
pub fn document(operations: &[Operation]) -> Result<String, OpenApiError> {
    let settings = |contract: fn(SchemaSettings) -> SchemaSettings| {
        contract(SchemaSettings::draft2020_12()).with(|settings| {
            settings.definitions_path = "#/components/schemas".into();
            settings.meta_schema = None;
        })
    };
    let mut requests = settings(SchemaSettings::for_deserialize).into_generator();
    let mut answers = settings(SchemaSettings::for_serialize).into_generator();
    let mut paths: Map<String, Value> = Map::new();
    let mut tags: Vec<&str> = Vec::new();
    for operation in operations {
        let item = paths
            .entry(operation.path)
            .or_insert_with(|| Value::Object(Map::new()));
        let method = operation.method.as_str().to_ascii_lowercase();
        if item.get(&method).is_some() {
            return Err(OpenApiError::DuplicateOperation {
                method: operation.method.clone(),
                path: operation.path.to_owned(),
            });
        }
        item[method] = operation.to_json(&mut requests, &mut answers)?;
        if !operation.tag.is_empty() && !tags.contains(&operation.tag) {
            tags.push(operation.tag);
        }
    }
    let shared_responses: Map<String, Value> = every_route()
        .iter()
        .map(|(name, refusal)| {
            let response = error_response(refusal.status.as_u16(), &[refusal], false, &mut answers);
            ((*name).to_owned(), response)
        })
        .collect();
    let mut schemas = requests.take_definitions(true);
    for (name, schema) in answers.take_definitions(true) {
        match schemas.get(&name) {
            Some(known) if *known != schema => return Err(OpenApiError::SchemaNameTaken(name)),
            _ => {
                schemas.insert(name, schema);
            }
        }
    }
    let document = OpenApi {
        openapi: "3.1.0",
        json_schema_dialect: "https://json-schema.org/draft/2020-12/schema",
        info: json!({
            "title": "paysaga HTTP API (REST)",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        }),
        servers: json!([
            {
                "url": "http://127.0.0.1:3000",
                "description": "The local stack (`make run`); tokens from `make token SUB=<name>`",
            },
            {
                "url": "https://{api_id}.execute-api.{region}.amazonaws.com",
                "description": "A deployed stage's HTTP API (its default endpoint)",
                "variables": {
                    "api_id": { "default": "api-id", "description": "The HttpApi's id" },
                    "region": { "default": "us-east-1" },
                },
            },
        ]),
        security: json!([{ "bearer": [] }]),
        tags: tags.iter().map(|tag| json!({ "name": tag })).collect(),
        paths,
        components: json!({
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT of the identity provider the API trusts (the template's \
                                    JwtIssuer and JwtAudience; locally the development key). \
                                    Its `sub` owns wallets; the `paysaga/admin` scope (in \
                                    `scope`) opens the operators' routes.",
                },
            },
            "responses": shared_responses,
            "schemas": schemas,
        }),
    };
    let mut text = serde_json::to_string_pretty(&document)?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(JsonSchema)]
    #[allow(dead_code)] // only its schema is used
    struct Thing {
        name: String,
    }

    fn thing_route() -> Operation {
        Operation::get("/things/{thing_id}", "readThing", "reads a thing")
            .path_parameter::<String>("thing_id", "the thing")
            .answers::<Thing>(StatusCode::OK, "the thing")
            .refuses(ApiError::NotFound(String::new()), "no such thing")
    }

    fn parsed(operations: &[Operation]) -> Value {
        let text = document(operations).expect("a document");
        serde_json::from_str(&text).expect("JSON")
    }

    #[test]
    fn an_operation_documents_its_answers_and_every_refusal_with_its_code() {
        let document = parsed(&[thing_route()]);
        let operation = &document["paths"]["/things/{thing_id}"]["get"];
        assert_eq!(
            operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Thing"
        );
        let not_found = &operation["responses"]["404"]["content"]["application/json"]["schema"];
        assert_eq!(
            not_found["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"],
            json!(["not_found"])
        );
        for status in ["400", "401", "404", "500", "503"] {
            assert!(
                operation["responses"].get(status).is_some(),
                "{status} missing"
            );
        }
        assert!(document["components"]["schemas"]["ErrorBody"].is_object());
        assert_eq!(document["openapi"], "3.1.0");
    }

    #[test]
    fn path_parameters_must_match_the_path() {
        let missing = Operation::get("/things/{thing_id}", "readThing", "reads a thing");
        assert!(matches!(
            document(&[missing]),
            Err(OpenApiError::PathParameters { .. })
        ));
    }

    #[test]
    fn an_operation_described_twice_is_refused() {
        assert!(matches!(
            document(&[thing_route(), thing_route()]),
            Err(OpenApiError::DuplicateOperation { .. })
        ));
    }

    #[test]
    fn the_admin_scope_is_required_and_the_gateways_403_documented() {
        let document = parsed(&[thing_route().admin()]);
        let operation = &document["paths"]["/things/{thing_id}"]["get"];
        assert_eq!(operation["security"], json!([{ "bearer": [ADMIN_SCOPE] }]));
        let forbidden = &operation["responses"]["403"]["content"]["application/json"]["schema"];
        assert_eq!(
            forbidden["anyOf"][1]["$ref"],
            "#/components/schemas/GatewayError"
        );
    }
}
