//! The AWS API calls a function made, read from the lines `lambda_toolkit::aws::calls::AwsCallLog`
//! logs (`AWS_LAMBDA_LOG_FORMAT=JSON`, `RUST_LOG=info,lambda_toolkit::aws_call=debug`), per
//! invocation (the runtime's `requestId` span).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// What the functions' environment needs for the lines to be there.
pub const LOG_ENVIRONMENT: [(&str, &str); 2] = [
    ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
    ("RUST_LOG", "info,lambda_toolkit::aws_call=debug"),
];

/// Requests and the items they carried, by `Service.Operation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Calls(pub BTreeMap<String, Count>);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    pub requests: u32,
    /// Items of batches and transactions (1 per request otherwise).
    pub items: u32,
    /// Of those items, the ones read eventually consistent (half a read unit each).
    #[serde(skip_serializing_if = "is_zero")]
    pub eventually_consistent: u32,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

impl Calls {
    /// The calls logged in `lines` during the invocation `request_id`.
    pub fn of_invocation(lines: &[String], request_id: &str) -> Self {
        let mut calls = Calls::default();
        for line in lines {
            let Ok(entry) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let fields = &entry["fields"];
            if fields["message"] != "aws call" || !in_invocation(&entry, request_id) {
                continue;
            }
            let (Some(service), Some(operation)) =
                (fields["service"].as_str(), fields["operation"].as_str())
            else {
                continue;
            };
            let count = calls.0.entry(format!("{service}.{operation}")).or_default();
            let items = fields["items"]
                .as_u64()
                .map_or(1, |items| u32::try_from(items).unwrap_or(u32::MAX));
            count.requests += 1;
            count.items += items;
            if fields["eventually_consistent"] == true {
                count.eventually_consistent += items;
            }
        }
        calls
    }

    pub fn requests(&self) -> u32 {
        self.0.values().map(|count| count.requests).sum()
    }

    pub fn count(&self, call: &str) -> Count {
        self.0.get(call).copied().unwrap_or_default()
    }

    /// These calls but `call`'s.
    pub fn without(&self, call: &str) -> Calls {
        let mut rest = self.clone();
        rest.0.remove(call);
        rest
    }

    /// Both sets of calls together.
    pub fn plus(&self, other: &Calls) -> Calls {
        let mut sum = self.clone();
        for (call, count) in &other.0 {
            let total = sum.0.entry(call.clone()).or_default();
            total.requests += count.requests;
            total.items += count.items;
            total.eventually_consistent += count.eventually_consistent;
        }
        sum
    }

    /// `DynamoDB.TransactWriteItems ×4, EventBridge.PutEvents ×1, ...`
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(call, count)| format!("{call} ×{}", count.requests))
            .collect();
        parts.join(", ")
    }
}

/// Whether a JSON log line was written inside the runtime's span of `request_id`.
fn in_invocation(entry: &Value, request_id: &str) -> bool {
    let spans = entry["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&entry["span"]));
    spans
        .into_iter()
        .any(|span| span["requestId"] == request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(request_id: &str, service: &str, operation: &str, items: u64) -> String {
        serde_json::json!({
            "level": "DEBUG",
            "fields": {"message": "aws call", "service": service, "operation": operation, "items": items, "eventually_consistent": operation == "GetItem"},
            "span": {"name": "run"},
            "spans": [{"name": "Lambda runtime invoke", "requestId": request_id}, {"name": "run"}],
        })
        .to_string()
    }

    #[test]
    fn calls_are_counted_per_invocation_with_their_items() {
        let lines = vec![
            line("a", "DynamoDB", "TransactWriteItems", 3),
            line("a", "DynamoDB", "TransactWriteItems", 2),
            line("a", "EventBridge", "PutEvents", 4),
            line("b", "DynamoDB", "Query", 1),
            line("b", "DynamoDB", "GetItem", 1),
            "not json".to_owned(),
            serde_json::json!({"fields": {"message": "payment saga ran"}}).to_string(),
        ];
        let a = Calls::of_invocation(&lines, "a");
        assert_eq!(a.requests(), 3);
        assert_eq!(
            a.count("DynamoDB.TransactWriteItems"),
            Count {
                requests: 2,
                items: 5,
                eventually_consistent: 0
            }
        );
        assert_eq!(
            a.count("EventBridge.PutEvents"),
            Count {
                requests: 1,
                items: 4,
                eventually_consistent: 0
            }
        );
        let b = Calls::of_invocation(&lines, "b");
        assert_eq!(b.summary(), "DynamoDB.GetItem ×1, DynamoDB.Query ×1");
        assert_eq!(b.count("DynamoDB.GetItem").eventually_consistent, 1);
        assert_eq!(b.count("DynamoDB.Query").eventually_consistent, 0);
        assert_eq!(a.plus(&b).requests(), 5);
    }
}
