//! What each operator's route reads, answers and refuses: the `admin-api` function's part of
//! the HTTP API's OpenAPI document (`docs/openapi.json`, assembled by
//! [`paysaga_http::openapi::document`]). The schemas are those of the handlers' own types; what
//! is written here is what the types cannot say: the statuses, when each refusal happens, and
//! its code. Only with the `openapi` feature.

use axum::http::StatusCode;
use paysaga_domain::WalletId;
use paysaga_http::ApiError;
use paysaga_http::openapi::Operation;
use serde_json::json;

use crate::{DepositBody, DepositView, RebuildBody, RebuildPage, ReplayBody, ReplayedView};

const OPERATORS: &str = "operators";

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

/// Every route of the `admin-api` function.
pub fn operations() -> Vec<Operation> {
    vec![
        Operation::post(
            "/admin/wallets/{wallet_id}/deposits",
            "depositToWallet",
            "Deposit into a wallet (an operator's correction)",
        )
        .tag(OPERATORS)
        .admin()
        .description(
            "An operator puts money into a wallet from the outside world's adjustments account, \
             recorded with who (the token's subject) and why in its FundsDeposited event.",
        )
        .path_parameter::<WalletId>("wallet_id", "The wallet credited")
        .parameter_example("wallet_id", json!("wal_openapi_example"))
        .idempotency_key(
            "openapi-example-deposit",
            "Required: a deposit retried without one would credit twice. Scoped to the wallet, \
             remembered for 24 hours.",
        )
        .body::<DepositBody>("The amount and why")
        .body_example(json!({
            "amount": { "minor_units": 5_000, "currency": "EUR" },
            "reason": "goodwill credit after a duplicate charge (example)",
        }))
        .answers::<DepositView>(StatusCode::CREATED, "Deposited")
        .answers::<DepositView>(
            StatusCode::OK,
            "Deposited before under this key: the same deposit, the balances as they are now",
        )
        .refuses(
            unprocessable("invalid_amount"),
            "the amount is not greater than zero",
        )
        .refuses(
            unprocessable("currency_not_allowed"),
            "wallets do not hold the amount's currency",
        )
        .refuses(
            unprocessable("amount_over_limit"),
            "the amount is over MAX_DEPOSIT_MINOR_UNITS",
        )
        .refuses(
            unprocessable("currency_mismatch"),
            "the wallet holds another currency",
        )
        .refuses(
            unprocessable("balance_limit_exceeded"),
            "the wallet would hold more than a balance may",
        )
        .refuses(
            ApiError::NotFound(String::new()),
            "the wallet does not exist",
        )
        .refuses(
            conflict("idempotency_key_reused"),
            "the key was used for another deposit",
        ),
        Operation::post(
            "/admin/parked/{parked_id}/replay",
            "replayParkedMessage",
            "Replay a parked dead letter",
        )
        .tag(OPERATORS)
        .admin()
        .description(
            "Sends a parked message (or its fixed body) back to its queue, recorded in the audit \
             trail (OperatorActionStarted) before it is sent; when it cannot be recorded, a 503 \
             and nothing is sent.",
        )
        .path_parameter::<String>(
            "parked_id",
            "The parked message: `<queue name>/<message id>`, its `/` sent as `%2F`",
        )
        .parameter_example(
            "parked_id",
            json!("paysaga-local-payments-dlq/openapi-example"),
        )
        .body::<ReplayBody>("Why, and optionally a fixed body, a destination, force")
        .body_example(json!({ "reason": "the consumer is fixed: replaying (example)" }))
        .answers::<ReplayedView>(StatusCode::OK, "Sent")
        .refuses(ApiError::NotFound(String::new()), "no such parked message")
        .refuses(
            conflict("already_replayed"),
            "the message was replayed before",
        )
        .refuses(
            conflict("settled"),
            "the reconciler settled it (its payment is terminal)",
        )
        .refuses(
            unprocessable("no_destination"),
            "neither the message nor the request names a queue",
        )
        .refuses(
            unprocessable("contract_violation"),
            "the body breaks the event contracts (send force to send it all the same)",
        )
        .refuses(
            unprocessable("no_such_queue"),
            "the destination queue does not exist",
        ),
        Operation::post(
            "/admin/read-models/rebuild",
            "rebuildReadModels",
            "Apply a page of the audit trail to the read models",
        )
        .tag(OPERATORS)
        .admin()
        .description(
            "Applies one bounded page of the audit trail to the live read models, recorded in \
             the audit trail first; call again with `after` set to `next` until `next` is null. \
             Idempotent: an interrupted rebuild is resumed or restarted.",
        )
        .body::<RebuildBody>("Why, and where to resume")
        .body_example(
            json!({ "reason": "read models restored from backup: catching up (example)" }),
        )
        .answers::<RebuildPage>(StatusCode::OK, "A page applied")
        .refuses(
            ApiError::InvalidRequest(String::new()),
            "after is not the next of an earlier call",
        ),
    ]
}
