//! The bare runtime plus what every paysaga function sets up: `aws_config::load_defaults` and
//! DynamoDB, SQS and EventBridge clients. Answers `{}` without calling AWS.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let clients = (
        aws_sdk_dynamodb::Client::new(&config),
        aws_sdk_sqs::Client::new(&config),
        aws_sdk_eventbridge::Client::new(&config),
    );
    let clients = &clients;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        let _ = clients;
        Ok::<_, Error>(Value::Object(Default::default()))
    }))
    .await
}
