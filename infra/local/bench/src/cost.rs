//! Cost per million payments at AWS list prices, from what a payment was measured to do, beside
//! the same saga orchestrated by Step Functions (Standard and Express).
//!
//! Every price is in [`PRICES`], with the date it was read; change them there only.

use serde::Serialize;

use crate::calls::Calls;

/// A list price: US dollars per `per` units.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Price {
    pub item: &'static str,
    pub dollars: f64,
    pub per: f64,
    pub unit: &'static str,
    /// When the price was read, and where.
    pub as_of: &'static str,
    pub source: &'static str,
}

impl Price {
    pub fn of(&self, quantity: f64) -> f64 {
        self.dollars * quantity / self.per
    }
}

/// us-east-1 list prices, first tier, no free tier.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Prices {
    pub http_api_request: Price,
    pub lambda_request: Price,
    pub lambda_arm_gb_second: Price,
    pub sqs_request: Price,
    pub eventbridge_event: Price,
    pub dynamodb_write_unit: Price,
    pub dynamodb_read_unit: Price,
    pub step_functions_transition: Price,
    pub express_request: Price,
    pub express_gb_second: Price,
}

/// This machine has no web access: prices were taken from the AWS pricing pages as last read,
/// then checked where the search index held a recent quote of them.
const READ: &str = "2026-11-26, AWS pricing page (us-east-1), not re-checked here";
const CHECKED: &str =
    "2026-11-26, AWS pricing page (us-east-1), matching quotes of it dated 2025-2026";

pub const PRICES: Prices = Prices {
    http_api_request: Price {
        item: "API Gateway HTTP API request",
        dollars: 1.00,
        per: 1e6,
        unit: "request",
        as_of: READ,
        source: "https://aws.amazon.com/api-gateway/pricing/",
    },
    lambda_request: Price {
        item: "Lambda request",
        dollars: 0.20,
        per: 1e6,
        unit: "request",
        as_of: CHECKED,
        source: "https://aws.amazon.com/lambda/pricing/",
    },
    lambda_arm_gb_second: Price {
        item: "Lambda duration, arm64",
        dollars: 0.000_013_333_4,
        per: 1.0,
        unit: "GB-second",
        as_of: CHECKED,
        source: "https://aws.amazon.com/lambda/pricing/",
    },
    sqs_request: Price {
        item: "SQS standard request (64 KB chunk)",
        dollars: 0.40,
        per: 1e6,
        unit: "request",
        as_of: READ,
        source: "https://aws.amazon.com/sqs/pricing/",
    },
    eventbridge_event: Price {
        item: "EventBridge custom event published (64 KB chunk)",
        dollars: 1.00,
        per: 1e6,
        unit: "event",
        as_of: READ,
        source: "https://aws.amazon.com/eventbridge/pricing/",
    },
    dynamodb_write_unit: Price {
        item: "DynamoDB on-demand write request unit",
        dollars: 0.625,
        per: 1e6,
        unit: "WRU",
        as_of: CHECKED,
        source: "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    },
    dynamodb_read_unit: Price {
        item: "DynamoDB on-demand read request unit",
        dollars: 0.125,
        per: 1e6,
        unit: "RRU",
        as_of: CHECKED,
        source: "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    },
    step_functions_transition: Price {
        item: "Step Functions Standard state transition",
        dollars: 0.025,
        per: 1e3,
        unit: "transition",
        as_of: CHECKED,
        source: "https://aws.amazon.com/step-functions/pricing/",
    },
    express_request: Price {
        item: "Step Functions Express request",
        dollars: 1.00,
        per: 1e6,
        unit: "request",
        as_of: CHECKED,
        source: "https://aws.amazon.com/step-functions/pricing/",
    },
    express_gb_second: Price {
        item: "Step Functions Express duration (64 MB steps)",
        dollars: 0.000_016_67,
        per: 1.0,
        unit: "GB-second",
        as_of: CHECKED,
        source: "https://aws.amazon.com/step-functions/pricing/",
    },
};

/// A function's invocations for one payment.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionWork {
    pub function: String,
    pub invocations: f64,
    /// Mean billed duration of one invocation (warm), ms.
    pub duration_ms: f64,
    pub memory_mb: f64,
}

/// What one payment was measured to do.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentWork {
    pub functions: Vec<FunctionWork>,
    /// The functions' own AWS calls (by the SDK interceptor).
    pub calls: Calls,
    /// Events the rules deliver to SQS queues (each an SQS `SendMessage` billed to the account).
    pub events_delivered_to_queues: f64,
    /// Messages the event source mapping takes off the payments queue, and its batch size
    /// (a `ReceiveMessage` and a `DeleteMessageBatch` per batch).
    pub messages_consumed: f64,
    pub batch_size: f64,
    /// SQS requests a function makes for a batch of payments together, per payment, as
    /// measured for a batch (the event relay's `SendMessageBatch` of ten deadline checks).
    pub batched_sqs_requests: f64,
    /// Messages the other queues' event source mappings take off for the payment: the
    /// reconciler's deadline check on the payment path, the consumers' messages downstream.
    pub other_consumed: Vec<Consumption>,
    /// Saga steps recorded after the request: each a state of the Step Functions equivalent.
    pub saga_steps: f64,
    /// Wall time of the saga for this payment, ms (what Express bills).
    pub saga_ms: f64,
}

/// A queue's messages for one payment, taken off by its event source mapping in batches.
#[derive(Debug, Clone, Serialize)]
pub struct Consumption {
    /// The queue's logical id.
    pub queue: String,
    pub messages: f64,
    pub batch_size: f64,
}

/// One line of the bill.
#[derive(Debug, Clone, Serialize)]
pub struct CostLine {
    pub item: String,
    pub quantity: f64,
    pub unit: String,
    pub per_million_payments: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    pub lines: Vec<CostLine>,
    pub per_million_payments: f64,
    pub step_functions_standard: f64,
    pub step_functions_express: f64,
    pub assumptions: Vec<&'static str>,
}

pub const ASSUMPTIONS: [&str; 6] = [
    "items of at most 1 KB: a transactional write costs 2 WRU per item, a plain one 1; reads under 4 KB: 1 RRU per strongly consistent read, half of one per eventually consistent read, 2 per transactional read",
    "one API Gateway request per payment (POST /payments); status reads are the client's choice",
    "the event source mapping's ReceiveMessage and DeleteMessageBatch are shared by a batch; idle polling is a fixed cost, not per payment",
    "durations are measured warm invocations of this machine's x86-64 release build, billed at the arm64 price (1 ms granularity): the api's for one payment, the saga's for a batch of 10 payments between wallets of their own (the template's BatchSize), a tenth of it per payment",
    "Step Functions Standard: one transition per saga step plus the start and the end, the same Lambda, DynamoDB, EventBridge and API Gateway work, and the rule starting the execution instead of the payments queue",
    "Step Functions Express: one request, the saga's wall time at 64 MB, plus the same work as Standard",
];

/// What the whole-system figures add to [`ASSUMPTIONS`].
pub const WHOLE_SYSTEM_ASSUMPTIONS: [&str; 2] = [
    "whole system: the payment path plus everything its two events reach; each delivery of the stack's rules (copied onto a bus of the bench's, each target a capture queue) is an SQS SendMessage, and each consumer's event source mapping shares a ReceiveMessage and a DeleteMessageBatch per batch",
    "each consumer's calls are counted for the payment's own messages, fed to a warm instance one at a time; it is billed a warm batch of 10 messages of the batch payments (the template's BatchSize), a tenth of it per message",
];

fn million(dollars_per_payment: f64) -> f64 {
    dollars_per_payment * 1e6
}

/// DynamoDB units of the calls: (WRU, RRU); an eventually consistent read costs half.
pub fn dynamodb_units(calls: &Calls) -> (f64, f64) {
    let mut write = 0.0;
    let mut read = 0.0;
    for (call, count) in &calls.0 {
        let items = f64::from(count.items);
        match call.as_str() {
            "DynamoDB.TransactWriteItems" => write += 2.0 * items,
            "DynamoDB.PutItem"
            | "DynamoDB.UpdateItem"
            | "DynamoDB.DeleteItem"
            | "DynamoDB.BatchWriteItem" => write += items,
            "DynamoDB.TransactGetItems" => read += 2.0 * items,
            "DynamoDB.GetItem" | "DynamoDB.Query" | "DynamoDB.Scan" | "DynamoDB.BatchGetItem" => {
                read += items - f64::from(count.eventually_consistent) / 2.0
            }
            _ => {}
        }
    }
    (write, read)
}

/// What a payment costs, per million, and the Step Functions equivalents.
pub fn per_million(work: &PaymentWork, prices: &Prices) -> CostReport {
    let mut lines = Vec::new();
    let mut line = |price: &Price, quantity: f64| {
        lines.push(CostLine {
            item: price.item.to_owned(),
            quantity,
            unit: price.unit.to_owned(),
            per_million_payments: million(price.of(quantity)),
        });
        million(price.of(quantity))
    };
    let invocations: f64 = work
        .functions
        .iter()
        .map(|function| function.invocations)
        .sum();
    let gb_seconds: f64 = work
        .functions
        .iter()
        .map(|function| {
            function.invocations * function.duration_ms.ceil() / 1000.0 * function.memory_mb
                / 1024.0
        })
        .sum();
    let sqs_calls: f64 = work
        .calls
        .0
        .iter()
        .filter(|(call, _)| call.starts_with("SQS."))
        .map(|(_, count)| f64::from(count.requests))
        .sum();
    let events = f64::from(work.calls.count("EventBridge.PutEvents").items);
    let (write_units, read_units) = dynamodb_units(&work.calls);
    let mapping_requests = 2.0 * work.messages_consumed / work.batch_size.max(1.0);
    let other_mapping_requests: f64 = work
        .other_consumed
        .iter()
        .map(|queue| 2.0 * queue.messages / queue.batch_size.max(1.0))
        .sum();

    let api = line(&prices.http_api_request, 1.0);
    let lambda =
        line(&prices.lambda_request, invocations) + line(&prices.lambda_arm_gb_second, gb_seconds);
    let queues = line(
        &prices.sqs_request,
        work.events_delivered_to_queues
            + mapping_requests
            + other_mapping_requests
            + sqs_calls
            + work.batched_sqs_requests,
    );
    let bus = line(&prices.eventbridge_event, events);
    let table = line(&prices.dynamodb_write_unit, write_units)
        + line(&prices.dynamodb_read_unit, read_units);
    let total = api + lambda + queues + bus + table;

    // The orchestrated equivalents keep the work but not the payments queue and its mapping.
    let queue_less = queues
        - million(
            prices
                .sqs_request
                .of(work.messages_consumed + mapping_requests),
        );
    let same_work = api + lambda + queue_less.max(0.0) + bus + table;
    let transitions = work.saga_steps + 2.0;
    let standard = same_work + million(prices.step_functions_transition.of(transitions));
    let express_gb_seconds = (work.saga_ms / 100.0).ceil() * 0.1 * 64.0 / 1024.0;
    let express = same_work
        + million(prices.express_request.of(1.0))
        + million(prices.express_gb_second.of(express_gb_seconds));
    CostReport {
        lines,
        per_million_payments: total,
        step_functions_standard: standard,
        step_functions_express: express,
        assumptions: ASSUMPTIONS.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::calls::Count;

    fn calls(entries: &[(&str, u32, u32)]) -> Calls {
        Calls(
            entries
                .iter()
                .map(|(call, requests, items)| {
                    (
                        (*call).to_owned(),
                        Count {
                            requests: *requests,
                            items: *items,
                            eventually_consistent: 0,
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        )
    }

    fn work() -> PaymentWork {
        PaymentWork {
            functions: vec![
                FunctionWork {
                    function: "api".into(),
                    invocations: 1.0,
                    duration_ms: 9.2,
                    memory_mb: 128.0,
                },
                FunctionWork {
                    function: "payment-saga".into(),
                    invocations: 1.0,
                    duration_ms: 40.0,
                    memory_mb: 128.0,
                },
            ],
            calls: calls(&[
                ("DynamoDB.TransactWriteItems", 5, 10),
                ("DynamoDB.Query", 1, 1),
                ("EventBridge.PutEvents", 2, 5),
            ]),
            events_delivered_to_queues: 5.0,
            messages_consumed: 1.0,
            batch_size: 1.0,
            batched_sqs_requests: 0.0,
            other_consumed: Vec::new(),
            saga_steps: 4.0,
            saga_ms: 180.0,
        }
    }

    #[test]
    fn transactions_cost_double_and_reads_single() {
        let (write, read) = dynamodb_units(&calls(&[
            ("DynamoDB.TransactWriteItems", 2, 5),
            ("DynamoDB.PutItem", 1, 1),
            ("DynamoDB.Query", 3, 3),
            ("EventBridge.PutEvents", 1, 4),
        ]));
        assert_eq!((write, read), (11.0, 3.0));
        let mut eventual = calls(&[("DynamoDB.GetItem", 2, 2)]);
        if let Some(count) = eventual.0.get_mut("DynamoDB.GetItem") {
            count.eventually_consistent = 1;
        }
        assert_eq!(dynamodb_units(&eventual), (0.0, 1.5), "one of them half");
    }

    #[test]
    fn requests_shared_by_a_batch_are_billed_per_payment() {
        let mut shared = work();
        shared.batched_sqs_requests = 0.1;
        let sqs = |report: &CostReport| {
            report
                .lines
                .iter()
                .find(|line| line.item.starts_with("SQS"))
                .unwrap()
                .per_million_payments
        };
        let added = sqs(&per_million(&shared, &PRICES)) - sqs(&per_million(&work(), &PRICES));
        assert!((added - 0.04).abs() < 1e-9, "{added}");
    }

    #[test]
    fn a_payment_costs_the_sum_of_its_lines() {
        let report = per_million(&work(), &PRICES);
        let sum: f64 = report
            .lines
            .iter()
            .map(|line| line.per_million_payments)
            .sum();
        assert!((sum - report.per_million_payments).abs() < 1e-9);
        let line = |item: &str| {
            report
                .lines
                .iter()
                .find(|line| line.item.starts_with(item))
                .unwrap()
                .per_million_payments
        };
        assert!((line("API Gateway") - 1.0).abs() < 1e-9);
        assert!((line("Lambda request") - 0.4).abs() < 1e-9);
        // 10 ms + 40 ms at 128 MB: 0.00625 GB-s per payment.
        assert!((line("Lambda duration") - 0.006_25 * 13.333_4).abs() < 1e-6);
        // 5 deliveries + receive and delete per message (batch of 1).
        assert!((line("SQS") - 7.0 * 0.4).abs() < 1e-9);
        assert!((line("EventBridge") - 5.0).abs() < 1e-9);
        // 20 WRU, 1 RRU.
        assert!((line("DynamoDB on-demand write") - 20.0 * 0.625).abs() < 1e-9);
        assert!((line("DynamoDB on-demand read") - 0.125).abs() < 1e-9);
    }

    #[test]
    fn downstream_queues_add_their_mappings_requests() {
        let mut downstream = work();
        downstream.other_consumed.push(Consumption {
            queue: "AuditTrailQueue".into(),
            messages: 2.0,
            batch_size: 10.0,
        });
        let sqs = |report: &CostReport| {
            report
                .lines
                .iter()
                .find(|line| line.item.starts_with("SQS"))
                .unwrap()
                .quantity
        };
        // Two messages in batches of 10: a fifth of a receive and a fifth of a delete.
        let added = sqs(&per_million(&downstream, &PRICES)) - sqs(&per_million(&work(), &PRICES));
        assert!((added - 0.4).abs() < 1e-9);
    }

    #[test]
    fn step_functions_add_transitions_or_requests_and_drop_the_queue() {
        let report = per_million(&work(), &PRICES);
        // 6 transitions at $25 per million: $150 per million payments on top of the work.
        assert!(report.step_functions_standard > report.per_million_payments + 140.0);
        assert!(report.step_functions_express > report.per_million_payments - 3.0 * 0.4);
    }
}
