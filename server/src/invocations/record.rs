//! What is stored about one async invocation, and where.
//!
//! Each invocation is two or three files in `<data_dir>/invocations/`:
//! `{id}.payload` (the bytes, written first, deleted once it finished),
//! `{id}.json` (this record; its presence is what makes the invocation
//! exist) and, once it succeeded, `{id}.result`. Every write is atomic and
//! durable; new invocations are made durable in batches (one sync of the
//! file system each), and a record whose payload does not match its digest
//! (torn by a crash inside a batch, so never acknowledged) is removed on
//! load.

use crate::store::fsio;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// Where an invocation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its first attempt, or for a retry (`error` says why the
    /// last attempt failed).
    Queued,
    /// An attempt is running.
    Running,
    /// The function returned a result.
    Succeeded,
    /// Out of attempts (or of time, or refused as invalid input): in the
    /// dead-letter store with its last error.
    Dead,
}

impl Status {
    /// Whether the invocation will not run again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Dead)
    }
}

/// Why an attempt failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The error code, as in synchronous error bodies.
    pub code: String,
    /// The message (the function's, for `function_error` and
    /// `invalid_input`).
    pub message: String,
}

/// One async invocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationRecord {
    /// Its id.
    pub id: String,
    /// The event function it invokes.
    pub function: String,
    /// Where it stands.
    pub status: Status,
    /// Attempts started so far.
    pub attempts: u32,
    /// When it was accepted, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Its last change.
    pub updated_at_ms: u64,
    /// When the next attempt is due (queued invocations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at_ms: Option<u64>,
    /// The caller's `Idempotency-Key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// SHA-256 of the payload, hex.
    pub payload_sha256: String,
    /// Payload size.
    pub payload_bytes: u64,
    /// The caller's `Content-Type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The function invoked with the result when this one succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_success: Option<String>,
    /// The function invoked with the error when this one is dead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// The last attempt's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<AttemptError>,
    /// Size of the result, once succeeded (`GET .../result` has the bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_bytes: Option<u64>,
    /// The invocation a destination was given, once one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_invocation: Option<String>,
    /// The trigger that fired it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired: Option<crate::host::Fired>,
}

/// The files of the invocation store.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    tmp: PathBuf,
}

impl Journal {
    /// The journal in `data_dir` (creating its directory).
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let dir = data_dir.join("invocations");
        fsio::create_private_dir(&dir)?;
        Ok(Self {
            dir,
            tmp: data_dir.join("tmp"),
        })
    }

    fn path(&self, id: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{id}.{ext}"))
    }

    /// Stores a batch of new invocations with one sync of the file system
    /// for all of them (group commit): payloads and records are written and
    /// renamed into place, then made durable together. A crash before the
    /// sync may leave some of them torn; none of them was acknowledged, and
    /// [`load`](Self::load) removes a record whose payload does not match
    /// its digest.
    pub fn create_batch(&self, batch: &[(InvocationRecord, bytes::Bytes)]) -> io::Result<()> {
        for (record, payload) in batch {
            fsio::write_unsynced(&self.tmp, &self.path(&record.id, "payload"), payload)?;
            let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
            fsio::write_unsynced(&self.tmp, &self.path(&record.id, "json"), &json)?;
        }
        fsio::sync_file_system(&self.dir)
    }

    /// Takes back what a failed batch wrote (best effort: none of it was
    /// acknowledged).
    fn undo_batch(&self, batch: &[(InvocationRecord, bytes::Bytes)]) {
        for (record, _) in batch {
            let _ = std::fs::remove_file(self.path(&record.id, "json"));
            let _ = std::fs::remove_file(self.path(&record.id, "payload"));
        }
    }

    /// Rewrites a record.
    pub fn update(&self, record: &InvocationRecord) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        fsio::write_atomic(&self.tmp, &self.path(&record.id, "json"), &json)
    }

    /// Stores a result.
    pub fn put_result(&self, id: &str, result: &[u8]) -> io::Result<()> {
        fsio::write_atomic(&self.tmp, &self.path(id, "result"), result)
    }

    /// Whether `record`'s payload is on disk with the digest it was
    /// accepted with (a crash inside a group commit can leave it torn).
    fn payload_intact(&self, record: &InvocationRecord) -> bool {
        use sha2::Digest as _;
        std::fs::read(self.path(&record.id, "payload"))
            .is_ok_and(|bytes| hex::encode(sha2::Sha256::digest(&bytes)) == record.payload_sha256)
    }

    /// An invocation's payload.
    pub fn payload(&self, id: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(id, "payload"))
    }

    /// The stored record of `id`.
    pub fn read(&self, id: &str) -> io::Result<InvocationRecord> {
        let bytes = std::fs::read(self.path(id, "json"))?;
        serde_json::from_slice(&bytes).map_err(io::Error::other)
    }

    /// Deletes a finished invocation's payload.
    pub fn remove_payload(&self, id: &str) -> io::Result<()> {
        fsio::remove_durably(&self.path(id, "payload"))
    }

    /// An invocation's result.
    pub fn result(&self, id: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(id, "result"))
    }

    /// Removes every file of an invocation (the record last).
    pub fn remove(&self, id: &str) -> io::Result<()> {
        fsio::remove_durably(&self.path(id, "payload"))?;
        fsio::remove_durably(&self.path(id, "result"))?;
        fsio::remove_durably(&self.path(id, "json"))
    }

    /// Every stored record. Files without a record (a crash between the
    /// payload and the record: never acknowledged) and unreadable records
    /// are removed, and named in the second list.
    pub fn load(&self) -> io::Result<(Vec<InvocationRecord>, Vec<String>)> {
        let mut records = Vec::new();
        let mut removed = Vec::new();
        let mut others = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if let Some(id) = name.strip_suffix(".json") {
                let parsed = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<InvocationRecord>(&b).ok())
                    .filter(|r: &InvocationRecord| {
                        r.id == id && (r.status.is_final() || self.payload_intact(r))
                    });
                match parsed {
                    Some(r) => records.push(r),
                    None => {
                        self.remove(id)?;
                        removed.push(name);
                    }
                }
            } else {
                others.push((path, name));
            }
        }
        for (path, name) in others {
            let id = name.split('.').next().unwrap_or_default();
            if !records.iter().any(|r| r.id == id) {
                fsio::remove_durably(&path)?;
                removed.push(name);
            }
        }
        Ok((records, removed))
    }
}

/// One invocation waiting for a group commit.
struct Commit {
    record: InvocationRecord,
    payload: bytes::Bytes,
    done: tokio::sync::oneshot::Sender<io::Result<()>>,
}

/// Group commit of new invocations: one thread stores every invocation
/// submitted while the previous batch was being synced, with one sync of
/// the file system for the whole batch. Each submitter waits until its
/// batch is durable.
#[derive(Debug, Clone)]
pub(super) struct Committer {
    tx: std::sync::mpsc::Sender<Commit>,
}

impl std::fmt::Debug for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commit")
            .field("id", &self.record.id)
            .finish()
    }
}

impl Committer {
    /// Starts the committing thread over `journal`; at most `max_batch`
    /// invocations go in one sync. The thread ends when the last committer
    /// is dropped.
    pub(super) fn start(journal: Journal, max_batch: usize) -> io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Commit>();
        std::thread::Builder::new()
            .name("floe-invocations-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut waiting = vec![first];
                    while waiting.len() < max_batch {
                        match rx.try_recv() {
                            Ok(next) => waiting.push(next),
                            Err(_) => break,
                        }
                    }
                    let (batch, done): (Vec<_>, Vec<_>) = waiting
                        .into_iter()
                        .map(|c| ((c.record, c.payload), c.done))
                        .unzip();
                    let result = journal.create_batch(&batch);
                    if result.is_err() {
                        journal.undo_batch(&batch);
                    }
                    for done in done {
                        let _ = done.send(match &result {
                            Ok(()) => Ok(()),
                            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                        });
                    }
                }
            })?;
        Ok(Self { tx })
    }

    /// Stores a new invocation durably (with whatever else is submitted
    /// meanwhile).
    pub(super) async fn commit(
        &self,
        record: InvocationRecord,
        payload: bytes::Bytes,
    ) -> io::Result<()> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send(Commit {
                record,
                payload,
                done,
            })
            .map_err(|_| io::Error::other("the invocation store is closed"))?;
        wait.await
            .map_err(|_| io::Error::other("the invocation store is closed"))?
    }
}
