//! The `SqsEvent` Lambda builds from received SQS messages.

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{Message, MessageAttributeValue};

pub fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|message| sqs_record(message, queue_arn, region))
        .collect();
    event
}

/// One record of the event: the message as received (`attributes` holds the system
/// attributes such as `ApproximateReceiveCount` and `SentTimestamp`), plus where it came from.
pub fn sqs_record(message: &Message, queue_arn: &str, region: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id.clone();
    record.receipt_handle = message.receipt_handle.clone();
    record.body = message.body.clone();
    record.md5_of_body = message.md5_of_body.clone();
    record.md5_of_message_attributes = message.md5_of_message_attributes.clone();
    record.attributes = message
        .attributes
        .iter()
        .flatten()
        .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
        .collect();
    record.message_attributes = message
        .message_attributes
        .iter()
        .flatten()
        .map(|(name, value)| (name.clone(), message_attribute(value)))
        .collect();
    record.event_source = Some("aws:sqs".to_owned());
    record.event_source_arn = Some(queue_arn.to_owned());
    record.aws_region = Some(region.to_owned());
    record
}

fn message_attribute(value: &MessageAttributeValue) -> SqsMessageAttribute {
    let mut attribute = SqsMessageAttribute::default();
    attribute.data_type = Some(value.data_type.clone());
    attribute.string_value = value.string_value.clone();
    attribute.binary_value = value
        .binary_value
        .as_ref()
        .map(|blob| base64_data(blob.as_ref()));
    attribute.string_list_values = value.string_list_values.clone().unwrap_or_default();
    attribute.binary_list_values = value
        .binary_list_values
        .iter()
        .flatten()
        .map(|blob| base64_data(blob.as_ref()))
        .collect();
    attribute
}

/// `Base64Data` is `#[non_exhaustive]`: filled through its `DerefMut` to `Vec<u8>`.
fn base64_data(bytes: &[u8]) -> Base64Data {
    let mut data = Base64Data::default();
    data.extend_from_slice(bytes);
    data
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::primitives::Blob;
    use aws_sdk_sqs::types::MessageSystemAttributeName;

    use super::*;

    const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:paysaga-local-PaymentsQueue";

    fn received_message() -> Message {
        Message::builder()
            .message_id("0b2a6c1e-7f3e-4c5d-9a1b-2c3d4e5f6a7b")
            .receipt_handle("handle-1")
            .body(r#"{"detail-type":"PaymentRequested"}"#)
            .md5_of_body("5d41402abc4b2a76b9719d911017c592")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1764072000000")
            .message_attributes(
                "trace",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("abc")
                    .build()
                    .expect("data type is set"),
            )
            .message_attributes(
                "raw",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(Blob::new(b"\x01\x02".to_vec()))
                    .build()
                    .expect("data type is set"),
            )
            .build()
    }

    #[test]
    fn event_json_has_the_shape_lambda_sends() {
        let event = sqs_event(&[received_message()], QUEUE_ARN, "us-east-1");
        let json = serde_json::to_value(&event).expect("event serialises");
        let record = &json["Records"][0];
        assert_eq!(record["messageId"], "0b2a6c1e-7f3e-4c5d-9a1b-2c3d4e5f6a7b");
        assert_eq!(record["receiptHandle"], "handle-1");
        assert_eq!(record["body"], r#"{"detail-type":"PaymentRequested"}"#);
        assert_eq!(record["md5OfBody"], "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(record["attributes"]["SentTimestamp"], "1764072000000");
        assert_eq!(record["messageAttributes"]["trace"]["dataType"], "String");
        assert_eq!(record["messageAttributes"]["trace"]["stringValue"], "abc");
        assert_eq!(record["messageAttributes"]["raw"]["binaryValue"], "AQI=");
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(record["eventSourceARN"], QUEUE_ARN);
        assert_eq!(record["awsRegion"], "us-east-1");
    }

    #[test]
    fn event_round_trips_through_the_type_functions_deserialise() {
        let event = sqs_event(
            &[received_message(), received_message()],
            QUEUE_ARN,
            "us-east-1",
        );
        let json = serde_json::to_vec(&event).expect("event serialises");
        let parsed: SqsEvent = serde_json::from_slice(&json).expect("functions can parse it");
        assert_eq!(parsed, event);
        assert_eq!(parsed.records.len(), 2);
    }
}
