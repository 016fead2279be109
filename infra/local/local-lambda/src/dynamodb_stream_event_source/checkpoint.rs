//! Where each stream mapping got to, kept across restarts of local-lambda: per mapping (a
//! function's trigger on a table), the stream it reads and, per shard, the last sequence
//! number processed and whether the shard is finished. One small JSON file beside the wiring
//! file (`.local/stream-checkpoints.json`), written whole after every change, atomically (a
//! temporary file renamed over it), so a killed local-lambda leaves the last complete state.
//!
//! A stream's ARN holds its creation time: a table created again has a new stream, and the
//! mapping's checkpoints of the old one are forgotten when the new one is first checkpointed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

/// The checkpoint file's name, in the wiring file's directory.
pub const CHECKPOINT_FILE_NAME: &str = "stream-checkpoints.json";

/// The checkpoint file that goes with a wiring file.
pub fn checkpoint_file_beside(wiring_path: &Path) -> PathBuf {
    wiring_path
        .parent()
        .unwrap_or(Path::new(""))
        .join(CHECKPOINT_FILE_NAME)
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read the stream checkpoints {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the stream checkpoints {path} are not valid (delete the file to read every stream \
         from its trigger's starting position)"
    )]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write the stream checkpoints {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How far a shard was read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCheckpoint {
    /// The last record processed (delivered, filtered out or given up on); `None`: reading
    /// began at the trigger's starting position and nothing was processed yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    /// The shard is closed and was read to its end.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub finished: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct MappingCheckpoints {
    stream_arn: String,
    shards: BTreeMap<String, ShardCheckpoint>,
}

/// The checkpoint file, shared by every shard poller.
#[derive(Debug)]
pub struct CheckpointStore {
    path: PathBuf,
    /// By mapping name (`<function>/<table>`).
    mappings: Mutex<BTreeMap<String, MappingCheckpoints>>,
}

impl CheckpointStore {
    /// Reads the file; a missing file is no checkpoint at all.
    pub fn open(path: PathBuf) -> Result<Self, CheckpointError> {
        let mappings = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| CheckpointError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(CheckpointError::Read { path, source }),
        };
        Ok(CheckpointStore {
            path,
            mappings: Mutex::new(mappings),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The mapping's shard checkpoints on this stream; none if it read another stream before.
    pub fn shards(&self, mapping: &str, stream_arn: &str) -> BTreeMap<String, ShardCheckpoint> {
        self.mappings()
            .get(mapping)
            .filter(|checkpoints| checkpoints.stream_arn == stream_arn)
            .map(|checkpoints| checkpoints.shards.clone())
            .unwrap_or_default()
    }

    /// Records a shard's checkpoint and writes the file. Kept in memory even when the write
    /// fails (the next write carries it).
    pub fn save(
        &self,
        mapping: &str,
        stream_arn: &str,
        shard_id: &str,
        checkpoint: ShardCheckpoint,
    ) -> Result<(), CheckpointError> {
        let mut mappings = self.mappings();
        let checkpoints = mappings.entry(mapping.to_owned()).or_default();
        if checkpoints.stream_arn != stream_arn {
            *checkpoints = MappingCheckpoints {
                stream_arn: stream_arn.to_owned(),
                shards: BTreeMap::new(),
            };
        }
        checkpoints.shards.insert(shard_id.to_owned(), checkpoint);
        // Written under the lock, so writes land in the order of the changes.
        self.write(&mappings)
    }

    fn write(
        &self,
        mappings: &BTreeMap<String, MappingCheckpoints>,
    ) -> Result<(), CheckpointError> {
        let error = |source| CheckpointError::Write {
            path: self.path.clone(),
            source,
        };
        // Strings keyed by strings: serialising cannot fail.
        let text = serde_json::to_string_pretty(mappings).unwrap_or_default() + "\n";
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(format!(".{}.tmp", std::process::id()));
        let temporary = PathBuf::from(temporary);
        if let Some(directory) = self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(directory).map_err(error)?;
        }
        std::fs::write(&temporary, text).map_err(error)?;
        std::fs::rename(&temporary, &self.path).map_err(error)
    }

    fn mappings(&self) -> MutexGuard<'_, BTreeMap<String, MappingCheckpoints>> {
        // Every change is one insert: the map stays consistent even if a holder panicked.
        self.mappings.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::scratch_directory;

    const STREAM: &str =
        "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/2026-12-06T10:06:04.804";
    const RECREATED: &str =
        "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/2026-12-06T11:00:00.000";

    fn at(sequence_number: &str) -> ShardCheckpoint {
        ShardCheckpoint {
            sequence_number: Some(sequence_number.to_owned()),
            finished: false,
        }
    }

    #[test]
    fn checkpoints_survive_a_restart_and_a_new_stream_starts_fresh() {
        let scratch = scratch_directory();
        let wiring = scratch.path().join(".local/wiring.json");
        let path = checkpoint_file_beside(&wiring);
        assert_eq!(path, scratch.path().join(".local/stream-checkpoints.json"));

        let store = CheckpointStore::open(path.clone()).expect("no file yet is fine");
        assert!(store.shards("relay/PaymentsTable", STREAM).is_empty());
        store
            .save("relay/PaymentsTable", STREAM, "shardId-1", at("0001"))
            .expect("written");
        store
            .save("relay/PaymentsTable", STREAM, "shardId-1", at("0005"))
            .expect("written");
        let finished = ShardCheckpoint {
            sequence_number: Some("0007".to_owned()),
            finished: true,
        };
        store
            .save("relay/PaymentsTable", STREAM, "shardId-0", finished.clone())
            .expect("written");
        store
            .save(
                "relay/OutboxTable",
                STREAM,
                "shardId-9",
                ShardCheckpoint::default(),
            )
            .expect("written");

        let reopened = CheckpointStore::open(path.clone()).expect("reads back");
        let shards = reopened.shards("relay/PaymentsTable", STREAM);
        assert_eq!(shards.get("shardId-1"), Some(&at("0005")));
        assert_eq!(shards.get("shardId-0"), Some(&finished));
        assert_eq!(
            reopened
                .shards("relay/OutboxTable", STREAM)
                .get("shardId-9"),
            Some(&ShardCheckpoint::default())
        );
        let text = std::fs::read_to_string(&path).expect("the file");
        assert!(text.contains(r#""sequence_number": "0005""#), "{text}");
        // Only the file itself is left: the temporary one was renamed over it.
        let files: Vec<_> = std::fs::read_dir(path.parent().expect("directory"))
            .expect("listing")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(files, ["stream-checkpoints.json"]);

        // The table was created again: its new stream has no checkpoints, and the first one
        // saved replaces the old stream's.
        assert!(reopened.shards("relay/PaymentsTable", RECREATED).is_empty());
        reopened
            .save("relay/PaymentsTable", RECREATED, "shardId-2", at("0001"))
            .expect("written");
        let again = CheckpointStore::open(path).expect("reads back");
        assert!(again.shards("relay/PaymentsTable", STREAM).is_empty());
        assert_eq!(again.shards("relay/PaymentsTable", RECREATED).len(), 1);
        assert_eq!(again.shards("relay/OutboxTable", STREAM).len(), 1);
    }

    #[test]
    fn a_damaged_file_is_an_error_that_says_what_to_do() {
        let scratch = scratch_directory();
        let path = scratch.path().join(CHECKPOINT_FILE_NAME);
        std::fs::write(&path, "{ not json").expect("write");
        let error = CheckpointStore::open(path).expect_err("damaged");
        assert!(error.to_string().contains("delete the file"), "{error}");
    }
}
