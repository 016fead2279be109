//! Start-up of the `event-relay` function: configuration, clients, tracing; then run.

use std::sync::Arc;

use aws_lambda_events::dynamodb::Event;
use event_relay::set_aside::SqsSetAside;
use event_relay::{Config, EventRelay};
use lambda_runtime::{LambdaEvent, service_fn};
use lambda_toolkit::aws::sdk_config;
use lambda_toolkit::metrics::MetricsSink;
use paysaga_aws::{
    DynamoDbLedger, EventBridgePublisher, METRICS_NAMESPACE, SqsDeadlineChecks, TableNames,
};
use paysaga_domain::events::{
    FUNDS_DEPOSITED, OPERATOR_ACTION_STARTED, PAYMENT_COMPLETED, PAYMENT_FAILED, PAYMENT_REQUESTED,
    PAYOUT_COMPLETED, PAYOUT_FAILED, PAYOUT_REQUESTED, TOP_UP_COMPLETED, TOP_UP_FAILED,
    TOP_UP_REQUESTED,
};
use paysaga_domain::ports::EventPublisher;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let config = lambda_toolkit::env::load(Config::from_env)?;
    let sdk = sdk_config().await?;
    let bus = EventBridgePublisher::from_config(
        &sdk,
        config.event_bus_name,
        // What the ledger's writes make true, and nothing else.
        &[
            PAYMENT_REQUESTED,
            PAYMENT_COMPLETED,
            PAYMENT_FAILED,
            TOP_UP_REQUESTED,
            TOP_UP_COMPLETED,
            TOP_UP_FAILED,
            PAYOUT_REQUESTED,
            PAYOUT_COMPLETED,
            PAYOUT_FAILED,
            FUNDS_DEPOSITED,
            OPERATOR_ACTION_STARTED,
        ],
    );
    let relay = EventRelay {
        log: Arc::new(DynamoDbLedger::from_config(
            &sdk,
            TableNames::payment_logs_only(config.tables.payments.clone()),
        )),
        events: publisher(bus),
        deadlines: Arc::new(SqsDeadlineChecks::from_config(
            &sdk,
            config.deadline_checks_queue_url,
            config.flow_deadline,
        )),
        set_aside: Arc::new(SqsSetAside::from_config(&sdk, config.set_aside_queue_url)),
        tables: config.tables,
    };
    let metrics = MetricsSink::stdout(METRICS_NAMESPACE, "event-relay");
    let answer = |event: LambdaEvent<Event>| async {
        let counted = metrics.invocation();
        let response = relay.handle(event.payload, &counted).await;
        metrics.flush(counted.into_inner());
        Ok::<_, lambda_runtime::Diagnostic>(response)
    };
    lambda_runtime::run(service_fn(answer))
        .await
        .map_err(anyhow::Error::from_boxed)
}

/// The bus, as the relay publishes to it: in a fault-injection build, failing as the file
/// `event-relay.json` in `PAYSAGA_FAULTS_DIR` says, when that is set.
fn publisher(bus: EventBridgePublisher) -> Arc<dyn EventPublisher> {
    #[cfg(feature = "fault-injection")]
    if let Some(directory) = std::env::var_os("PAYSAGA_FAULTS_DIR") {
        return Arc::new(event_relay::faults::FaultyBus {
            inner: bus,
            faults_file: std::path::Path::new(&directory).join("event-relay.json"),
        });
    }
    Arc::new(bus)
}
