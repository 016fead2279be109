//! Start-up of the `payment-saga` function: configuration, clients, tracing; then run.

use std::sync::Arc;

use lambda_toolkit::aws::delays::SqsMessageDelay;
use lambda_toolkit::aws::{sdk_config, sqs_consumer};
use lambda_toolkit::metrics::MetricsSink;
use payment_saga::consent::{JwtConsent, RING_RS256};
use payment_saga::{Config, PaymentSaga};
use paysaga_aws::{DynamoDbLedger, METRICS_NAMESPACE};

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
    let ledger = Arc::new(DynamoDbLedger::from_config(&sdk, config.resources.tables));
    let handler = PaymentSaga {
        payments: ledger.clone(),
        wallets: ledger,
        consent: Arc::new(consent),
        processor,
        settings: config.saga,
        max_receive_count: config.consumer.max_receive_count,
        circuit: Some(Arc::new(move || guarded.state())),
    };
    let metrics = MetricsSink::stdout(METRICS_NAMESPACE, "payment-saga");
    // A refused reversal is asked again later, not at the queue's next visibility timeout; an
    // unfinished compensation on its last delivery is sent again as a fresh message. The saga
    // publishes nothing: what it does is announced by its log, through the event relay.
    let consumer = sqs_consumer(handler, metrics, &config.consumer, &sdk)
        .delaying_retries_with(Arc::new(SqsMessageDelay::from_config(&sdk)));
    consumer.run().await.map_err(anyhow::Error::from_boxed)
}
