//! The GraphQL door on the local stack (`functions/graphql`, behind the same HTTP front and JWT
//! check as the REST API), as a client sends it `POST /graphql` and `GET /graphql?query=…` with
//! a bearer token: a caller reads its wallets, their balances and their transactions in one
//! query, moves money once per idempotency key, and sees nothing of anyone else's; a router
//! resolves its wallets by key (`_entities`) and reads its SDL; a query over the depth or
//! complexity limits, a mutation over GET and a request without a token are refused.

use std::cell::Cell;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use graphql::limits::MAX_DEPTH;
use paysaga_tests::graphql::{self as door, Answer, GraphqlError};
use paysaga_tests::{Stack, eventually, unique};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(120);
/// How long the read models may trail the ledger here.
const PROJECTED: Duration = Duration::from_secs(60);

/// Opens two EUR wallets of the caller's, by the ids it chose, in one request.
const OPEN_TWO_WALLETS: &str = r#"
mutation OpenTwo($payer: ID!, $payee: ID!) {
  payer: openWallet(input: {currency: "EUR", walletId: $payer}) { id currency available { minorUnits currency } }
  payee: openWallet(input: {currency: "EUR", walletId: $payee}) { id currency available { minorUnits currency } }
}"#;

const SUBMIT_PAYMENT: &str = r#"
mutation Pay($input: SubmitPaymentInput!) {
  submitPayment(input: $input) {
    id status kind fromWallet toWallet amount { minorUnits currency }
  }
}"#;

/// The caller's wallets, their balances and a page of their transactions: one query.
const MY_WALLETS: &str = r#"
{
  viewer {
    wallets {
      id
      available { minorUnits currency }
      reserved { minorUnits }
      transactions(first: 10) {
        edges { node { id kind counterparty amount { minorUnits currency } status } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}"#;

const BALANCES: &str = r#"
query Balances($payer: ID!, $payee: ID!) {
  payer: wallet(id: $payer) { available { minorUnits } reserved { minorUnits } }
  payee: wallet(id: $payee) { available { minorUnits } reserved { minorUnits } }
}"#;

/// A stack acting as a caller of its own, who holds nothing yet.
async fn fresh_caller(who: &str) -> anyhow::Result<Stack> {
    let mut stack = Stack::connect().await?;
    stack.act_as(&format!("graphql-{who}-{}", unique()))?;
    Ok(stack)
}

/// `POST /graphql` as the stack's caller.
async fn ask(stack: &Stack, query: &str, variables: Value) -> anyhow::Result<Answer> {
    door::post(stack, Some(&stack.token), query, variables).await
}

/// A transfer's `submitPayment` input.
fn transfer(from: &str, to: &str, minor_units: u64, key: &str) -> Value {
    json!({"input": {
        "fromWallet": from,
        "toWallet": to,
        "amount": {"minorUnits": minor_units, "currency": "EUR"},
        "idempotencyKey": key,
    }})
}

/// The wallet with `id` in a `viewer { wallets }` answer.
fn wallet_in<'a>(data: &'a Value, id: &str) -> anyhow::Result<&'a Value> {
    data["viewer"]["wallets"]
        .as_array()
        .and_then(|wallets| wallets.iter().find(|wallet| wallet["id"] == id))
        .with_context(|| format!("{id} is not among the viewer's wallets: {data}"))
}

/// The transactions of a wallet of a `viewer { wallets }` answer, newest first.
fn transactions_of(wallet: &Value) -> Vec<&Value> {
    wallet["transactions"]["edges"]
        .as_array()
        .map(|edges| edges.iter().map(|edge| &edge["node"]).collect())
        .unwrap_or_default()
}

/// Whether a wallet lists the payment `id` as settled (`COMPLETED`).
fn lists_completed(wallet: &Value, id: &str) -> bool {
    transactions_of(wallet)
        .iter()
        .any(|node| node["id"] == id && node["status"] == "COMPLETED")
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_caller_reads_its_wallets_with_their_transactions_in_one_query() -> anyhow::Result<()> {
    let started = Instant::now();
    let stack = fresh_caller("viewer").await?;
    let requests = Cell::new(0_u32);
    let send = |query: &'static str, variables: Value| {
        requests.set(requests.get() + 1);
        ask(&stack, query, variables)
    };
    let (payer, payee) = (
        format!("wal_gql_payer_{}", unique()),
        format!("wal_gql_payee_{}", unique()),
    );

    let opened = send(OPEN_TWO_WALLETS, json!({"payer": payer, "payee": payee})).await?;
    let opened = opened.data_without_errors()?;
    for (alias, id) in [("payer", &payer), ("payee", &payee)] {
        assert_eq!(opened[alias]["id"], id.as_str(), "{opened}");
        assert_eq!(opened[alias]["currency"], "EUR", "{opened}");
        assert_eq!(
            opened[alias]["available"],
            json!({"minorUnits": 0, "currency": "EUR"})
        );
    }
    stack
        .operator_deposit(&payer, "EUR", 10_000, &format!("gql-{payer}"))
        .await?;

    let submitted = send(SUBMIT_PAYMENT, transfer(&payer, &payee, 2_500, &unique())).await?;
    let payment = &submitted.data_without_errors()?["submitPayment"];
    let payment_id = payment["id"]
        .as_str()
        .with_context(|| format!("no payment id in {payment}"))?
        .to_owned();
    ensure!(payment_id.starts_with("pay_"), "{payment}");
    assert_eq!(payment["status"], "PENDING", "{payment}");
    assert_eq!(payment["kind"], "TRANSFER", "{payment}");
    assert_eq!(payment["fromWallet"], payer.as_str(), "{payment}");
    assert_eq!(payment["toWallet"], payee.as_str(), "{payment}");
    assert_eq!(
        payment["amount"],
        json!({"minorUnits": 2_500, "currency": "EUR"})
    );
    let submitted_at = Instant::now();
    let settled = stack.settled_payment(&payment_id, SETTLE).await?;
    assert_eq!(settled["status"], "COMPLETED", "{settled}");
    let settled_in = submitted_at.elapsed();

    // The read models trail the ledger: ask until both sides list the payment as settled. The
    // answer asserted below is that one query's.
    let polls = Cell::new(0_u32);
    let data = eventually(
        PROJECTED,
        &format!("{payment_id} on both wallets' transactions"),
        || async {
            polls.set(polls.get() + 1);
            let answer = send(MY_WALLETS, Value::Null).await?;
            let data = answer.data_without_errors()?;
            let shown = lists_completed(wallet_in(data, &payer)?, &payment_id)
                && lists_completed(wallet_in(data, &payee)?, &payment_id);
            Ok(shown.then(|| data.clone()))
        },
    )
    .await?;
    let projected_in = submitted_at.elapsed();

    let wallets = data["viewer"]["wallets"].as_array().context("wallets")?;
    assert_eq!(
        wallets.len(),
        2,
        "a fresh caller holds the two it opened: {data}"
    );
    let (payer_wallet, payee_wallet) = (wallet_in(&data, &payer)?, wallet_in(&data, &payee)?);
    assert_eq!(
        payer_wallet["available"],
        json!({"minorUnits": 7_500, "currency": "EUR"})
    );
    assert_eq!(payer_wallet["reserved"]["minorUnits"], 0);
    assert_eq!(
        payee_wallet["available"],
        json!({"minorUnits": 2_500, "currency": "EUR"})
    );
    assert_eq!(payee_wallet["reserved"]["minorUnits"], 0);

    // The payer's history, newest first: the transfer out (negative), then the deposit.
    let payer_history = transactions_of(payer_wallet);
    assert_eq!(payer_history.len(), 2, "{payer_wallet}");
    assert_eq!(
        *payer_history[0],
        json!({
            "id": payment_id,
            "kind": "PAYMENT_SENT",
            "counterparty": payee,
            "amount": {"minorUnits": -2_500, "currency": "EUR"},
            "status": "COMPLETED",
        })
    );
    assert_eq!(payer_history[1]["kind"], "DEPOSIT", "{payer_wallet}");
    assert_eq!(
        payer_history[1]["amount"],
        json!({"minorUnits": 10_000, "currency": "EUR"})
    );
    assert_eq!(payer_history[1]["status"], "COMPLETED");
    // The payee's: the transfer in.
    assert_eq!(
        transactions_of(payee_wallet),
        vec![&json!({
            "id": payment_id,
            "kind": "PAYMENT_RECEIVED",
            "counterparty": payer,
            "amount": {"minorUnits": 2_500, "currency": "EUR"},
            "status": "COMPLETED",
        })]
    );
    for wallet in [payer_wallet, payee_wallet] {
        let page = &wallet["transactions"]["pageInfo"];
        assert_eq!(page["hasNextPage"], false, "{wallet}");
        ensure!(
            page["endCursor"].is_string(),
            "a full page ends at a cursor: {wallet}"
        );
    }

    println!(
        "graphql: 2 wallets, their balances and 3 transactions in one query; the transfer settled \
         {:.1} s after submitPayment, both sides listed it after {:.1} s ({} viewer queries); \
         {} GraphQL requests, {:.1} s in all",
        settled_in.as_secs_f64(),
        projected_in.as_secs_f64(),
        polls.get(),
        requests.get(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_caller_opens_nothing_it_does_not_own() -> anyhow::Result<()> {
    // The owner: a wallet with an unusual balance (to look for in the refusals), and a payment
    // between two of its wallets.
    let owner = fresh_caller("owner").await?;
    let (owned, owned_too) = (
        format!("wal_gql_owned_{}", unique()),
        format!("wal_gql_owned_too_{}", unique()),
    );
    owner
        .funded_wallet(&owned, "EUR", 73_451, &format!("gql-{owned}"))
        .await?;
    owner.funded_wallet(&owned_too, "EUR", 0, "").await?;
    let owners_payment = owner
        .submit_payment(json!({
            "from_wallet": owned,
            "to_wallet": owned_too,
            "amount": {"minor_units": 1_000, "currency": "EUR"},
        }))
        .await?;
    let owners_payment = owners_payment["payment_id"]
        .as_str()
        .with_context(|| format!("no payment id in {owners_payment}"))?
        .to_owned();

    // Someone else, with a wallet of its own.
    let intruder = fresh_caller("intruder").await?;
    let intruders = format!("wal_gql_intruder_{}", unique());
    intruder.funded_wallet(&intruders, "EUR", 0, "").await?;
    let refused = |answer: &Answer, field: &str| -> anyhow::Result<GraphqlError> {
        // Available before and after the owner's payment reserves its 1,000.
        for balance in ["73451", "72451"] {
            ensure!(
                !answer.body.to_string().contains(balance),
                "the owner's balance leaked: {}",
                answer.body
            );
        }
        ensure!(
            answer.data()[field].is_null(),
            "{field} answered: {}",
            answer.body
        );
        let error = answer.only_error()?;
        assert_eq!(error.path, [json!(field)], "{}", answer.body);
        Ok(error)
    };

    let wallet = ask(
        &intruder,
        "query($id: ID!) { wallet(id: $id) { id available { minorUnits } reserved { minorUnits } } }",
        json!({"id": owned}),
    )
    .await?;
    assert_eq!(refused(&wallet, "wallet")?.code, "FORBIDDEN");
    // Asked as an entity, as a router would, it is refused the same way.
    let entity = ask(
        &intruder,
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Wallet { id available { minorUnits } } } }",
        json!({"r": [{"__typename": "Wallet", "id": owned}]}),
    )
    .await?;
    assert_eq!(refused(&entity, "_entities")?.code, "FORBIDDEN");

    let payment = ask(
        &intruder,
        "query($id: ID!) { payment(id: $id) { id amount { minorUnits } fromWallet toWallet } }",
        json!({"id": owners_payment}),
    )
    .await?;
    assert_eq!(refused(&payment, "payment")?.code, "FORBIDDEN");

    let theft = ask(
        &intruder,
        SUBMIT_PAYMENT,
        transfer(&owned, &intruders, 50_000, &unique()),
    )
    .await?;
    assert_eq!(refused(&theft, "submitPayment")?.code, "FORBIDDEN");

    // The intruder's viewer holds its own wallet alone.
    let mine = ask(&intruder, "{ viewer { wallets { id } } }", Value::Null).await?;
    assert_eq!(
        *mine.data_without_errors()?,
        json!({"viewer": {"wallets": [{"id": intruders}]}})
    );

    // What does not exist is NOT_FOUND, for anyone.
    let nobodys = ask(
        &intruder,
        "query($wallet: ID!, $payment: ID!) { wallet(id: $wallet) { id } payment(id: $payment) { id } }",
        json!({"wallet": format!("wal_gql_nobody_{}", unique()), "payment": format!("pay_gql_nobody_{}", unique())}),
    )
    .await?;
    assert_eq!(
        *nobodys.data(),
        json!({"wallet": null, "payment": null}),
        "{}",
        nobodys.body
    );
    let mut codes: Vec<_> = nobodys
        .errors()
        .into_iter()
        .map(|error| (error.path, error.code))
        .collect();
    codes.sort_by_key(|(path, _)| path.first().map(ToString::to_string));
    assert_eq!(
        codes,
        [
            (vec![json!("payment")], "NOT_FOUND".to_owned()),
            (vec![json!("wallet")], "NOT_FOUND".to_owned()),
        ]
    );

    // No token: the front refuses the request before GraphQL sees it.
    let anonymous = door::post(&owner, None, "{ viewer { wallets { id } } }", Value::Null).await?;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    ensure!(anonymous.data().is_null(), "{}", anonymous.body);
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn submit_payment_moves_money_once_per_idempotency_key() -> anyhow::Result<()> {
    let stack = fresh_caller("idempotency").await?;
    let (payer, payee) = (
        format!("wal_gql_once_payer_{}", unique()),
        format!("wal_gql_once_payee_{}", unique()),
    );
    stack
        .funded_wallet(&payer, "EUR", 10_000, &format!("gql-{payer}"))
        .await?;
    stack.funded_wallet(&payee, "EUR", 0, "").await?;
    let key = format!("gql-once-{}", unique());
    let submit = |minor_units| {
        ask(
            &stack,
            SUBMIT_PAYMENT,
            transfer(&payer, &payee, minor_units, &key),
        )
    };

    // The same request twice (its first answer lost, say): one payment.
    let first = submit(1_234).await?;
    let again = submit(1_234).await?;
    let payment_id = first.data_without_errors()?["submitPayment"]["id"]
        .as_str()
        .with_context(|| format!("no payment id in {}", first.body))?
        .to_owned();
    assert_eq!(
        again.data_without_errors()?["submitPayment"]["id"],
        payment_id.as_str(),
        "the same key answers the same payment"
    );

    // The same key with other terms is a conflict, and moves nothing.
    let other_terms = submit(999).await?;
    ensure!(
        other_terms.data()["submitPayment"].is_null(),
        "{}",
        other_terms.body
    );
    let conflict = other_terms.only_error()?;
    assert_eq!(
        (conflict.code.as_str(), conflict.reason.as_str()),
        ("CONFLICT", "idempotency_key_reused"),
        "{}",
        other_terms.body
    );

    let settled = stack.settled_payment(&payment_id, SETTLE).await?;
    assert_eq!(settled["status"], "COMPLETED", "{settled}");
    // Sent after the payment settled, the key still names it.
    let late = submit(1_234).await?;
    assert_eq!(
        late.data_without_errors()?["submitPayment"]["id"],
        payment_id.as_str()
    );

    // The payer was debited once.
    let balances = ask(&stack, BALANCES, json!({"payer": payer, "payee": payee})).await?;
    assert_eq!(
        *balances.data_without_errors()?,
        json!({
            "payer": {"available": {"minorUnits": 10_000 - 1_234}, "reserved": {"minorUnits": 0}},
            "payee": {"available": {"minorUnits": 1_234}, "reserved": {"minorUnits": 0}},
        })
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_router_resolves_the_callers_entities_by_key_and_reads_the_sdl() -> anyhow::Result<()> {
    let stack = fresh_caller("router").await?;
    let (funded, empty) = (
        format!("wal_gql_entity_{}", unique()),
        format!("wal_gql_entity_empty_{}", unique()),
    );
    stack
        .funded_wallet(&funded, "EUR", 4_321, &format!("gql-{funded}"))
        .await?;
    stack.funded_wallet(&empty, "EUR", 0, "").await?;
    let submitted = ask(
        &stack,
        SUBMIT_PAYMENT,
        transfer(&funded, &empty, 21, &unique()),
    )
    .await?;
    let payment_id = submitted.data_without_errors()?["submitPayment"]["id"].clone();

    // As a router asks a subgraph for the entities a query reaches: by key, in its order.
    let entities = ask(
        &stack,
        r#"query Entities($representations: [_Any!]!) {
             _entities(representations: $representations) {
               __typename
               ... on Wallet { id available { minorUnits } }
               ... on Payment { id amount { minorUnits currency } }
             }
           }"#,
        json!({"representations": [
            {"__typename": "Wallet", "id": funded},
            {"__typename": "Payment", "id": payment_id},
            {"__typename": "Wallet", "id": empty},
        ]}),
    )
    .await?;
    let entities = &entities.data_without_errors()?["_entities"];
    let funded_available = entities[0]["available"]["minorUnits"]
        .as_u64()
        .with_context(|| format!("{entities}"))?;
    assert_eq!(entities[0]["__typename"], "Wallet");
    assert_eq!(entities[0]["id"], funded.as_str());
    // The transfer may already hold or have moved its 21: the wallet had 4,321.
    ensure!(
        funded_available == 4_321 || funded_available == 4_300,
        "{entities}"
    );
    assert_eq!(
        entities[1],
        json!({"__typename": "Payment", "id": payment_id, "amount": {"minorUnits": 21, "currency": "EUR"}})
    );
    assert_eq!(entities[2]["__typename"], "Wallet");
    assert_eq!(entities[2]["id"], empty.as_str());
    assert_eq!(entities.as_array().map(Vec::len), Some(3));

    // The SDL a router composes: Federation 2, the entities keyed by id.
    let service = ask(&stack, "{ _service { sdl } }", Value::Null).await?;
    let sdl = service.data_without_errors()?["_service"]["sdl"]
        .as_str()
        .context("no SDL")?
        .to_owned();
    for entity in [
        "type Wallet @key(fields: \"id\")",
        "type Payment @key(fields: \"id\")",
    ] {
        ensure!(sdl.contains(entity), "no `{entity}` in the SDL:\n{sdl}");
    }
    let link = sdl
        .find("extend schema @link(")
        .map(|at| &sdl[at..])
        .with_context(|| format!("no @link in the SDL:\n{sdl}"))?;
    ensure!(
        link.contains("url: \"https://specs.apollo.dev/federation/v2."),
        "not Federation 2: {link}"
    );
    ensure!(link.contains("\"@key\""), "@key is not imported: {link}");
    Ok(())
}

/// `__type(name: "Wallet") { ofType { … { name } } }`, `depth` fields deep (leaves count).
fn nested_introspection(depth: usize) -> String {
    let wrappers = depth.saturating_sub(2);
    format!(
        "{{ __type(name: \"Wallet\") {{ {}name{} }} }}",
        "ofType { ".repeat(wrappers),
        " }".repeat(wrappers)
    )
}

/// `wallet(id:)` with a page of 100 transactions and every field of them, under `alias`.
fn largest_page(alias: &str) -> String {
    format!(
        "{alias}: wallet(id: $id) {{ transactions(first: 100) {{ edges {{ cursor node {{ id kind \
         counterparty amount {{ minorUnits currency }} status failure {{ code message }} at \
         updatedAt }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
    )
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn queries_over_the_depth_or_complexity_limit_are_refused_whole() -> anyhow::Result<()> {
    let stack = fresh_caller("limits").await?;
    let wallet = format!("wal_gql_limits_{}", unique());
    stack.funded_wallet(&wallet, "EUR", 0, "").await?;

    // Introspection is the one way to nest without end (`ofType`, `fields { type { … } }`):
    // answered up to the limit, refused past it, before any field runs.
    let deepest = ask(&stack, &nested_introspection(MAX_DEPTH), Value::Null).await?;
    let deepest = deepest.data_without_errors()?;
    assert_eq!(deepest["__type"]["ofType"], Value::Null, "{deepest}");
    let too_deep = ask(&stack, &nested_introspection(MAX_DEPTH + 1), Value::Null).await?;
    assert_eq!(too_deep.status, 200, "{}", too_deep.body);
    assert_eq!(*too_deep.data(), Value::Null, "{}", too_deep.body);
    let error = too_deep.only_error()?;
    assert_eq!(
        (error.code.as_str(), error.reason.as_str()),
        ("BAD_USER_INPUT", "query_too_deep"),
        "{}",
        too_deep.body
    );
    ensure!(error.path.is_empty(), "{}", too_deep.body);

    // One wallet's largest page with every field is answered; two in one request are not.
    let one_page = ask(
        &stack,
        &format!("query($id: ID!) {{ {} }}", largest_page("a")),
        json!({"id": wallet}),
    )
    .await?;
    let one_page = one_page.data_without_errors()?;
    assert_eq!(
        one_page["a"]["transactions"]["edges"],
        json!([]),
        "{one_page}"
    );
    let two_pages = ask(
        &stack,
        &format!(
            "query($id: ID!) {{ {} {} }}",
            largest_page("a"),
            largest_page("b")
        ),
        json!({"id": wallet}),
    )
    .await?;
    assert_eq!(*two_pages.data(), Value::Null, "{}", two_pages.body);
    let error = two_pages.only_error()?;
    assert_eq!(
        (error.code.as_str(), error.reason.as_str()),
        ("BAD_USER_INPUT", "query_too_complex"),
        "{}",
        two_pages.body
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn get_runs_queries_with_the_token_and_never_a_mutation() -> anyhow::Result<()> {
    let stack = fresh_caller("get").await?;
    let wallet = format!("wal_gql_get_{}", unique());
    stack.funded_wallet(&wallet, "EUR", 0, "").await?;
    let token = Some(stack.token.as_str());

    let read = door::get(
        &stack,
        token,
        "{ viewer { wallets { id currency } } }",
        None,
    )
    .await?;
    assert_eq!(
        *read.data_without_errors()?,
        json!({"viewer": {"wallets": [{"id": wallet, "currency": "EUR"}]}})
    );
    let anonymous = door::get(&stack, None, "{ viewer { wallets { id } } }", None).await?;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);

    // A mutation over GET (a link, a prefetch) is refused with a 405, and does nothing; so is
    // one picked by `operationName` from a document that also holds a query.
    let never_opened = format!("wal_gql_never_{}", unique());
    let open = format!(
        "mutation Open {{ openWallet(input: {{currency: \"EUR\", walletId: \"{never_opened}\"}}) {{ id }} }}"
    );
    let both = format!("query Mine {{ viewer {{ wallets {{ id }} }} }} {open}");
    for (query, operation) in [(open.as_str(), None), (both.as_str(), Some("Open"))] {
        let refused = door::get(&stack, token, query, operation).await?;
        assert_eq!(refused.status, 405, "{}", refused.body);
        assert_eq!(
            refused
                .headers
                .get("allow")
                .and_then(|allow| allow.to_str().ok()),
            Some("POST")
        );
        let error = refused.only_error()?;
        assert_eq!(
            (error.code.as_str(), error.reason.as_str()),
            ("BAD_USER_INPUT", "mutation_over_get"),
            "{}",
            refused.body
        );
    }
    let mine = door::get(&stack, token, &both, Some("Mine")).await?;
    assert_eq!(
        *mine.data_without_errors()?,
        json!({"viewer": {"wallets": [{"id": wallet}]}})
    );
    let opened = ask(
        &stack,
        "query($id: ID!) { wallet(id: $id) { id } }",
        json!({"id": never_opened}),
    )
    .await?;
    assert_eq!(
        opened.only_error()?.code,
        "NOT_FOUND",
        "a mutation over GET opened {never_opened}"
    );
    Ok(())
}
