//! Every AWS API request the functions make, logged at `debug` under the target
//! `paysaga::aws_call` with its service and operation: what `make bench` counts (with
//! `RUST_LOG=info,paysaga::aws_call=debug`). At the default level the lines are filtered out
//! before they are formatted, so production pays nothing for them.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The `tracing` target of the lines.
pub const AWS_CALL_TARGET: &str = "paysaga::aws_call";

/// Logs each attempt of each request (a retry is a request AWS bills too).
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsCallLog;

impl Intercept for AwsCallLog {
    fn name(&self) -> &'static str {
        "AwsCallLog"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            tracing::debug!(
                target: AWS_CALL_TARGET,
                service = metadata.service(),
                operation = metadata.name(),
                "aws call"
            );
        }
        Ok(())
    }
}

/// A DynamoDB client of `config` that logs its calls.
pub fn dynamodb(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(config)
        .interceptor(AwsCallLog)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// An SQS client of `config` that logs its calls.
pub fn sqs(config: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(config)
        .interceptor(AwsCallLog)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// An EventBridge client of `config` that logs its calls.
pub fn eventbridge(config: &aws_config::SdkConfig) -> aws_sdk_eventbridge::Client {
    let config = aws_sdk_eventbridge::config::Builder::from(config)
        .interceptor(AwsCallLog)
        .build();
    aws_sdk_eventbridge::Client::from_conf(config)
}
