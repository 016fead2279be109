//! Start-up of the `dlq-redrive` function: configuration, clients, tracing; then run.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dlq_redrive::{DlqRedriveFunction, Request, handle};
use lambda_runtime::{LambdaEvent, service_fn};
use lambda_toolkit::aws::sdk_config;
use lambda_toolkit::metrics::MetricsSink;
use paysaga_aws::config::number_or;
use paysaga_aws::{DynamoDbJournal, DynamoDbParking, EventBridgeRules, SqsRedriveQueues};
use paysaga_services::redrive::RedriveSettings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let required = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
            .with_context(|| {
                format!("environment variable {name} must be set (the template sets it)")
            })
    };
    let dead_letter_queues: Vec<String> = required("DEAD_LETTER_QUEUES")?
        .split(',')
        .map(|url| url.trim().to_owned())
        .filter(|url| !url.is_empty())
        .collect();
    let defaults = RedriveSettings::default();
    let whole = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
    let settings = RedriveSettings {
        max_per_second: whole(number_or(
            "REDRIVE_MAX_PER_SECOND",
            defaults.max_per_second.into(),
        )?),
        max_messages: whole(number_or(
            "REDRIVE_MAX_MESSAGES",
            defaults.max_messages.into(),
        )?),
        max_redrives: whole(number_or(
            "REDRIVE_MAX_REDRIVES",
            defaults.max_redrives.into(),
        )?),
        visibility: Duration::from_secs(number_or(
            "REDRIVE_VISIBILITY_TIMEOUT_SECONDS",
            defaults.visibility.as_secs(),
        )?),
        ..defaults
    };
    let config = sdk_config().await.context("cannot set up the AWS SDK")?;
    let queues = Arc::new(SqsRedriveQueues::from_config(&config));
    let function = DlqRedriveFunction {
        queues: queues.clone(),
        admin: queues,
        rules: Arc::new(EventBridgeRules::from_config(&config)),
        journal: Arc::new(DynamoDbJournal::from_config(
            &config,
            required("REDRIVE_JOURNAL_TABLE")?,
        )),
        parking: Arc::new(DynamoDbParking::from_config(
            &config,
            required("PARKED_MESSAGES_TABLE")?,
        )),
        dead_letter_queues,
        settings,
        metrics: MetricsSink::stdout("dlq-redrive"),
    };
    // The payload is parsed by the function (`Request::from_payload`), not by the runtime.
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let function = &function;
        async move {
            let (payload, context) = event.into_parts();
            let request = Request::from_payload(payload)?;
            handle(function, LambdaEvent::new(request, context)).await
        }
    }))
    .await
    .map_err(|error| anyhow::anyhow!(error))
}
