//! What a payment costs past the payment path: the consumers its events reach (notifications,
//! the audit trail, the read models, and whichever the template adds).
//!
//! The stack bus's rules are copied onto a bus of the bench's own, each target a capture queue
//! of its own ([`Capture::mirror`]), so the events the event relay really publishes for
//! payments run like the measured ones land where the stack's rules would put them, whole
//! EventBridge envelopes as message bodies. (LocalStack delivers to the targets inside
//! `PutEvents`, so the payment path is timed on a bus without rules, as before, and run again
//! on this one for its events.) Each consumer's release binary is then fed, warm, the messages its queue
//! got ([`measure`]): the measured payment's one at a time (they arrive apart), then the
//! batch payments' in full batches of the trigger's `BatchSize`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, RuleState, Target};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
use local_lambda::wiring::Wiring;
use serde::Serialize;
use serde_json::Value;

use crate::calls::Calls;
use crate::cost::{Consumption, FunctionWork, PaymentWork};
use crate::instance::{Binary, Instance};
use crate::subjects::{Fixtures, no_batch_failures};

/// How long the capture queues may take to hold every expected event.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(30);

/// A target of one of the stack's rules, copied onto the bench's bus.
#[derive(Debug, Clone)]
struct Route {
    /// The stack's rule, and the queue (logical id, ARN) it delivers to.
    rule: String,
    queue: String,
    queue_arn: String,
    /// The bench's copy: a rule and a queue of this name.
    capture: String,
    capture_url: String,
}

/// The stack's rules copied onto a bus of the bench's, each delivering to a capture queue.
pub struct Capture {
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    bus: String,
    routes: Vec<Route>,
}

/// A message a rule delivered, as a capture queue received it.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The stack's queue it stands for (logical id) and its ARN.
    pub queue: String,
    pub queue_arn: String,
    pub message_id: String,
    pub body: String,
    pub detail_type: String,
    pub payment_id: Option<String>,
    /// `<payment>/<version>` for a payment's events: their order.
    pub event_id: String,
}

impl Delivered {
    fn version(&self) -> u64 {
        self.event_id
            .rsplit_once('/')
            .and_then(|(_, version)| version.parse().ok())
            .unwrap_or(0)
    }

    fn is_outcome(&self) -> bool {
        matches!(
            self.detail_type.as_str(),
            "PaymentCompleted" | "PaymentFailed"
        )
    }
}

/// The payments of one kind that [`measure`] feeds to the consumers.
#[derive(Debug, Clone)]
pub struct PaymentIds {
    /// Warms each consumer.
    pub warm_up: String,
    /// Its calls are counted.
    pub measured: String,
    /// Their messages make the timed batches.
    pub batch: Vec<String>,
}

impl PaymentIds {
    fn all(&self) -> impl Iterator<Item = &String> {
        [&self.warm_up, &self.measured]
            .into_iter()
            .chain(&self.batch)
    }
}

impl Capture {
    /// Creates the bus `paysaga-bench-<run>-routes` and copies onto it every rule of the
    /// stack's bus (`wiring.event_bus_name`) that delivers to a queue of the wiring, each target
    /// a capture queue named `paysaga-bench-<run>-route-<n>`.
    pub async fn mirror(aws: &SdkConfig, wiring: &Wiring, run_id: &str) -> anyhow::Result<Self> {
        let bus = format!("paysaga-bench-{run_id}-routes");
        let stack_bus = wiring
            .event_bus_name
            .as_deref()
            .context("the wiring names no event bus")?;
        let mut capture = Capture {
            sqs: aws_sdk_sqs::Client::new(aws),
            events: aws_sdk_eventbridge::Client::new(aws),
            bus: bus.clone(),
            routes: Vec::new(),
        };
        capture
            .events
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .with_context(|| format!("creating the bus {bus}"))?;
        match capture.copy_rules(wiring, stack_bus, run_id).await {
            Ok(()) if !capture.routes.is_empty() => Ok(capture),
            Ok(()) => anyhow::bail!("no rule of the bus {stack_bus} delivers to a queue"),
            Err(error) => {
                let _ = capture.remove().await;
                Err(error)
            }
        }
    }

    async fn copy_rules(
        &mut self,
        wiring: &Wiring,
        stack_bus: &str,
        run_id: &str,
    ) -> anyhow::Result<()> {
        let mut rules = Vec::new();
        let mut next = None;
        loop {
            let page = self
                .events
                .list_rules()
                .event_bus_name(stack_bus)
                .set_next_token(next)
                .send()
                .await
                .with_context(|| format!("listing the rules of {stack_bus}"))?;
            rules.extend(page.rules.unwrap_or_default());
            next = page.next_token;
            if next.is_none() {
                break;
            }
        }
        for rule in rules {
            let (Some(name), Some(pattern)) = (rule.name, rule.event_pattern) else {
                continue; // a schedule
            };
            if rule.state == Some(RuleState::Disabled) {
                continue;
            }
            let targets = self
                .events
                .list_targets_by_rule()
                .event_bus_name(stack_bus)
                .rule(&name)
                .send()
                .await
                .with_context(|| format!("listing the targets of {name}"))?
                .targets
                .unwrap_or_default();
            for target in targets {
                let Some((queue, spec)) = wiring
                    .queues
                    .iter()
                    .find(|(_, queue)| queue.arn == target.arn)
                else {
                    continue;
                };
                let capture = format!("paysaga-bench-{run_id}-route-{}", self.routes.len());
                let capture_url = self.route(&capture, &pattern).await?;
                self.routes.push(Route {
                    rule: name.clone(),
                    queue: queue.clone(),
                    queue_arn: spec.arn.clone(),
                    capture,
                    capture_url,
                });
            }
        }
        Ok(())
    }

    /// A capture queue `name` and a rule of the bench's bus, also `name`, delivering to it.
    async fn route(&self, name: &str, pattern: &str) -> anyhow::Result<String> {
        let (url, arn) = queue_with_arn(&self.sqs, name).await?;
        self.events
            .put_rule()
            .event_bus_name(&self.bus)
            .name(name)
            .event_pattern(pattern)
            .send()
            .await
            .with_context(|| format!("creating the rule {name}"))?;
        self.events
            .put_targets()
            .event_bus_name(&self.bus)
            .rule(name)
            .targets(Target::builder().id("queue").arn(arn).build()?)
            .send()
            .await
            .with_context(|| format!("targeting {name} at its queue"))?;
        Ok(url)
    }

    /// Publishes EventBridge envelopes (SQS bodies, as the rules deliver them) on the bench's
    /// bus: the batch payments' requests, which the bench hands the saga without the api.
    pub async fn publish(&self, envelopes: &[String]) -> anyhow::Result<()> {
        for chunk in envelopes.chunks(10) {
            let mut entries = Vec::new();
            for envelope in chunk {
                let envelope: Value = serde_json::from_str(envelope)?;
                entries.push(
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(envelope["source"].as_str().context("a source")?)
                        .detail_type(envelope["detail-type"].as_str().context("a detail-type")?)
                        .detail(envelope["detail"].to_string())
                        .build(),
                );
            }
            let put = self
                .events
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await?;
            ensure!(
                put.failed_entry_count == 0,
                "publishing the batch's requests: {put:?}"
            );
        }
        Ok(())
    }

    /// Receives (and deletes) what the capture queues hold, until every payment of `expected`
    /// has had its request and its outcome delivered and a round of long polls finds nothing
    /// more.
    pub async fn drain(&self, expected: &PaymentIds) -> anyhow::Result<Vec<Delivered>> {
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        let mut delivered: Vec<Delivered> = Vec::new();
        loop {
            let rounds =
                futures::future::try_join_all(self.routes.iter().map(|route| self.receive(route)))
                    .await?;
            let quiet = rounds.iter().all(Vec::is_empty);
            delivered.extend(rounds.into_iter().flatten());
            let missing: Vec<&String> = expected
                .all()
                .filter(|payment| {
                    let of_payment = of_payment(&delivered, payment);
                    !(of_payment.iter().any(|message| message.is_outcome())
                        && of_payment.iter().any(|message| !message.is_outcome()))
                })
                .collect();
            if quiet && missing.is_empty() {
                return Ok(delivered);
            }
            ensure!(
                Instant::now() < deadline,
                "no request and outcome delivered within {DELIVERY_DEADLINE:?} for {missing:?}"
            );
        }
    }

    async fn receive(&self, route: &Route) -> anyhow::Result<Vec<Delivered>> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&route.capture_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .with_context(|| format!("receiving from {}", route.capture))?;
        let mut delivered = Vec::new();
        let mut deletes = Vec::new();
        for (index, message) in received
            .messages
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let body = message.body.unwrap_or_default();
            let envelope: Value = serde_json::from_str(&body)
                .with_context(|| format!("{} delivered a body that is not JSON", route.rule))?;
            delivered.push(Delivered {
                queue: route.queue.clone(),
                queue_arn: route.queue_arn.clone(),
                message_id: message.message_id.unwrap_or_default(),
                detail_type: envelope["detail-type"].as_str().unwrap_or("").to_owned(),
                payment_id: envelope["detail"]["payment_id"].as_str().map(str::to_owned),
                event_id: envelope["detail"]["event_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                body,
            });
            if let Some(handle) = message.receipt_handle {
                deletes.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(handle)
                        .build()?,
                );
            }
        }
        if !deletes.is_empty() {
            self.sqs
                .delete_message_batch()
                .queue_url(&route.capture_url)
                .set_entries(Some(deletes))
                .send()
                .await?;
        }
        Ok(delivered)
    }

    /// The bus the rules are copied onto: what the functions publish on to have their events
    /// captured.
    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// Deletes the copied rules, the capture queues and the bus.
    pub async fn remove(&self) -> anyhow::Result<()> {
        let mut failures = Vec::new();
        for route in &self.routes {
            let rule = async {
                self.events
                    .remove_targets()
                    .event_bus_name(&self.bus)
                    .rule(&route.capture)
                    .ids("queue")
                    .send()
                    .await?;
                self.events
                    .delete_rule()
                    .event_bus_name(&self.bus)
                    .name(&route.capture)
                    .send()
                    .await?;
                anyhow::Ok(())
            };
            if let Err(error) = rule.await {
                failures.push(format!("rule {}: {error:#}", route.capture));
            }
            if let Err(error) = self
                .sqs
                .delete_queue()
                .queue_url(&route.capture_url)
                .send()
                .await
            {
                failures.push(format!("queue {}: {error:#}", route.capture));
            }
        }
        if let Err(error) = self.events.delete_event_bus().name(&self.bus).send().await {
            failures.push(format!("bus {}: {error:#}", self.bus));
        }
        ensure!(failures.is_empty(), "{}", failures.join("; "));
        Ok(())
    }
}

/// What one consumer did for one payment, and what a batch of its messages takes.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerCalls {
    pub function: String,
    /// The queue (logical id) its trigger reads, and the trigger's `BatchSize`.
    pub queue: String,
    pub batch_size: usize,
    pub memory_mb: f64,
    /// The measured payment's messages on that queue, by detail-type, in order.
    pub messages: Vec<String>,
    /// Its AWS calls for them (one warm invocation per message).
    pub calls: Calls,
    /// Those invocations' durations together, ms.
    pub warm_ms: f64,
    /// Mean duration of a warm invocation with a full batch of the batch payments' messages.
    pub batch_ms: f64,
    pub batches: usize,
}

/// Everything past the payment path for one payment.
#[derive(Debug, Clone, Serialize)]
pub struct Downstream {
    /// The payment's events the stack's rules delivered, per queue (logical id): each an SQS
    /// `SendMessage` billed to the account.
    pub deliveries: BTreeMap<String, u32>,
    pub consumers: Vec<ConsumerCalls>,
}

impl Downstream {
    pub fn calls(&self) -> Calls {
        self.consumers
            .iter()
            .fold(Calls::default(), |sum, consumer| sum.plus(&consumer.calls))
    }

    pub fn deliveries(&self) -> u32 {
        self.deliveries.values().sum()
    }

    /// The whole system's work for the payment: the payment path's `path`, with every rule
    /// delivery as measured here (in place of the path's own count), and each consumer's
    /// invocations (a batch's share per message), calls and event source mapping requests.
    pub fn whole_system(&self, path: &PaymentWork) -> PaymentWork {
        let mut work = path.clone();
        work.events_delivered_to_queues = f64::from(self.deliveries());
        for consumer in &self.consumers {
            let messages = consumer.messages.len() as f64;
            let batch_size = consumer.batch_size.max(1) as f64;
            work.functions.push(FunctionWork {
                function: consumer.function.clone(),
                invocations: messages / batch_size,
                duration_ms: consumer.batch_ms,
                memory_mb: consumer.memory_mb,
            });
            work.calls = work.calls.plus(&consumer.calls);
            work.other_consumed.push(Consumption {
                queue: consumer.queue.clone(),
                messages,
                batch_size,
            });
        }
        work
    }
}

/// Feeds each consumer (every function of the wiring with an SQS trigger, but those in
/// `path`, whose calls the payment path counts) what its queue received for `payments`.
pub async fn measure(
    delivered: &[Delivered],
    payments: &PaymentIds,
    wiring: &Wiring,
    binaries: &[Binary],
    fixtures: &Fixtures,
    path: &[&str],
) -> anyhow::Result<Downstream> {
    let mut deliveries = BTreeMap::new();
    for message in of_payment(delivered, &payments.measured) {
        *deliveries.entry(message.queue.clone()).or_insert(0) += 1;
    }
    let mut consumers = Vec::new();
    for function in &wiring.functions {
        if path.contains(&function.name.as_str()) {
            continue;
        }
        for trigger in &function.sqs_triggers {
            let on_queue = |payment: &str| -> Vec<&Delivered> {
                of_payment(delivered, payment)
                    .into_iter()
                    .filter(|message| message.queue == trigger.queue)
                    .collect()
            };
            let mut measured = on_queue(&payments.measured);
            if measured.is_empty() {
                continue;
            }
            measured.sort_by_key(|message| message.version());
            let binary = binaries
                .iter()
                .find(|binary| binary.name == function.name)
                .with_context(|| format!("no binary {}", function.name))?;
            let batch_size = usize::try_from(trigger.batch_size).unwrap_or(10).max(1);
            // In the order the queue received them, as its event source mapping batches them.
            let batch_messages: Vec<&Delivered> = delivered
                .iter()
                .filter(|message| {
                    message.queue == trigger.queue
                        && message
                            .payment_id
                            .as_ref()
                            .is_some_and(|payment| payments.batch.contains(payment))
                })
                .collect();
            let event = |messages: &[&Delivered]| {
                fixtures.sqs_messages(
                    &trigger.queue_arn,
                    messages
                        .iter()
                        .map(|message| (message.message_id.as_str(), message.body.as_str())),
                )
            };
            eprintln!(
                "bench: {} for the payment's {} message(s) on {}",
                function.name,
                measured.len(),
                trigger.queue
            );
            let instance = Instance::start(binary).await?;
            let fed = async {
                let mut warm_up = on_queue(&payments.warm_up);
                warm_up.sort_by_key(|message| message.version());
                for message in warm_up {
                    no_batch_failures(&instance.invoke(&event(&[message])?).await?.response)?;
                }
                let mut runs = Vec::new();
                for message in &measured {
                    let run = instance.invoke(&event(&[*message])?).await?;
                    no_batch_failures(&run.response)?;
                    runs.push(run);
                }
                // Full batches only: a partial one would understate a batch's duration.
                let mut batches = Vec::new();
                let full = batch_messages.len() / batch_size * batch_size;
                let usable = if full == 0 {
                    &batch_messages[..]
                } else {
                    &batch_messages[..full]
                };
                for chunk in usable.chunks(batch_size) {
                    let run = instance.invoke(&event(chunk)?).await?;
                    no_batch_failures(&run.response)?;
                    batches.push(run.duration.as_secs_f64() * 1000.0);
                }
                anyhow::Ok((runs, batches))
            }
            .await;
            let lines = instance.stop().await;
            let (runs, batches) = fed.with_context(|| format!("feeding {}", function.name))?;
            ensure!(
                !batches.is_empty(),
                "{}: no batch payment's message reached {}",
                function.name,
                trigger.queue
            );
            consumers.push(ConsumerCalls {
                function: function.name.clone(),
                queue: trigger.queue.clone(),
                batch_size,
                memory_mb: f64::from(function.memory_mb),
                messages: measured
                    .iter()
                    .map(|message| message.detail_type.clone())
                    .collect(),
                calls: runs.iter().fold(Calls::default(), |sum, run| {
                    sum.plus(&Calls::of_invocation(&lines, &run.request_id))
                }),
                warm_ms: runs
                    .iter()
                    .map(|run| run.duration.as_secs_f64() * 1000.0)
                    .sum(),
                batch_ms: batches.iter().sum::<f64>() / batches.len() as f64,
                batches: batches.len(),
            });
        }
    }
    Ok(Downstream {
        deliveries,
        consumers,
    })
}

/// The messages of `payment`'s events.
fn of_payment<'a>(delivered: &'a [Delivered], payment: &str) -> Vec<&'a Delivered> {
    delivered
        .iter()
        .filter(|message| message.payment_id.as_deref() == Some(payment))
        .collect()
}

/// A queue `name` of the bench's own: its URL and its ARN (what a rule's target names).
pub(crate) async fn queue_with_arn(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
) -> anyhow::Result<(String, String)> {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .with_context(|| format!("cannot create the queue {name}"))?
        .queue_url
        .with_context(|| format!("CreateQueue {name} answered no URL"))?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("cannot read the ARN of {name}"))?
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .with_context(|| format!("GetQueueAttributes {name} answered no ARN"))?;
    Ok((url, arn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::Count;

    fn message(queue: &str, payment: &str, version: u32, detail_type: &str) -> Delivered {
        Delivered {
            queue: queue.to_owned(),
            queue_arn: format!("arn:aws:sqs:us-east-1:000000000000:{queue}"),
            message_id: format!("{queue}-{payment}-{version}"),
            body: "{}".to_owned(),
            detail_type: detail_type.to_owned(),
            payment_id: Some(payment.to_owned()),
            event_id: format!("{payment}/{version}"),
        }
    }

    #[test]
    fn events_are_ordered_by_their_version_and_outcomes_told_apart() {
        let requested = message("AuditTrailQueue", "pay_a", 1, "PaymentRequested");
        let completed = message("AuditTrailQueue", "pay_a", 4, "PaymentCompleted");
        assert!(requested.version() < completed.version());
        assert!(!requested.is_outcome());
        assert!(completed.is_outcome());
        assert!(message("Q", "pay_a", 3, "PaymentFailed").is_outcome());
    }

    #[test]
    fn the_whole_system_adds_the_consumers_to_the_payment_path() {
        let path = PaymentWork {
            functions: vec![FunctionWork {
                function: "api".into(),
                invocations: 1.0,
                duration_ms: 10.0,
                memory_mb: 128.0,
            }],
            calls: Calls(BTreeMap::from([(
                "DynamoDB.PutItem".to_owned(),
                Count {
                    requests: 2,
                    items: 2,
                    eventually_consistent: 0,
                },
            )])),
            events_delivered_to_queues: 2.0,
            messages_consumed: 1.0,
            batch_size: 10.0,
            batched_sqs_requests: 0.0,
            other_consumed: Vec::new(),
            saga_steps: 3.0,
            saga_ms: 40.0,
        };
        let downstream = Downstream {
            deliveries: BTreeMap::from([
                ("PaymentsQueue".to_owned(), 1),
                ("PaymentEventsQueue".to_owned(), 1),
                ("AuditTrailQueue".to_owned(), 2),
            ]),
            consumers: vec![ConsumerCalls {
                function: "audit-trail".into(),
                queue: "AuditTrailQueue".into(),
                batch_size: 10,
                memory_mb: 128.0,
                messages: vec!["PaymentRequested".into(), "PaymentCompleted".into()],
                calls: Calls(BTreeMap::from([(
                    "DynamoDB.TransactWriteItems".to_owned(),
                    Count {
                        requests: 2,
                        items: 6,
                        eventually_consistent: 0,
                    },
                )])),
                warm_ms: 20.0,
                batch_ms: 80.0,
                batches: 2,
            }],
        };
        let system = downstream.whole_system(&path);
        assert_eq!(system.events_delivered_to_queues, 4.0);
        assert_eq!(system.functions.len(), 2);
        assert!((system.functions[1].invocations - 0.2).abs() < 1e-12);
        assert_eq!(system.functions[1].duration_ms, 80.0);
        assert_eq!(system.calls.requests(), 4);
        assert_eq!(system.other_consumed.len(), 1);
        assert_eq!(system.other_consumed[0].messages, 2.0);
        // The payment path is left as it was.
        assert_eq!(path.calls.requests(), 2);
    }
}
