//! A stream trigger's `FilterCriteria`: which records reach the function. A record is
//! delivered when it matches one of the trigger's patterns (every record when there is none);
//! a record filtered out counts as processed, as in AWS.
//!
//! Patterns are EventBridge event patterns matched against the record's event JSON (the
//! `Records[]` entry the function would get), of which local-lambda plays this subset:
//! nested objects whose leaves are lists of literal values (strings, numbers, booleans,
//! `null`), `{"prefix": "..."}` and `{"exists": true|false}`. Anything else (`anything-but`,
//! `numeric`, `suffix`, `$or`, ...) is refused when the wiring is loaded, so a pattern never
//! silently matches differently from AWS.
//!
//! As in EventBridge: every field of a pattern must match; a leaf list matches when one of its
//! entries does; an event array matches when one of its elements does; a string never equals a
//! number; `exists` looks at leaf values only, so `{"OldImage": [{"exists": true}]}` never
//! matches (`OldImage` is an object) while `{"OldImage": {"pk": {"S": [{"exists": true}]}}}`
//! does when the record has an old image.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum FilterPatternError {
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("a pattern is a JSON object of fields")]
    NotAnObject,
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
    #[error(
        "{path}: {what} is not supported locally (local-lambda plays literal values, \
         {{\"prefix\": ...}} and {{\"exists\": ...}})"
    )]
    Unsupported { path: String, what: String },
}

/// One parsed `FilterCriteria.Filters[].Pattern`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPattern {
    fields: BTreeMap<String, PatternNode>,
}

/// What a pattern says about one field of the event.
#[derive(Debug, Clone, PartialEq)]
enum PatternNode {
    /// The field is an object whose fields match these.
    Fields(BTreeMap<String, PatternNode>),
    /// The field's value (or one of its elements) matches one of these.
    AnyOf(Vec<ValueMatcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum ValueMatcher {
    /// Equal to this string, number, boolean or null (numbers by value).
    Literal(Value),
    /// A string starting with this.
    Prefix(String),
    /// The field has a leaf value (`true`), or has none (`false`).
    Exists(bool),
}

impl FromStr for FilterPattern {
    type Err = FilterPatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let pattern: Value = serde_json::from_str(text).map_err(FilterPatternError::NotJson)?;
        let Value::Object(fields) = pattern else {
            return Err(FilterPatternError::NotAnObject);
        };
        Ok(FilterPattern {
            fields: parse_fields(&fields, "")?,
        })
    }
}

impl FilterPattern {
    /// Whether a record's event JSON matches the pattern.
    pub fn matches(&self, event: &Value) -> bool {
        fields_match(&self.fields, event)
    }
}

/// Whether a record is delivered under a trigger's patterns: it matches one of them, or there
/// are none.
pub fn delivered(patterns: &[FilterPattern], event: &Value) -> bool {
    patterns.is_empty() || patterns.iter().any(|pattern| pattern.matches(event))
}

fn parse_fields(
    fields: &serde_json::Map<String, Value>,
    path: &str,
) -> Result<BTreeMap<String, PatternNode>, FilterPatternError> {
    if fields.is_empty() {
        return Err(invalid(
            if path.is_empty() { "(pattern)" } else { path },
            "an empty object matches nothing",
        ));
    }
    fields
        .iter()
        .map(|(name, value)| {
            let path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            if name == "$or" {
                return Err(FilterPatternError::Unsupported {
                    path,
                    what: "\"$or\"".to_owned(),
                });
            }
            Ok((name.clone(), parse_node(value, &path)?))
        })
        .collect()
}

fn parse_node(value: &Value, path: &str) -> Result<PatternNode, FilterPatternError> {
    match value {
        Value::Object(fields) => Ok(PatternNode::Fields(parse_fields(fields, path)?)),
        Value::Array(entries) if entries.is_empty() => {
            Err(invalid(path, "an empty list matches nothing"))
        }
        Value::Array(entries) => entries
            .iter()
            .map(|entry| parse_matcher(entry, path))
            .collect::<Result<_, _>>()
            .map(PatternNode::AnyOf),
        other => Err(invalid(
            path,
            &format!("expected an object or a list of values, found {other}"),
        )),
    }
}

fn parse_matcher(entry: &Value, path: &str) -> Result<ValueMatcher, FilterPatternError> {
    let Value::Object(operator) = entry else {
        if entry.is_array() {
            return Err(invalid(path, "a list inside a list"));
        }
        return Ok(ValueMatcher::Literal(entry.clone()));
    };
    let mut operators = operator.iter();
    let (Some((name, argument)), None) = (operators.next(), operators.next()) else {
        return Err(invalid(path, &format!("{entry} is not one operator")));
    };
    match (name.as_str(), argument) {
        ("prefix", Value::String(prefix)) => Ok(ValueMatcher::Prefix(prefix.clone())),
        ("exists", Value::Bool(exists)) => Ok(ValueMatcher::Exists(*exists)),
        ("prefix" | "exists", _) => Err(FilterPatternError::Unsupported {
            path: path.to_owned(),
            what: format!("{entry}"),
        }),
        (other, _) => Err(FilterPatternError::Unsupported {
            path: path.to_owned(),
            what: format!("the {other:?} operator"),
        }),
    }
}

fn invalid(path: &str, problem: &str) -> FilterPatternError {
    FilterPatternError::Invalid {
        path: path.to_owned(),
        problem: problem.to_owned(),
    }
}

fn fields_match(fields: &BTreeMap<String, PatternNode>, value: &Value) -> bool {
    fields
        .iter()
        .all(|(name, node)| node_matches(node, value.get(name)))
}

fn node_matches(node: &PatternNode, value: Option<&Value>) -> bool {
    match node {
        PatternNode::Fields(fields) => match value {
            Some(object @ Value::Object(_)) => fields_match(fields, object),
            Some(Value::Array(elements)) if elements.iter().any(Value::is_object) => elements
                .iter()
                .any(|element| element.is_object() && fields_match(fields, element)),
            // No such object: none of the fields below exists (what `exists: false` asks).
            _ => fields.values().all(|node| node_matches(node, None)),
        },
        PatternNode::AnyOf(matchers) => matchers.iter().any(|matcher| matcher.matches(value)),
    }
}

impl ValueMatcher {
    fn matches(&self, value: Option<&Value>) -> bool {
        match self {
            ValueMatcher::Exists(wanted) => *wanted == value.is_some_and(is_leaf),
            ValueMatcher::Literal(literal) => {
                leaves(value).any(|leaf| literal_equals(literal, leaf))
            }
            ValueMatcher::Prefix(prefix) => {
                leaves(value).any(|leaf| leaf.as_str().is_some_and(|text| text.starts_with(prefix)))
            }
        }
    }
}

/// A value EventBridge sees as (a list of) leaf values: anything but an object or an empty list.
fn is_leaf(value: &Value) -> bool {
    match value {
        Value::Object(_) => false,
        Value::Array(elements) => !elements.is_empty(),
        _ => true,
    }
}

/// The value itself, or the elements of an array.
fn leaves(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    let (single, elements) = match value {
        Some(Value::Array(elements)) => (None, elements.as_slice()),
        other => (other, [].as_slice()),
    };
    single.into_iter().chain(elements)
}

fn literal_equals(literal: &Value, value: &Value) -> bool {
    match (literal, value) {
        (Value::Number(wanted), Value::Number(found)) => wanted.as_f64() == found.as_f64(),
        (wanted, found) => wanted == found,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pattern(text: &str) -> FilterPattern {
        text.parse()
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn payment_log_entry(event_name: &str, step: &str) -> Value {
        json!({
            "eventID": "1", "eventName": event_name, "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {
                "Keys": {"payment_id": {"S": "p-1"}, "version": {"N": "1"}},
                "NewImage": {
                    "payment_id": {"S": "p-1"}, "version": {"N": "1"}, "step": {"S": step},
                    "tags": {"SS": ["urgent", "eu"]}
                },
                "SequenceNumber": "100", "SizeBytes": 60, "StreamViewType": "NEW_IMAGE"
            },
            "eventSourceARN": "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/x"
        })
    }

    /// The template's EventRelayFunction PaymentLog filter.
    const PAYMENT_LOG: &str = r#"{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"step": {"S": ["REQUESTED", "COMPLETED", "FAILED"]}}}}"#;

    #[test]
    fn the_payment_log_filter_lets_requests_and_outcomes_through() {
        let filter = pattern(PAYMENT_LOG);
        assert!(filter.matches(&payment_log_entry("INSERT", "REQUESTED")));
        assert!(filter.matches(&payment_log_entry("INSERT", "FAILED")));
        assert!(!filter.matches(&payment_log_entry("INSERT", "FUNDS_RESERVED")));
        assert!(!filter.matches(&payment_log_entry("MODIFY", "COMPLETED")));
        let mut removed = payment_log_entry("REMOVE", "COMPLETED");
        removed["dynamodb"]
            .as_object_mut()
            .expect("object")
            .remove("NewImage");
        assert!(!filter.matches(&removed));
    }

    #[test]
    fn prefix_exists_numbers_and_arrays_match_as_in_eventbridge() {
        let record = payment_log_entry("INSERT", "REQUESTED");
        assert!(
            pattern(r#"{"eventSourceARN": [{"prefix": "arn:aws:dynamodb:"}]}"#).matches(&record)
        );
        assert!(!pattern(r#"{"eventSourceARN": [{"prefix": "arn:aws:sqs:"}]}"#).matches(&record));
        // Numbers by value; never a number for a string.
        assert!(pattern(r#"{"dynamodb": {"SizeBytes": [60.0]}}"#).matches(&record));
        assert!(!pattern(r#"{"dynamodb": {"SizeBytes": ["60"]}}"#).matches(&record));
        assert!(!pattern(r#"{"dynamodb": {"Keys": {"version": {"N": [1]}}}}"#).matches(&record));
        assert!(pattern(r#"{"dynamodb": {"Keys": {"version": {"N": ["1"]}}}}"#).matches(&record));
        // One element of an array is enough.
        assert!(
            pattern(r#"{"dynamodb": {"NewImage": {"tags": {"SS": ["eu"]}}}}"#).matches(&record)
        );
        // exists looks at leaves.
        let has_old_image =
            r#"{"dynamodb": {"OldImage": {"payment_id": {"S": [{"exists": true}]}}}}"#;
        let no_old_image =
            r#"{"dynamodb": {"OldImage": {"payment_id": {"S": [{"exists": false}]}}}}"#;
        assert!(!pattern(has_old_image).matches(&record));
        assert!(pattern(no_old_image).matches(&record));
        assert!(!pattern(r#"{"dynamodb": {"NewImage": [{"exists": true}]}}"#).matches(&record));
        assert!(
            pattern(r#"{"dynamodb": {"NewImage": {"step": {"S": [{"exists": true}]}}}}"#)
                .matches(&record)
        );
        // Either of two literals, or a literal and an operator.
        assert!(pattern(r#"{"eventName": ["MODIFY", {"prefix": "INS"}]}"#).matches(&record));
    }

    #[test]
    fn a_record_is_delivered_when_it_matches_any_pattern_or_there_is_none() {
        let record = payment_log_entry("MODIFY", "COMPLETED");
        assert!(delivered(&[], &record));
        let inserts = pattern(r#"{"eventName": ["INSERT"]}"#);
        let modifies = pattern(r#"{"eventName": ["MODIFY"]}"#);
        assert!(!delivered(std::slice::from_ref(&inserts), &record));
        assert!(delivered(&[inserts, modifies], &record));
    }

    #[test]
    fn what_local_lambda_cannot_play_is_refused() {
        for (text, expected) in [
            ("not json", "not JSON"),
            (r#"["INSERT"]"#, "a JSON object"),
            ("{}", "empty object"),
            (r#"{"eventName": []}"#, "eventName: an empty list"),
            (r#"{"eventName": "INSERT"}"#, "eventName: expected"),
            (r#"{"eventName": [["INSERT"]]}"#, "a list inside a list"),
            (
                r#"{"eventName": [{"anything-but": ["REMOVE"]}]}"#,
                "\"anything-but\" operator is not supported",
            ),
            (
                r#"{"dynamodb": {"SizeBytes": [{"numeric": [">", 0]}]}}"#,
                "dynamodb.SizeBytes: the \"numeric\" operator",
            ),
            (
                r#"{"eventName": [{"prefix": {"equals-ignore-case": "ins"}}]}"#,
                "is not supported",
            ),
            (r#"{"eventName": [{"exists": "yes"}]}"#, "is not supported"),
            (
                r#"{"eventName": [{"prefix": "I", "exists": true}]}"#,
                "is not one operator",
            ),
            (r#"{"$or": [{"eventName": ["INSERT"]}]}"#, "$or"),
        ] {
            let error = text.parse::<FilterPattern>().expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
