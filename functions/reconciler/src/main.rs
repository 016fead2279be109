//! Start-up of the `reconciler` function: configuration, clients, tracing; then run.

use std::sync::Arc;

use lambda_toolkit::aws::delays::SqsMessageDelay;
use lambda_toolkit::aws::{sdk_config, sqs_consumer};
use lambda_toolkit::metrics::MetricsSink;
use paysaga_aws::{
    DynamoDbLedger, DynamoDbParking, EventBridgePublisher, METRICS_NAMESPACE, TableNames,
};
use paysaga_domain::events::{PAYMENT_REQUESTED, PAYOUT_REQUESTED, TOP_UP_REQUESTED};
use reconciler::{Config, Reconciler};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let config = lambda_toolkit::env::load(Config::from_env)?;
    let sdk = sdk_config().await?;
    let handler = Reconciler {
        // Read at a payment's deadline, long after its writes: eventually consistent will do.
        log: Arc::new(
            DynamoDbLedger::from_config(
                &sdk,
                TableNames::payment_logs_and_holds(config.payments_table, config.wallets_table),
            )
            .reading_history_eventually(),
        ),
        // An overdue payment's request, announced again; nothing else.
        events: Arc::new(EventBridgePublisher::from_config(
            &sdk,
            config.event_bus_name,
            &[PAYMENT_REQUESTED, TOP_UP_REQUESTED, PAYOUT_REQUESTED],
        )),
        // A parked message of a terminal payment, marked settled; nothing else.
        parking: Arc::new(DynamoDbParking::from_config(
            &sdk,
            config.parked_messages_table,
        )),
        settings: config.settings,
    };
    let metrics = MetricsSink::stdout(METRICS_NAMESPACE, "reconciler");
    let consumer = sqs_consumer(handler, metrics, &config.consumer, &sdk)
        .delaying_retries_with(Arc::new(SqsMessageDelay::from_config(&sdk)));
    consumer.run().await.map_err(anyhow::Error::from_boxed)
}
