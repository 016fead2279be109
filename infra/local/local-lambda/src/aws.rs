//! The SQS client the pollers use, pointed at the local stack.

use aws_config::BehaviorVersion;
use aws_sdk_sqs::config::{Credentials, Region};

use crate::wiring::LocalAws;

pub async fn sqs_client(aws: &LocalAws) -> aws_sdk_sqs::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(aws.region.clone()))
        .endpoint_url(&aws.endpoint_url)
        .credentials_provider(Credentials::new(
            &aws.access_key_id,
            &aws.secret_access_key,
            None,
            None,
            "local-lambda",
        ))
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

/// An SDK error and its causes on one line ("dispatch failure: io error: ... refused").
pub fn describe_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut description = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        description.push_str(": ");
        description.push_str(&error.to_string());
        cause = error.source();
    }
    description
}
