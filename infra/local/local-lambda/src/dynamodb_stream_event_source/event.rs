//! The event Lambda builds from DynamoDB stream records: `{"Records": [...]}`, each record as
//! `aws_lambda_events::event::dynamodb::EventRecord` reads it, with attribute values in
//! DynamoDB JSON. Built one record at a time, so a trigger's filters are matched against
//! exactly what the function would get.

use std::collections::HashMap;

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record};
use aws_smithy_types::DateTime;
use axum::body::Bytes;
use serde_json::{Map, Value, json};

/// What DynamoDB Streams' `GetRecords` and Lambda both call the record format.
const EVENT_VERSION: &str = "1.1";
const EVENT_SOURCE: &str = "aws:dynamodb";

/// One record of the event. `region` is the mapping's (DynamoDB Local answers `ddblocal`);
/// `stream_arn` is the stream's ARN as DynamoDB Streams gives it.
pub fn record_json(record: &Record, stream_arn: &str, region: &str) -> Value {
    let mut fields = Map::new();
    fields.insert(
        "eventID".to_owned(),
        json!(record.event_id.as_deref().unwrap_or_default()),
    );
    fields.insert(
        "eventName".to_owned(),
        json!(
            record
                .event_name
                .as_ref()
                .map(|name| name.as_str())
                .unwrap_or_default()
        ),
    );
    fields.insert(
        "eventVersion".to_owned(),
        json!(record.event_version.as_deref().unwrap_or(EVENT_VERSION)),
    );
    fields.insert(
        "eventSource".to_owned(),
        json!(record.event_source.as_deref().unwrap_or(EVENT_SOURCE)),
    );
    fields.insert("awsRegion".to_owned(), json!(region));
    fields.insert("dynamodb".to_owned(), change_json(record));
    fields.insert("eventSourceARN".to_owned(), json!(stream_arn));
    // Present on the deletions of Time to Live.
    if let Some(identity) = &record.user_identity {
        fields.insert(
            "userIdentity".to_owned(),
            json!({
                "type": identity.r#type.as_deref().unwrap_or_default(),
                "principalId": identity.principal_id.as_deref().unwrap_or_default(),
            }),
        );
    }
    Value::Object(fields)
}

/// The record's `dynamodb` object.
fn change_json(record: &Record) -> Value {
    let mut fields = Map::new();
    let Some(change) = &record.dynamodb else {
        fields.insert("SizeBytes".to_owned(), json!(0));
        return Value::Object(fields);
    };
    if let Some(created) = &change.approximate_creation_date_time {
        fields.insert(
            "ApproximateCreationDateTime".to_owned(),
            epoch_seconds(created),
        );
    }
    for (name, item) in [
        ("Keys", &change.keys),
        ("NewImage", &change.new_image),
        ("OldImage", &change.old_image),
    ] {
        if let Some(item) = item {
            fields.insert(name.to_owned(), item_json(item));
        }
    }
    if let Some(sequence_number) = &change.sequence_number {
        fields.insert("SequenceNumber".to_owned(), json!(sequence_number));
    }
    fields.insert(
        "SizeBytes".to_owned(),
        json!(change.size_bytes.unwrap_or_default()),
    );
    if let Some(view) = &change.stream_view_type {
        fields.insert("StreamViewType".to_owned(), json!(view.as_str()));
    }
    Value::Object(fields)
}

/// Epoch seconds as a JSON number: whole (AWS rounds down to the second) unless the stream
/// gives a fraction.
pub fn epoch_seconds(time: &DateTime) -> Value {
    if time.subsec_nanos() == 0 {
        json!(time.secs())
    } else {
        json!(time.as_secs_f64())
    }
}

fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(name, value)| (name.clone(), attribute_json(value)))
            .collect(),
    )
}

/// One attribute value in DynamoDB JSON (`{"S": ..}`, `{"N": ".."}`, binary as base64, ...).
fn attribute_json(value: &AttributeValue) -> Value {
    let base64 = |blob: &aws_smithy_types::Blob| json!(aws_smithy_types::base64::encode(blob));
    match value {
        AttributeValue::S(text) => json!({ "S": text }),
        AttributeValue::N(number) => json!({ "N": number }),
        AttributeValue::B(blob) => json!({ "B": base64(blob) }),
        AttributeValue::Bool(flag) => json!({ "BOOL": flag }),
        AttributeValue::Null(flag) => json!({ "NULL": flag }),
        AttributeValue::M(item) => json!({ "M": item_json(item) }),
        AttributeValue::L(values) => {
            json!({ "L": values.iter().map(attribute_json).collect::<Vec<_>>() })
        }
        AttributeValue::Ss(texts) => json!({ "SS": texts }),
        AttributeValue::Ns(numbers) => json!({ "NS": numbers }),
        AttributeValue::Bs(blobs) => json!({ "BS": blobs.iter().map(base64).collect::<Vec<_>>() }),
        // A type newer than this SDK: nothing to render it as.
        _ => json!({ "NULL": true }),
    }
}

/// The invocation payload: `{"Records":[...]}` from records already serialised one by one.
pub fn stream_event<'record>(records: impl IntoIterator<Item = &'record str>) -> Bytes {
    let mut payload = String::from(r#"{"Records":["#);
    for (position, record) in records.into_iter().enumerate() {
        if position > 0 {
            payload.push(',');
        }
        payload.push_str(record);
    }
    payload.push_str("]}");
    Bytes::from(payload)
}

/// Bytes `{"Records":[]}` adds around the records, and `,` between them.
pub const fn event_overhead(records: usize) -> usize {
    r#"{"Records":[]}"#.len() + records.saturating_sub(1)
}

#[cfg(test)]
pub(crate) mod tests {
    use aws_sdk_dynamodbstreams::primitives::Blob;
    use aws_sdk_dynamodbstreams::types::{
        Identity, OperationType, StreamRecord as SdkStreamRecord, StreamViewType,
    };

    use super::*;

    pub(crate) const STREAM_ARN: &str = "arn:aws:dynamodb:ddblocal:000000000000:table/paysaga-local-payments/stream/2026-12-06T10:06:04.804";

    /// When every test record was written: a minute ago, whole seconds. Recent, because the
    /// mapping gives up on a record older than the stream keeps one (24 hours, like Lambda's
    /// `MaximumRecordAgeInSeconds` of -1): a fixed date turned every retry test into a give-up
    /// a day after it was written.
    pub(crate) fn created_at() -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is past 1970");
        i64::try_from(now.as_secs()).expect("a date in range") - 60
    }

    /// A record as DynamoDB Local's GetRecords returns it.
    pub(crate) fn sdk_record(
        sequence_number: &str,
        event_name: OperationType,
        new_image: Option<HashMap<String, AttributeValue>>,
    ) -> Record {
        let keys = HashMap::from([
            ("payment_id".to_owned(), AttributeValue::S("p-1".to_owned())),
            (
                "version".to_owned(),
                AttributeValue::N(sequence_number.to_owned()),
            ),
        ]);
        Record::builder()
            .event_id(format!("event-{sequence_number}"))
            .event_name(event_name)
            .event_version("1.1")
            .event_source("aws:dynamodb")
            .aws_region("ddblocal")
            .dynamodb(
                SdkStreamRecord::builder()
                    .approximate_creation_date_time(DateTime::from_secs(created_at()))
                    .set_keys(Some(keys))
                    .set_new_image(new_image)
                    .sequence_number(sequence_number)
                    .size_bytes(32)
                    .stream_view_type(StreamViewType::NewImage)
                    .build(),
            )
            .build()
    }

    pub(crate) fn every_type_of_attribute() -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("payment_id".to_owned(), AttributeValue::S("p-1".to_owned())),
            ("amount".to_owned(), AttributeValue::N("12.50".to_owned())),
            ("raw".to_owned(), AttributeValue::B(Blob::new(vec![1, 2]))),
            ("settled".to_owned(), AttributeValue::Bool(true)),
            ("note".to_owned(), AttributeValue::Null(true)),
            (
                "detail".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "steps".to_owned(),
                    AttributeValue::L(vec![
                        AttributeValue::S("REQUESTED".to_owned()),
                        AttributeValue::Null(true),
                    ]),
                )])),
            ),
            (
                "tags".to_owned(),
                AttributeValue::Ss(vec!["eu".to_owned(), "urgent".to_owned()]),
            ),
            (
                "limits".to_owned(),
                AttributeValue::Ns(vec!["1".to_owned(), "2.5".to_owned()]),
            ),
            (
                "keys".to_owned(),
                AttributeValue::Bs(vec![Blob::new(vec![255]), Blob::new(vec![0, 1])]),
            ),
        ])
    }

    #[test]
    fn a_record_has_the_shape_lambda_sends() {
        let record = sdk_record(
            "000000000000000000001",
            OperationType::Insert,
            Some(every_type_of_attribute()),
        );
        let json = record_json(&record, STREAM_ARN, "us-east-1");
        assert_eq!(json["eventID"], "event-000000000000000000001");
        assert_eq!(json["eventName"], "INSERT");
        assert_eq!(json["eventVersion"], "1.1");
        assert_eq!(json["eventSource"], "aws:dynamodb");
        assert_eq!(json["awsRegion"], "us-east-1");
        assert_eq!(json["eventSourceARN"], STREAM_ARN);
        let change = &json["dynamodb"];
        let created = record
            .dynamodb()
            .and_then(|change| change.approximate_creation_date_time())
            .map(|time| time.secs());
        assert_eq!(change["ApproximateCreationDateTime"], json!(created));
        assert_eq!(change["Keys"]["payment_id"], json!({"S": "p-1"}));
        assert_eq!(change["SequenceNumber"], "000000000000000000001");
        assert_eq!(change["SizeBytes"], 32);
        assert_eq!(change["StreamViewType"], "NEW_IMAGE");
        assert_eq!(change.get("OldImage"), None);
        let image = &change["NewImage"];
        assert_eq!(image["amount"], json!({"N": "12.50"}));
        assert_eq!(image["raw"], json!({"B": "AQI="}));
        assert_eq!(image["settled"], json!({"BOOL": true}));
        assert_eq!(image["note"], json!({"NULL": true}));
        assert_eq!(
            image["detail"],
            json!({"M": {"steps": {"L": [{"S": "REQUESTED"}, {"NULL": true}]}}})
        );
        assert_eq!(image["tags"], json!({"SS": ["eu", "urgent"]}));
        assert_eq!(image["limits"], json!({"NS": ["1", "2.5"]}));
        assert_eq!(image["keys"], json!({"BS": ["/w==", "AAE="]}));
        assert_eq!(json.get("userIdentity"), None);
    }

    #[test]
    fn a_removal_by_time_to_live_says_who_removed_it() {
        let mut record = sdk_record("000000000000000000009", OperationType::Remove, None);
        record.user_identity = Some(
            Identity::builder()
                .r#type("Service")
                .principal_id("dynamodb.amazonaws.com")
                .build(),
        );
        let json = record_json(&record, STREAM_ARN, "us-east-1");
        assert_eq!(json["eventName"], "REMOVE");
        assert_eq!(
            json["userIdentity"],
            json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"})
        );
        assert_eq!(json["dynamodb"].get("NewImage"), None);
    }

    fn payload_text(payload: &Bytes) -> &str {
        std::str::from_utf8(payload).expect("JSON is UTF-8")
    }

    #[test]
    fn the_event_deserialises_as_aws_lambda_events_dynamodb_event() {
        let inserted = sdk_record(
            "000000000000000000001",
            OperationType::Insert,
            Some(every_type_of_attribute()),
        );
        let mut modified = sdk_record(
            "000000000000000000002",
            OperationType::Modify,
            Some(every_type_of_attribute()),
        );
        if let Some(change) = &mut modified.dynamodb {
            change.old_image = Some(every_type_of_attribute());
            change.stream_view_type = Some(StreamViewType::NewAndOldImages);
            change.approximate_creation_date_time =
                Some(DateTime::from_secs_and_nanos(1_796_551_561, 500_000_000));
        }
        let removed = sdk_record("000000000000000000003", OperationType::Remove, None);
        let texts: Vec<String> = [inserted, modified, removed]
            .iter()
            .map(|record| record_json(record, STREAM_ARN, "us-east-1").to_string())
            .collect();
        let payload = stream_event(texts.iter().map(String::as_str));
        assert_eq!(
            payload.len(),
            texts.iter().map(String::len).sum::<usize>() + event_overhead(texts.len())
        );

        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_slice(&payload).expect("functions can parse the event");
        let [inserted, modified, removed] = event.records.as_slice() else {
            panic!("three records: {event:?}");
        };
        assert_eq!(inserted.event_name, "INSERT");
        assert_eq!(inserted.event_source_arn.as_deref(), Some(STREAM_ARN));
        assert_eq!(inserted.aws_region, "us-east-1");
        assert_eq!(
            inserted.change.sequence_number.as_deref(),
            Some("000000000000000000001")
        );
        let age = created_at() - inserted.change.approximate_creation_date_time.timestamp();
        assert!(
            (0..=5).contains(&age),
            "written {age} s before the test's clock says"
        );
        // Every attribute type read back as it was written.
        let sent: Value = serde_json::from_str(&texts[0]).expect("JSON");
        let image = serde_json::to_value(&inserted.change.new_image).expect("an item");
        assert_eq!(image, sent["dynamodb"]["NewImage"]);
        assert_eq!(modified.event_name, "MODIFY");
        // aws_lambda_events keeps whole seconds of a fractional time.
        assert_eq!(
            modified.change.approximate_creation_date_time.timestamp(),
            1_796_551_561
        );
        assert!(payload_text(&payload).contains(r#""ApproximateCreationDateTime":1796551561.5"#));
        assert!(!modified.change.old_image.is_empty());
        assert_eq!(removed.event_name, "REMOVE");
        assert!(removed.change.new_image.is_empty());
    }
}
