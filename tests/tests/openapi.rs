//! The HTTP API's OpenAPI document, `docs/openapi.json`: the checked-in file is what the
//! functions' route descriptions and Rust types generate (`UPDATE_OPENAPI=1 cargo test -p
//! paysaga-tests --test openapi` rewrites it); its operations are exactly the routes the `api`
//! and `admin-api` routers serve and the routes `infra/template.yaml` gives them; and, on the
//! local stack, every request schemathesis draws from it (valid and invalid) is answered as it
//! says.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use admin_api::{AdminApi, REBUILD_PAGE, admin_router};
use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{Method, Request, StatusCode};
use lambda_http::request::RequestContext;
use paysaga_http::openapi::{Operation, document};
use paysaga_http::test_support::ApiDocument;
use paysaga_services::fakes::{
    InMemoryEventStore, InMemoryLedger, InMemoryParking, InMemoryQueues, RecordingPublisher,
    self_service,
};
use paysaga_services::read_models::InMemoryReadModels;
use paysaga_tests::{Stack, repo_root};
use serde_json::{Value, json};
use tower::ServiceExt;
use yaml_rust2::{Yaml, YamlLoader};

/// Every operation of the REST API: the `api` function's, then the operators'.
fn operations() -> Vec<Operation> {
    let mut operations = api::openapi::operations();
    operations.extend(admin_api::openapi::operations());
    operations
}

fn openapi_path() -> PathBuf {
    repo_root().join("docs/openapi.json")
}

/// The document as the code generates it.
fn generated() -> String {
    document(&operations()).unwrap_or_else(|error| panic!("the document: {error}"))
}

/// Where two texts first differ, with a few lines of each around it.
fn first_difference(checked_in: &str, generated: &str) -> String {
    let old: Vec<&str> = checked_in.lines().collect();
    let new: Vec<&str> = generated.lines().collect();
    let at = old
        .iter()
        .zip(&new)
        .position(|(old, new)| old != new)
        .unwrap_or(old.len().min(new.len()));
    let around = |lines: &[&str]| {
        lines
            .iter()
            .enumerate()
            .skip(at.saturating_sub(2))
            .take(5)
            .map(|(number, line)| format!("    {:>5} {line}", number + 1))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "first difference at line {}:\n  checked in ({} lines):\n{}\n  generated ({} lines):\n{}",
        at + 1,
        old.len(),
        around(&old),
        new.len(),
        around(&new)
    )
}

#[test]
fn the_checked_in_document_is_what_the_code_generates() {
    let path = openapi_path();
    let generated = generated();
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|value| value == "1") {
        fs::write(&path, &generated).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        println!("wrote {}", path.display());
        return;
    }
    let checked_in = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json is not what the Rust types and route descriptions generate \
         (functions/api/src/openapi.rs, functions/admin-api/src/openapi.rs, the types they name);\n\
         {}\nif the code is right, regenerate it: \
         UPDATE_OPENAPI=1 cargo test -p paysaga-tests --test openapi",
        first_difference(&checked_in, &generated)
    );
}

#[test]
fn a_drifted_document_is_told_where() {
    let generated = generated();
    let drifted = generated.replacen("\"readWallet\"", "\"getWallet\"", 1);
    let hint = first_difference(&drifted, &generated);
    assert!(
        hint.contains("getWallet") && hint.contains("readWallet"),
        "{hint}"
    );
}

/// Whether `value` is what `schema` (of `document`, its `$ref`s among the components) describes.
fn conforms(document: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": { "schemas": document["components"]["schemas"].clone() },
        "allOf": [schema],
    });
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .map_err(|error| format!("the schema does not compile: {error}"))?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[test]
fn every_example_is_what_its_schema_describes() {
    let document: Value = serde_json::from_str(&generated()).expect("JSON");
    let mut examples = 0;
    let mut wrong = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let route = format!("{} {path}", method.to_ascii_uppercase());
            let parameters = operation["parameters"].as_array().into_iter().flatten();
            let parameter_examples = parameters.filter_map(|parameter| {
                let example = parameter.get("example")?;
                Some((parameter["name"].to_string(), &parameter["schema"], example))
            });
            let media = &operation["requestBody"]["content"]["application/json"];
            let body_example = media
                .get("example")
                .map(|example| ("the body".to_owned(), &media["schema"], example));
            for (what, schema, example) in parameter_examples.chain(body_example) {
                examples += 1;
                if let Err(problem) = conforms(&document, schema, example) {
                    wrong.push(format!(
                        "{route}: the example of {what}, {example}: {problem}"
                    ));
                }
            }
        }
    }
    assert!(examples >= 10, "only {examples} examples");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn an_answer_the_document_does_not_describe_is_caught() {
    let document: Value = serde_json::from_str(&generated()).expect("JSON");
    let checks = ApiDocument::new(document);
    let wallet = json!({
        "wallet_id": "wal_a", "currency": "EUR", "created_at": "2026-12-06T12:00:00Z",
        "available": {"minor_units": 0, "currency": "EUR"},
        "reserved": {"minor_units": 0, "currency": "EUR"},
    });
    let read = |status, body: &Value| checks.check("GET", "/wallets/wal_a", status, body);
    assert_eq!(read(StatusCode::OK, &wallet), Ok(()));
    let mut negative = wallet.clone();
    negative["available"]["minor_units"] = json!(-1);
    assert!(
        read(StatusCode::OK, &negative).is_err(),
        "a negative balance passed"
    );
    assert!(
        read(StatusCode::IM_A_TEAPOT, &wallet).is_err(),
        "an undocumented status passed"
    );
    let gateway = json!({ "message": "Forbidden" });
    assert!(
        read(StatusCode::FORBIDDEN, &gateway).is_err(),
        "only admin routes have it"
    );
    let not_found = json!({ "error": { "code": "not_found", "message": "no such wallet" } });
    assert_eq!(read(StatusCode::NOT_FOUND, &not_found), Ok(()));
    let wrong_code = json!({ "error": { "code": "forbidden", "message": "no such wallet" } });
    assert!(
        read(StatusCode::NOT_FOUND, &wrong_code).is_err(),
        "a 404 said forbidden"
    );
    let unauthorized = json!({ "message": "Unauthorized" });
    assert_eq!(read(StatusCode::UNAUTHORIZED, &unauthorized), Ok(()));
    // A route the gateway does not have: nothing to hold it to.
    assert_eq!(
        checks.check("GET", "/nowhere", StatusCode::OK, &Value::Null),
        Ok(())
    );
}

/// The methods a route may be served for (the gateway routes no HEAD or OPTIONS to a function;
/// axum answers HEAD with a GET route's handler, which is not a route of its own).
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// A function behind the HTTP API, as the template names it, with its router on the in-memory
/// adapters (as its `main` assembles it; both functions' on the same ledger and read models, as
/// in AWS on the same tables) and the paths the router serves.
struct Function {
    name: &'static str,
    logical_id: &'static str,
    router: Router,
    paths: Vec<&'static str>,
}

fn functions() -> [Function; 2] {
    let ledger = Arc::new(InMemoryLedger::default());
    let read_models = Arc::new(InMemoryReadModels::default());
    let api = api::router(Arc::new(self_service(
        ledger.clone(),
        read_models.clone(),
        Default::default(),
    )));
    let admin = admin_router(Arc::new(AdminApi {
        parking: Arc::new(InMemoryParking::default()),
        queues: Arc::new(InMemoryQueues::default()),
        event_store: Arc::new(InMemoryEventStore::new(10)),
        read_models,
        rebuild_page: REBUILD_PAGE,
        wallets: ledger,
        events: Arc::new(RecordingPublisher::default()),
        limits: Default::default(),
    }));
    [
        Function {
            name: "api",
            logical_id: "ApiFunction",
            router: api,
            paths: api::paths(),
        },
        Function {
            name: "admin-api",
            logical_id: "AdminApiFunction",
            router: admin,
            paths: admin_api::paths(),
        },
    ]
}

/// A route: its method and path template.
type Route = (String, String);

/// `path` with each `{parameter}` filled in with a well-formed value.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{wallet_id}" => "wal_openapi_probe",
            "{payment_id}" => "pay_openapi_probe",
            "{parked_id}" => "paysaga-payments-dlq%2Fmessage-1",
            other if other.starts_with('{') => panic!("no sample value for {other} in {path}"),
            other => other,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Sends `method path` (with an empty JSON object as the body) to `router` as an operator, as
/// API Gateway hands a request over: the status and the JSON body (`Null` when none).
async fn probe(router: &Router, method: &Method, path: &str) -> (StatusCode, Value) {
    let context: lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext =
        serde_json::from_value(json!({
            "routeKey": "$default",
            "http": {"method": method.as_str(), "path": path},
            "authorizer": {"jwt": {"claims": {"sub": "openapi-probe", "scope": "paysaga/admin"},
                                   "scopes": ["paysaga/admin"]}},
        }))
        .expect("a request context");
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("idempotency-key", "openapi-probe")
        .body(Body::from("{}"))
        .expect("a request");
    request
        .extensions_mut()
        .insert(RequestContext::ApiGatewayV2(context));
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Whether an answer is the router's, not a handler's: no route of that path and method.
fn unrouted(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::METHOD_NOT_ALLOWED
        || (status == StatusCode::NOT_FOUND && body["error"]["message"] == "no such route")
}

/// The documented operations, as routes.
fn documented(document: &Value) -> BTreeSet<Route> {
    document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .map(|method| (method.to_ascii_uppercase(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn every_route_the_routers_serve_is_documented_and_every_operation_reaches_a_handler() {
    let document: Value = serde_json::from_str(&generated()).expect("JSON");
    let checks = ApiDocument::new(document.clone());
    let mut served = BTreeSet::new();
    let mut wrong = Vec::new();
    for function in functions() {
        assert!(
            !function.paths.is_empty(),
            "{} serves no path",
            function.name
        );
        for path in &function.paths {
            for method in &METHODS {
                let (status, body) = probe(&function.router, method, &concrete(path)).await;
                if unrouted(status, &body) {
                    continue;
                }
                served.insert((method.to_string(), (*path).to_owned()));
                // The probe's answer (a 400 for its empty body, a 404 for its made-up wallet)
                // is one the document names, with the body it describes.
                if let Err(problem) = checks.check(method.as_str(), &concrete(path), status, &body)
                {
                    wrong.push(format!(
                        "{} answered the probe so: {problem}",
                        function.name
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let documented = documented(&document);
    let undocumented: Vec<&Route> = served.difference(&documented).collect();
    let unserved: Vec<&Route> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not documented: {undocumented:?}\ndocumented but reaching no handler: \
         {unserved:?}\n(the routes: functions/api/src/lib.rs, functions/admin-api/src/lib.rs; \
         their descriptions: src/openapi.rs of each)"
    );
}

#[tokio::test]
async fn a_made_up_route_is_told_apart_from_a_handlers_answer() {
    for function in functions() {
        let (status, body) = probe(&function.router, &Method::GET, "/no/such/route").await;
        assert!(
            unrouted(status, &body),
            "{}: {status} {body}",
            function.name
        );
        let path = concrete(function.paths[0]);
        let (status, body) = probe(&function.router, &Method::DELETE, &path).await;
        assert!(
            unrouted(status, &body),
            "{}: {status} {body}",
            function.name
        );
    }
}

/// An HTTP API route of the template: method, path, and the scopes its authorizer requires.
type TemplateRoute = (String, String, Vec<String>);

/// The `Type: HttpApi` events of a function in `infra/template.yaml`.
fn template_routes(template: &Yaml, logical_id: &str) -> Vec<TemplateRoute> {
    let events = &template["Resources"][logical_id]["Properties"]["Events"];
    let events = events
        .as_hash()
        .unwrap_or_else(|| panic!("infra/template.yaml: {logical_id} has no Events"));
    events
        .values()
        .filter(|event| event["Type"].as_str() == Some("HttpApi"))
        .map(|event| {
            let properties = &event["Properties"];
            let text = |field: &str| {
                properties[field]
                    .as_str()
                    .unwrap_or_else(|| panic!("{logical_id}: an HttpApi event without {field}"))
                    .to_owned()
            };
            let auth = &properties["Auth"];
            assert!(
                matches!(auth["Authorizer"].as_str(), None | Some("PaysagaJwt")),
                "{logical_id} {}: every REST route is behind the JWT authorizer",
                text("Path")
            );
            let scopes = auth["AuthorizationScopes"]
                .as_vec()
                .map(|scopes| {
                    scopes
                        .iter()
                        .filter_map(Yaml::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            (text("Method").to_ascii_uppercase(), text("Path"), scopes)
        })
        .collect()
}

#[test]
fn the_template_routes_exactly_the_documented_operations_to_their_functions() {
    let path = repo_root().join("infra/template.yaml");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let template = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .into_iter()
        .next()
        .expect("infra/template.yaml holds a document");
    let document: Value = serde_json::from_str(&generated()).expect("JSON");
    let mut routed = BTreeSet::new();
    let mut wrong = Vec::new();
    for function in functions() {
        let routes = template_routes(&template, function.logical_id);
        assert!(
            !routes.is_empty(),
            "{} has no HttpApi events",
            function.logical_id
        );
        for (method, path, scopes) in routes {
            let operation = &document["paths"][&path][method.to_ascii_lowercase()];
            let admin = operation["security"] == json!([{ "bearer": ["paysaga/admin"] }]);
            if admin != (scopes == ["paysaga/admin"]) {
                wrong.push(format!(
                    "{method} {path}: the template requires scopes {scopes:?}, the document \
                     security {}",
                    operation["security"]
                ));
            }
            // The route reaches this function's router, not another's.
            let served = function.paths.contains(&path.as_str());
            if !served {
                wrong.push(format!(
                    "{method} {path}: the template sends it to {}, whose router has no such path",
                    function.name
                ));
            }
            routed.insert((method, path));
        }
    }
    let documented = documented(&document);
    let unrouted: Vec<&Route> = documented.difference(&routed).collect();
    let undocumented: Vec<&Route> = routed.difference(&documented).collect();
    assert!(
        wrong.is_empty() && unrouted.is_empty() && undocumented.is_empty(),
        "{}\ndocumented, not routed by infra/template.yaml: {unrouted:?}\nrouted by the \
         template, not documented: {undocumented:?}",
        wrong.join("\n")
    );
}

/// Where `infra/local/stack.sh install` puts schemathesis (its own venv, apart from
/// LocalStack's pins).
fn schemathesis() -> PathBuf {
    repo_root().join(".local/schemathesis/bin/st")
}

/// How many cases per operation schemathesis draws in its fuzzing phase, on top of the examples
/// and the coverage phase's boundary values: about 1,100 cases in all, 6 to 12 s against the
/// routers on the in-memory adapters; the local stack (debug builds behind local-lambda,
/// DynamoDB Local) answers each more slowly, a minute or two for the run on 2 cores.
const MAX_EXAMPLES: u32 = 50;
/// The seed of every run: the same cases each time, so a failure can be replayed.
const SEED: u64 = 20_261_206;
/// How long a run may take before the test gives up on it.
const RUN_DEADLINE: Duration = Duration::from_secs(8 * 60);

/// What a schemathesis run said.
struct Run {
    passed: bool,
    /// Its whole output: the summary, and every failure with a `curl` to reproduce it.
    output: String,
    /// How many cases it drew.
    cases: Option<u64>,
    took: Duration,
}

/// Runs schemathesis on the checked-in document against the API at `base_url`, as the caller
/// whose bearer token is `token`: valid and invalid requests of every operation, every answer
/// held to the document (a documented status, a body and headers as described, no 5xx, and
/// invalid input refused).
async fn run_schemathesis(base_url: &str, token: &str, report: &str) -> anyhow::Result<Run> {
    let st = schemathesis();
    if !st.exists() {
        bail!(
            "{} is missing: `infra/local/stack.sh install` installs it (make test does)",
            st.display()
        );
    }
    let report = repo_root().join(format!(".local/logs/schemathesis-{report}.xml"));
    let work_dir = repo_root().join(".local/schemathesis/runs");
    fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create {}", work_dir.display()))?;
    let started = Instant::now();
    let mut command = tokio::process::Command::new(&st);
    command
        .arg("run")
        .arg(openapi_path())
        .args(["--url", base_url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance,negative_data_rejection",
        ])
        .args(["--mode", "all", "--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        .args(["--seed", &SEED.to_string(), "--generation-database", "none"])
        .arg("--no-shrink")
        .args(["--workers", "1", "--request-timeout", "10", "--no-color"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(&report)
        .env("NO_COLOR", "1")
        // Where it keeps its cache (the failures it found, to replay them): not in the checkout.
        .current_dir(&work_dir)
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_DEADLINE, command.output())
        .await
        .with_context(|| format!("schemathesis ran longer than {RUN_DEADLINE:?}"))?
        .with_context(|| format!("cannot run {}", st.display()))?;
    let output_text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(Run {
        passed: output.status.success(),
        cases: cases_drawn(&output_text),
        output: output_text,
        took: started.elapsed(),
    })
}

/// How many cases a run drew, from its summary (`Test cases:` then `1234 generated, ...`).
fn cases_drawn(output: &str) -> Option<u64> {
    let mut lines = output
        .lines()
        .skip_while(|line| line.trim() != "Test cases:");
    lines.next()?;
    let counts = lines.next()?;
    let (count, rest) = counts.trim().split_once(' ')?;
    rest.starts_with("generated").then(|| count.parse().ok())?
}

/// The caller schemathesis acts as: a subject of its own, so that the wallets it opens (with
/// ids it makes up) are never the other tests'.
const SCHEMATHESIS_CALLER: &str = "paysaga-tests-schemathesis";

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn schemathesis_draws_nothing_the_local_api_answers_otherwise_than_documented()
-> anyhow::Result<()> {
    let mut stack = Stack::connect().await?;
    stack.act_as(SCHEMATHESIS_CALLER)?;
    let run = run_schemathesis(&stack.api_url, &stack.token, "local-stack").await?;
    println!(
        "schemathesis drew {} cases in {:.0?} (seed {SEED}, at most {MAX_EXAMPLES} fuzzed a \
         operation)",
        run.cases.map_or("?".to_owned(), |cases| cases.to_string()),
        run.took
    );
    if !run.passed {
        bail!(
            "schemathesis found answers that docs/openapi.json does not describe:\n{}",
            run.output
        );
    }
    let cases = run
        .cases
        .context("schemathesis's summary names no number of cases")?;
    anyhow::ensure!(cases > 0, "schemathesis drew no case:\n{}", run.output);
    Ok(())
}

/// The bearer token of the operator in [`serve_on_fakes`]: its caller holds the admin scope.
const FAKES_OPERATOR: &str = "openapi-operator";

/// The stand-in for the gateway's JWT authorizer in front of the routers on the in-memory
/// adapters: the bearer token is the subject (no signature: nothing here is worth stealing),
/// [`FAKES_OPERATOR`] holds the admin scope, and no token is the gateway's 401.
async fn authorize(mut request: axum::extract::Request, next: Next) -> Response {
    let subject = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(subject) = subject else {
        let body = json!({ "message": "Unauthorized" });
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    };
    let scope = if subject == FAKES_OPERATOR {
        "paysaga/admin"
    } else {
        ""
    };
    let context: lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext =
        match serde_json::from_value(json!({
            "routeKey": "$default",
            "http": {"method": request.method().as_str(), "path": request.uri().path()},
            "authorizer": {"jwt": {"claims": {"sub": subject, "scope": scope}, "scopes": null}},
        })) {
            Ok(context) => context,
            Err(error) => {
                let body = json!({ "message": format!("no request context: {error}") });
                return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
            }
        };
    request
        .extensions_mut()
        .insert(RequestContext::ApiGatewayV2(context));
    next.run(request).await
}

/// Serves both routers on the in-memory adapters on a free port of 127.0.0.1, each route sent
/// to its function as the gateway routes them (`/admin/...` to admin-api): the base URL.
async fn serve_on_fakes() -> anyhow::Result<String> {
    let [api, admin] = functions();
    let (api, admin) = (api.router, admin.router);
    let gateway = tower::service_fn(move |request: axum::extract::Request| {
        let function = if request.uri().path().starts_with("/admin/") {
            admin.clone()
        } else {
            api.clone()
        };
        function.oneshot(request)
    });
    let app = Router::new()
        .fallback_service(gateway)
        .layer(axum::middleware::from_fn(authorize));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{address}"))
}

#[tokio::test]
#[ignore = "needs schemathesis: `infra/local/stack.sh install` installs it (make test does)"]
async fn schemathesis_draws_nothing_the_routers_on_fakes_answer_otherwise_than_documented()
-> anyhow::Result<()> {
    // As an operator, so the operators' routes are fuzzed too (on the local stack they would
    // rewrite the shared read models and deposit into the other tests' wallets).
    let base_url = serve_on_fakes().await?;
    let run = run_schemathesis(&base_url, FAKES_OPERATOR, "fakes").await?;
    println!(
        "schemathesis drew {} cases in {:.0?} against the routers on the in-memory adapters",
        run.cases.map_or("?".to_owned(), |cases| cases.to_string()),
        run.took
    );
    if !run.passed {
        bail!(
            "schemathesis found answers that docs/openapi.json does not describe:\n{}",
            run.output
        );
    }
    let cases = run
        .cases
        .context("schemathesis's summary names no number of cases")?;
    anyhow::ensure!(cases > 0, "schemathesis drew no case:\n{}", run.output);
    Ok(())
}
