//! The GraphQL door as HTTP: who may call it, how big a request may be, GET against POST,
//! GraphiQL when it is on, and the query limits.

mod support;

use graphql::{Graphiql, GraphiqlAssets, MAX_BODY_BYTES};
use http::{StatusCode, header};
use serde_json::{Value, json};
use support::{ALICE, ALICE_MAIN, As, World, error_codes, error_reasons, fixture, get, post};

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[tokio::test]
async fn the_fixtures_run_as_sent_by_their_caller() {
    let world = World::new().await;
    // The fixtures' caller is demo-alice, who holds no wallet here: her list is empty, and
    // Alice's wallet is someone else's to her.
    let (status, body) = world.send(fixture("apigw-graphql-get.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "data": { "viewer": { "wallets": [] } } }));
    let mut event = fixture("apigw-graphql-post.json");
    event["body"] = json!(
        json!({ "query": "query Wallet($id: ID!) { wallet(id: $id) { id } }",
                "variables": { "id": ALICE_MAIN }, "operationName": "Wallet" })
        .to_string()
    );
    let (status, body) = world.send(event).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_codes(&body), ["FORBIDDEN"], "{body}");
}

#[tokio::test]
async fn a_request_without_a_token_is_a_401_and_runs_nothing() {
    let world = World::new().await;
    let (status, body) = world
        .send(post(
            As::Nobody,
            r#"{"query": "{ viewer { wallets { id } } }"}"#,
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated");
    let (status, _) = world
        .send(get(
            As::Nobody,
            &[("query", "{ viewer { wallets { id } } }")],
            "application/json",
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(world.ledger.wallet_reads().batched, 0, "nothing read");
}

#[tokio::test]
async fn a_body_over_16_kib_is_a_413() {
    let world = World::new().await;
    let padding = " ".repeat(17 * 1024);
    let body = format!(r#"{{"query": "{{ viewer {{ wallets {{ id }} }} }}{padding}"}}"#);
    assert!(body.len() > MAX_BODY_BYTES);
    let (status, answer) = world.send(post(As::Caller(ALICE), &body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"]["code"], "payload_too_large");

    // Just under the limit, the same query runs.
    let padding = " ".repeat(MAX_BODY_BYTES - 100);
    let body = format!(r#"{{"query": "{{ viewer {{ wallets {{ id }} }} }}{padding}"}}"#);
    let (status, answer) = world.send(post(As::Caller(ALICE), &body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn a_body_that_is_not_a_graphql_request_is_a_400() {
    let world = World::new().await;
    for body in [
        "not json",
        r#"{"variables": {}}"#,
        r#"[{"query": "{ viewer { wallets { id } } }"}]"#,
    ] {
        let (status, answer) = world.send(post(As::Caller(ALICE), body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"]["code"], "invalid_request", "{body}");
    }
    // A query that does not parse is the client's too, as a GraphQL error.
    let (status, answer) = world
        .graphql(As::Caller(ALICE), "{ viewer { ", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_codes(&answer), ["BAD_USER_INPUT"]);
    assert_eq!(error_reasons(&answer), ["invalid_query"]);
}

#[tokio::test]
async fn get_runs_queries_with_variables_and_refuses_mutations() {
    let world = World::new().await;
    let (status, body) = world
        .send(get(
            As::Caller(ALICE),
            &[
                ("query", "query One($id: ID!) { wallet(id: $id) { id } } query Two { viewer { wallets { id } } }"),
                ("variables", &json!({ "id": ALICE_MAIN }).to_string()),
                ("operationName", "One"),
            ],
            "application/json",
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "data": { "wallet": { "id": ALICE_MAIN } } }));

    let mutation = "mutation { openWallet(input: {currency: \"EUR\"}) { id } }";
    let (status, headers, body) = world
        .send_raw(get(
            As::Caller(ALICE),
            &[("query", mutation)],
            "application/json",
        ))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "POST");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(error_reasons(&body), ["mutation_over_get"]);
    // Nor when the mutation hides behind an operation name.
    let (status, _) = world
        .send(get(
            As::Caller(ALICE),
            &[
                (
                    "query",
                    &format!(
                        "query Q {{ viewer {{ wallets {{ id }} }} }} {}",
                        mutation.replacen("mutation", "mutation M", 1)
                    ),
                ),
                ("operationName", "M"),
            ],
            "application/json",
        ))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (_, wallets) = world
        .graphql(
            As::Caller(ALICE),
            "{ viewer { wallets { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        wallets["data"]["viewer"]["wallets"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "no wallet opened"
    );

    let (status, body) = world
        .send(get(
            As::Caller(ALICE),
            &[
                ("query", "{ viewer { wallets { id } } }"),
                ("variables", "[1]"),
            ],
            "application/json",
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_request");
}

#[tokio::test]
async fn graphiql_is_served_only_when_enabled_and_loads_its_assets_from_where_it_is_told() {
    let assets = GraphiqlAssets::parse("http://127.0.0.1:3000/graphiql-assets").expect("a URL");
    let on = World::with_graphiql(Graphiql::Enabled(assets)).await;
    // The page needs no token (its route has no authorizer): it holds none.
    let (status, headers, page) = on.send_raw(fixture("apigw-graphiql.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.contains("http://127.0.0.1:3000/graphiql-assets/graphiql@3.8.3/graphiql.min.js"));
    assert!(page.contains("'Authorization'") && page.contains("get('bearer')"));
    // A browser's GET /graphql without a query gets the same page.
    let (status, _, same) = on.send_raw(get(As::Caller(ALICE), &[], BROWSER)).await;
    assert_eq!((status, same == page), (StatusCode::OK, true));
    // Any other client's gets a 400 saying how to ask.
    let (status, body) = on
        .send(get(As::Caller(ALICE), &[], "application/json"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("?query=")
    );

    let off = World::new().await;
    let (status, body) = off.send(fixture("apigw-graphiql.json")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, headers, body) = off.send_raw(get(As::Caller(ALICE), &[], BROWSER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(body["error"]["code"], "invalid_request");
}

/// A query nested `levels` deep through introspection's recursion (`__Type.ofType`).
fn nested_introspection(levels: usize) -> String {
    // __type(1) name/ofType… : each ofType adds a level, the leaf `name` one more.
    let of_types = levels - 2;
    format!(
        "{{ __type(name: \"Wallet\") {{ {}name{} }} }}",
        "ofType { ".repeat(of_types),
        " }".repeat(of_types)
    )
}

#[tokio::test]
async fn a_query_deeper_than_the_limit_is_refused_before_anything_is_read() {
    let world = World::new().await;
    let (status, body) = world
        .graphql(
            As::Caller(ALICE),
            &nested_introspection(graphql::limits::MAX_DEPTH),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["errors"], Value::Null, "at the limit: {body}");

    let (status, body) = world
        .graphql(
            As::Caller(ALICE),
            &format!(
                "{{ viewer {{ wallets {{ id }} }} {} }}",
                nested_introspection(graphql::limits::MAX_DEPTH + 1)
                    .trim_start_matches('{')
                    .trim_end_matches('}')
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"]);
    assert_eq!(error_reasons(&body), ["query_too_deep"]);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("16 deep")
    );
    assert_eq!(world.ledger.wallet_reads().batched, 0, "nothing read");
}

#[tokio::test]
async fn a_query_costlier_than_the_limit_is_refused_and_the_largest_page_is_not() {
    let world = World::new().await;
    let page = |alias: &str| {
        format!(
            "{alias}: wallet(id: \"{ALICE_MAIN}\") {{ payments(first: 100) {{ edges {{ cursor node {{
                paymentId role kind fromWallet toWallet fundingInstrument destination
                amount {{ minorUnits currency }} status failure {{ code message }} requestedAt updatedAt
            }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
        )
    };
    let (_, one) = world
        .graphql(
            As::Caller(ALICE),
            &format!("{{ {} }}", page("a")),
            json!({}),
        )
        .await;
    assert_eq!(
        one["errors"],
        Value::Null,
        "the largest page, every field: {one}"
    );

    let (_, two) = world
        .graphql(
            As::Caller(ALICE),
            &format!("{{ {} {} }}", page("a"), page("b")),
            json!({}),
        )
        .await;
    assert_eq!(two["data"], Value::Null);
    assert_eq!(error_reasons(&two), ["query_too_complex"], "{two}");
}

#[tokio::test]
async fn graphiqls_introspection_query_is_within_the_limits() {
    let world = World::new().await;
    let (status, body) = world
        .graphql(As::Caller(ALICE), &full_introspection_query(9), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["errors"], Value::Null, "{body}");
    let types = body["data"]["__schema"]["types"].as_array().expect("types");
    assert!(types.iter().any(|ty| ty["name"] == "MinorUnits"));
}

/// The full introspection query GraphiQL sends (graphql-js's shape: every type's fields,
/// arguments, input fields, enum values and directives, each type reference `type_depth`
/// `ofType` levels deep).
fn full_introspection_query(type_depth: usize) -> String {
    let type_ref = format!(
        "kind name {}{}",
        "ofType { kind name ".repeat(type_depth),
        "}".repeat(type_depth)
    );
    format!(
        "query IntrospectionQuery {{
            __schema {{
                queryType {{ name kind }} mutationType {{ name kind }} subscriptionType {{ name kind }}
                types {{ ...FullType }}
                directives {{ name description locations args {{ ...InputValue }} }}
            }}
        }}
        fragment FullType on __Type {{
            kind name description specifiedByURL
            fields(includeDeprecated: true) {{
                name description args {{ ...InputValue }} type {{ ...TypeRef }}
                isDeprecated deprecationReason
            }}
            inputFields {{ ...InputValue }}
            interfaces {{ ...TypeRef }}
            enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }}
            possibleTypes {{ ...TypeRef }}
        }}
        fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue }}
        fragment TypeRef on __Type {{ {type_ref} }}"
    )
}

#[tokio::test]
async fn the_router_reads_the_checked_in_sdl_from_service() {
    let world = World::new().await;
    let (_, body) = world
        .graphql(As::Caller(ALICE), "{ _service { sdl } }", json!({}))
        .await;
    let served = body["data"]["_service"]["sdl"].as_str().expect("the SDL");
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
            .expect("schema.graphql");
    assert!(
        served == checked_in,
        "schema.graphql is what _service answers (see tests/sdl.rs)"
    );
}

#[tokio::test]
async fn an_event_with_claims_but_no_subject_is_a_401() {
    let world = World::new().await;
    let mut event = post(
        As::Caller(ALICE),
        r#"{"query": "{ viewer { wallets { id } } }"}"#,
    );
    event["requestContext"]["authorizer"]["jwt"]["claims"] = json!({ "iss": "someone" });
    let (status, body) = world.send(event).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated");
}
