//! What each route of the `api` function reads, answers and refuses: its part of the HTTP API's
//! OpenAPI document (`docs/openapi.json`, assembled by [`paysaga_http::openapi::document`]).
//! The schemas are those of the handlers' own types; what is written here is what the types
//! cannot say: the statuses, when each refusal happens, and its code. Only with the `openapi`
//! feature.

use axum::http::StatusCode;
use paysaga_domain::{IdempotencyKey, PaymentId, WalletId};
use paysaga_http::ApiError;
use paysaga_http::openapi::{Operation, literal};
use paysaga_services::read_models::PageRequest;
use schemars::json_schema;
use serde_json::{Value, json};

use crate::reads::{PaymentsView, TransactionsView};
use crate::views::{PaymentView, WalletView};
use crate::{OpenWalletBody, PaymentBody, PayoutBody, TopUpBody};

const WALLETS: &str = "wallets";
const PAYMENTS: &str = "payments";

/// The wallet the examples open, top up, pay from and pay out of: examples that work, in
/// order, for a caller of its own (the schemathesis run's).
const EXAMPLE_WALLET: &str = "wal_openapi_example";
/// The `Idempotency-Key` of the example transfer (whose id the example of
/// `GET /payments/{payment_id}` is).
const EXAMPLE_TRANSFER_KEY: &str = "openapi-example-transfer";

fn example_amount(minor_units: u64) -> Value {
    json!({ "minor_units": minor_units, "currency": "EUR" })
}

/// The id of the example transfer, as `POST /payments` derives it from its payer and key.
fn example_payment_id() -> Value {
    let payer = WalletId::parse(EXAMPLE_WALLET).expect("the example wallet id is well-formed");
    let key = IdempotencyKey::parse(EXAMPLE_TRANSFER_KEY).expect("the example key is well-formed");
    json!(PaymentId::for_idempotency_key(&payer, &key).as_str())
}

fn unprocessable(code: &'static str) -> ApiError {
    ApiError::Unprocessable {
        code,
        message: String::new(),
    }
}

fn conflict(code: &'static str) -> ApiError {
    ApiError::Conflict {
        code,
        message: String::new(),
    }
}

fn forbidden() -> ApiError {
    ApiError::Forbidden(String::new())
}

fn not_found() -> ApiError {
    ApiError::NotFound(String::new())
}

/// What every payment route (a transfer, a top-up, a payout) reads and refuses alike.
fn payment(operation: Operation, key_example: &'static str) -> Operation {
    operation
        .tag(PAYMENTS)
        .idempotency_key(
            key_example,
            "Required: a retry under the same key (and terms) answers the same payment; the key \
             is scoped to the paying wallet. 1 to 255 visible ASCII characters, no secret or \
             personal data.",
        )
        .answers::<PaymentView>(
            StatusCode::ACCEPTED,
            "Accepted (or accepted before, under this key): the saga runs the payment; follow \
             it at its Location",
        )
        .with_header("Location", "The payment's address: /payments/{payment_id}")
        .refuses(
            unprocessable("invalid_amount"),
            "the amount is not greater than zero",
        )
        .refuses(
            unprocessable("invalid_payment"),
            "the payment cannot be made as asked (a transfer to its own wallet)",
        )
        .refuses(
            unprocessable("currency_not_allowed"),
            "wallets do not hold the amount's currency",
        )
        .refuses(
            unprocessable("amount_over_limit"),
            "the amount is over MAX_PAYMENT_MINOR_UNITS",
        )
        .refuses(forbidden(), "the paying wallet belongs to another caller")
        .refuses(not_found(), "the paying wallet does not exist")
        .refuses(
            conflict("idempotency_key_reused"),
            "the key was used for a payment of other terms",
        )
}

/// A list's `limit` and `cursor`, as `reads::page_request` parses them.
fn paged(operation: Operation) -> Operation {
    operation
        .query_parameter(
            "limit",
            false,
            "How many items the page holds at most: 1 to 100 (20 when left out)",
            literal(json_schema!({
                "type": "integer",
                "minimum": 1,
                "maximum": PageRequest::MAX_LIMIT,
                "default": PageRequest::DEFAULT_LIMIT,
            })),
        )
        .parameter_example("limit", json!(5))
        .query_parameter(
            "cursor",
            false,
            "The `next` of the previous page (opaque); left out, the newest page",
            // What `Cursor::decode` accepts: the hex of a page's last key.
            literal(json_schema!({
                "type": "string",
                "pattern": "^(?:[0-9a-f]{2}){1,256}$",
            })),
        )
        .refuses(forbidden(), "the wallet belongs to another caller")
        .refuses(not_found(), "the wallet does not exist")
}

/// Every route of the `api` function.
pub fn operations() -> Vec<Operation> {
    vec![
        Operation::post("/wallets", "openWallet", "Open a wallet")
            .tag(WALLETS)
            .description(
                "Opens a wallet owned by the caller, in one of the currencies wallets may hold. \
                 Opening it again (the same id, currency and owner) answers it as it is.",
            )
            .body::<OpenWalletBody>("The wallet's currency, and its id when the caller chooses it")
            .body_example(json!({ "currency": "EUR", "wallet_id": EXAMPLE_WALLET }))
            .answers::<WalletView>(StatusCode::CREATED, "Opened")
            .answers::<WalletView>(
                StatusCode::OK,
                "Open already, with this currency and owner: the wallet as it is",
            )
            .refuses(
                unprocessable("currency_not_allowed"),
                "wallets may not hold that currency (ALLOWED_CURRENCIES)",
            )
            .refuses(forbidden(), "a wallet of another caller has that id")
            .refuses(
                conflict("wallet_exists"),
                "the caller's wallet of that id holds another currency",
            ),
        Operation::get("/wallets/{wallet_id}", "readWallet", "Read a wallet")
            .tag(WALLETS)
            .path_parameter::<WalletId>("wallet_id", "One of the caller's wallets")
            .parameter_example("wallet_id", json!(EXAMPLE_WALLET))
            .answers::<WalletView>(StatusCode::OK, "The wallet and its balances")
            .refuses(forbidden(), "the wallet belongs to another caller")
            .refuses(not_found(), "the wallet does not exist"),
        payment(
            Operation::post(
                "/wallets/{wallet_id}/top-ups",
                "topUpWallet",
                "Top a wallet up",
            )
            .description(
                "Money into one of the caller's wallets: the processor charges the caller's \
                 funding instrument, then the wallet is credited (a payment of kind `top_up`).",
            )
            .path_parameter::<WalletId>("wallet_id", "The caller's wallet, credited")
            .parameter_example("wallet_id", json!(EXAMPLE_WALLET))
            .body::<TopUpBody>("The funding instrument charged and the amount")
            .body_example(json!({
                "funding_instrument": "fi_openapi_example",
                "amount": example_amount(10_000),
            })),
            "openapi-example-top-up",
        ),
        payment(
            Operation::post(
                "/wallets/{wallet_id}/payouts",
                "payOutOfWallet",
                "Pay out of a wallet",
            )
            .description(
                "Money out of one of the caller's wallets to the caller's destination, which \
                 the processor pays (a payment of kind `payout`).",
            )
            .path_parameter::<WalletId>("wallet_id", "The caller's wallet, debited")
            .parameter_example("wallet_id", json!(EXAMPLE_WALLET))
            .body::<PayoutBody>("The destination paid and the amount")
            .body_example(json!({
                "destination": "dst_openapi_example",
                "amount": example_amount(2_500),
            })),
            "openapi-example-payout",
        ),
        payment(
            Operation::post("/payments", "requestPayment", "Pay another wallet")
                .description(
                    "A transfer from one of the caller's wallets to another wallet (a payment \
                     of kind `transfer`); `\"priority\": \"urgent\"` takes the urgent lane.",
                )
                .body::<PaymentBody>("The wallets, the amount and the priority")
                .body_example(json!({
                    "from_wallet": EXAMPLE_WALLET,
                    "to_wallet": "wal_openapi_example_payee",
                    "amount": example_amount(1_250),
                    "priority": "ordinary",
                })),
            EXAMPLE_TRANSFER_KEY,
        ),
        Operation::get("/payments/{payment_id}", "readPayment", "Read a payment")
            .tag(PAYMENTS)
            .description(
                "A payment and where it stands, for the owner of any wallet it touches; its \
                 failure reason once it failed.",
            )
            .path_parameter::<PaymentId>("payment_id", "The payment")
            .parameter_example("payment_id", example_payment_id())
            .answers::<PaymentView>(StatusCode::OK, "The payment")
            .refuses(
                forbidden(),
                "the payment touches only other callers' wallets",
            )
            .refuses(not_found(), "the payment does not exist"),
        paged(
            Operation::get(
                "/wallets/{wallet_id}/transactions",
                "listWalletTransactions",
                "List a wallet's transactions",
            )
            .tag(WALLETS)
            .description(
                "One of the caller's wallets' transactions, newest first, a page at a time, \
                 from the read models (a moment behind the ledger).",
            )
            .path_parameter::<WalletId>("wallet_id", "One of the caller's wallets")
            .parameter_example("wallet_id", json!(EXAMPLE_WALLET))
            .answers::<TransactionsView>(StatusCode::OK, "A page of transactions"),
        ),
        paged(
            Operation::get("/payments", "listPayments", "List a wallet's payments")
                .tag(PAYMENTS)
                .description(
                    "One of the caller's wallets' payments, newest first, a page at a time, \
                     from the read models (a moment behind the ledger).",
                )
                .query_parameter(
                    "wallet",
                    true,
                    "One of the caller's wallets (required)",
                    paysaga_http::openapi::schema_of::<WalletId>(),
                )
                .parameter_example("wallet", json!(EXAMPLE_WALLET))
                .answers::<PaymentsView>(StatusCode::OK, "A page of payments"),
        ),
    ]
}
