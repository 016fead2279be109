//! Start-up of the `dlq-redrive` function: configuration, clients, tracing; then run.

use std::sync::Arc;

use dlq_redrive::{Config, handle};
use lambda_runtime::{LambdaEvent, service_fn};
use lambda_toolkit::aws::sdk_config;
use lambda_toolkit::metrics::MetricsSink;
use paysaga_aws::{
    DynamoDbJournal, DynamoDbParking, EventBridgeRules, METRICS_NAMESPACE, SqsDeadlineChecks,
    SqsRedriveQueues,
};
use paysaga_services::redrive::operator::RedriveService;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let config = lambda_toolkit::env::load(Config::from_env)?;
    let sdk = sdk_config().await?;
    let queues = Arc::new(SqsRedriveQueues::from_config(&sdk));
    let service = RedriveService {
        queues: queues.clone(),
        admin: queues,
        rules: Arc::new(EventBridgeRules::from_config(&sdk)),
        journal: Arc::new(DynamoDbJournal::from_config(&sdk, config.journal_table)),
        parking: Arc::new(DynamoDbParking::from_config(
            &sdk,
            config.parked_messages_table,
        )),
        // Checks for parked messages only, due at once: no delay of their own.
        deadlines: Arc::new(SqsDeadlineChecks::from_config(
            &sdk,
            config.deadline_checks_queue_url,
            std::time::Duration::ZERO,
        )),
        dead_letter_queues: config.dead_letter_queues,
        saga_queues: config.saga_queues,
        settings: config.settings,
    };
    let metrics = MetricsSink::stdout(METRICS_NAMESPACE, "dlq-redrive");
    // The payload is parsed by the function (`Request::from_payload`), not by the runtime,
    // whose refusal would quote the values it refused.
    let answer = |event: LambdaEvent<serde_json::Value>| handle(&service, &metrics, event);
    lambda_runtime::run(service_fn(answer))
        .await
        .map_err(anyhow::Error::from_boxed)
}
