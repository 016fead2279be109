//! Start-up of the `payment-saga` function: configuration, clients, tracing; then run.

use std::sync::Arc;

use lambda_toolkit::aws::delays::SqsMessageDelay;
use lambda_toolkit::aws::{sdk_config, sqs_consumer};
use lambda_toolkit::metrics::MetricsSink;
use payment_saga::consent::{JwtConsent, RING_RS256};
use payment_saga::{Config, PaymentSaga};
use paysaga_aws::{DynamoDbLedger, EventBridgePublisher, METRICS_NAMESPACE};
use paysaga_domain::events::{PAYMENT_REQUESTED, PAYOUT_REQUESTED, TOP_UP_REQUESTED};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let config = lambda_toolkit::env::load(Config::from_env)?;
    let processor = Arc::new(config.processor.processor()?);
    let guarded = processor.clone();
    let consent = &config.consent;
    // The tokens' signatures are verified with ring (consent.rs); a provider set already is
    // kept (a test build's aws-lc, which verifies the same).
    let _ = RING_RS256.install_default();
    let consent = JwtConsent::from_jwks(&consent.jwks, &consent.issuer, &consent.audience)?;
    if consent.key_count() == 0 {
        tracing::warn!(
            "CONSENT_JWKS is empty: payments requested on the bus from outside paysaga are refused"
        );
    }
    let sdk = sdk_config().await?;
    let bus = config.event_bus_name;
    let ledger = Arc::new(DynamoDbLedger::from_config(&sdk, config.resources.tables));
    let handler = PaymentSaga {
        payments: ledger.clone(),
        wallets: ledger,
        consent: Arc::new(consent),
        events: Arc::new(EventBridgePublisher::from_config(
            &sdk,
            bus,
            // Only a payment handed to a fresh delivery (announced again): its outcome is
            // announced by its log's terminal entry, through the event relay.
            &[PAYMENT_REQUESTED, TOP_UP_REQUESTED, PAYOUT_REQUESTED],
        )),
        processor,
        settings: config.saga,
        max_receive_count: config.consumer.max_receive_count,
        circuit: Some(Arc::new(move || guarded.state())),
    };
    let metrics = MetricsSink::stdout(METRICS_NAMESPACE, "payment-saga");
    // A refused reversal is asked again later, not at the queue's next visibility timeout.
    let consumer = sqs_consumer(handler, metrics, &config.consumer, &sdk)
        .delaying_retries_with(Arc::new(SqsMessageDelay::from_config(&sdk)));
    consumer.run().await.map_err(anyhow::Error::from_boxed)
}
