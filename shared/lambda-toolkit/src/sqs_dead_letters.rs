//! One consumer, several queues: a message the consumer gives up on goes to the dead-letter
//! queue of the queue it came from (its `eventSourceARN`), so a redrive sends it back there.
//!
//! A function that reads two queues (ordinary and express orders, say, each with its own
//! concurrency), each with its own DLQ, pairs each source queue's ARN with its DLQ's URL in its
//! `DEAD_LETTER_QUEUES` variable:
//!
//! ```
//! use lambda_toolkit::sqs_dead_letters::parse_routes;
//!
//! let routes = parse_routes(
//!     "DEAD_LETTER_QUEUES",
//!     "arn:aws:sqs:us-east-1:1:orders=https://sqs/1/orders-dlq,\
//!      arn:aws:sqs:us-east-1:1:express-orders=https://sqs/1/express-orders-dlq",
//! )
//! .expect("two routes");
//! assert_eq!(routes[1].0, "arn:aws:sqs:us-east-1:1:express-orders");
//! assert_eq!(routes[1].1, "https://sqs/1/express-orders-dlq");
//! assert!(parse_routes("DEAD_LETTER_QUEUES", "no-equals-sign").is_err());
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsMessage;

use crate::env::ConfigError;
use crate::sqs_batch::{DeadLetterError, DeadLetterQueue, FailureRecord};

/// The dead-letter queue of each source queue, by the source's ARN.
pub struct DeadLettersBySource {
    routes: HashMap<String, Arc<dyn DeadLetterQueue>>,
}

impl DeadLettersBySource {
    pub fn new(routes: impl IntoIterator<Item = (String, Arc<dyn DeadLetterQueue>)>) -> Self {
        Self {
            routes: routes.into_iter().collect(),
        }
    }
}

#[async_trait]
impl DeadLetterQueue for DeadLettersBySource {
    /// Sends the message to its source queue's DLQ. A message from a queue without a route is
    /// refused: the consumer then reports it failed, and its queue's redrive policy moves it to
    /// the right DLQ (without a failure record) rather than to another queue's.
    async fn send(
        &self,
        message: &SqsMessage,
        record: &FailureRecord,
    ) -> Result<(), DeadLetterError> {
        let source = message.event_source_arn.as_deref().unwrap_or_default();
        match self.routes.get(source) {
            Some(dead_letters) => dead_letters.send(message, record).await,
            None => Err(DeadLetterError(format!(
                "no dead-letter queue is configured for source queue {source:?}"
            ))),
        }
    }
}

/// Pairs `<source queue ARN>=<dead-letter queue URL>`, comma-separated, from the variable
/// `name` whose value is `value`.
pub fn parse_routes(name: &'static str, value: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let invalid = || ConfigError::Invalid {
        name,
        expected: "comma-separated <source queue ARN>=<dead-letter queue URL> pairs",
        value: value.to_owned(),
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((arn, url)) if arn.starts_with("arn:") && !url.trim().is_empty() => {
                Ok((arn.trim().to_owned(), url.trim().to_owned()))
            }
            _ => Err(invalid()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::Utc;

    use super::*;
    use crate::sqs_batch::MessageFailure;

    #[derive(Default)]
    struct Recorded(Mutex<Vec<String>>);

    #[async_trait]
    impl DeadLetterQueue for Recorded {
        async fn send(
            &self,
            message: &SqsMessage,
            _: &FailureRecord,
        ) -> Result<(), DeadLetterError> {
            let mut sent = self.0.lock().unwrap();
            sent.push(message.message_id.clone().unwrap_or_default());
            Ok(())
        }
    }

    fn message(id: &str, source: Option<&str>) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_owned());
        message.event_source_arn = source.map(str::to_owned);
        message
    }

    #[tokio::test]
    async fn each_message_goes_to_its_source_queues_dead_letter_queue() {
        let (ordinary, urgent) = (Arc::new(Recorded::default()), Arc::new(Recorded::default()));
        let routes = DeadLettersBySource::new([
            (
                "arn:q:orders".to_owned(),
                ordinary.clone() as Arc<dyn DeadLetterQueue>,
            ),
            (
                "arn:q:urgent".to_owned(),
                urgent.clone() as Arc<dyn DeadLetterQueue>,
            ),
        ]);
        let failure = MessageFailure::Permanent("broken".into());
        for (id, source) in [
            ("m1", "arn:q:urgent"),
            ("m2", "arn:q:orders"),
            ("m3", "arn:q:urgent"),
        ] {
            let message = message(id, Some(source));
            let record = FailureRecord::new(&failure, &message, 5, Utc::now());
            routes.send(&message, &record).await.unwrap();
        }
        assert_eq!(*urgent.0.lock().unwrap(), ["m1", "m3"]);
        assert_eq!(*ordinary.0.lock().unwrap(), ["m2"]);

        for unrouted in [message("m4", Some("arn:q:other")), message("m5", None)] {
            let record = FailureRecord::new(&failure, &unrouted, 5, Utc::now());
            assert!(routes.send(&unrouted, &record).await.is_err());
        }
        assert_eq!(
            urgent.0.lock().unwrap().len() + ordinary.0.lock().unwrap().len(),
            3
        );
    }

    #[test]
    fn routes_parse_from_arn_url_pairs_and_refuse_anything_else() {
        assert_eq!(
            parse_routes("V", " arn:a=http://a , arn:b=http://b,").unwrap(),
            [
                ("arn:a".to_owned(), "http://a".to_owned()),
                ("arn:b".to_owned(), "http://b".to_owned())
            ]
        );
        assert!(parse_routes("V", "").unwrap().is_empty());
        for bad in [
            "http://a",
            "arn:a=",
            "queue=http://a",
            "arn:a=http://a,oops",
        ] {
            assert!(parse_routes("V", bad).is_err(), "{bad}");
        }
    }
}
