//! Async invocation of event functions: accepted durably, run later by a
//! pool of workers, retried with backoff, and dead-lettered when out of
//! attempts.
//!
//! Guarantees:
//! - `202 Accepted` is sent only after the payload and the record are on
//!   disk (written atomically and synced), so an accepted invocation
//!   survives SIGKILL and power loss and runs after the restart. New
//!   invocations are synced in groups: those submitted while one sync runs
//!   share the next one.
//! - Delivery is **at least once**: an attempt cut short by a crash runs
//!   again after the restart, so a function may see an event twice. Use the
//!   context's request id (the invocation id) to deduplicate.
//! - An `Idempotency-Key` makes a repeat of the same request return the
//!   first invocation's id without running again; the same key with another
//!   payload or function is a conflict (409).
//! - Failed attempts (the function failed, trapped, timed out, or was
//!   overloaded or missing) are retried after `retry_base`, doubling up to
//!   `retry_max`, until `max_attempts` or `max_age`; then the invocation is
//!   dead, kept with its last error. An `invalid-input` answer is final.
//! - Destinations: `on_success` gets the result as its payload, `on_failure`
//!   a JSON document describing the dead invocation; both are async
//!   invocations themselves.
//! - The queue is bounded (`max_queued`), and so are the bytes on disk
//!   (`max_stored_bytes`); past either, `503 overloaded`. A finished
//!   invocation's payload is deleted at once; its record and result are
//!   kept for `retention`, at most `max_finished` of them, on disk: memory
//!   holds whole records only while they are queued or running.
//! - On the data plane (no token) async is opt-in per function
//!   (`async = true`); the control plane's `invoke` always offers it.
//!
//! Attempts run through the [`crate::invoke`] layer, like requests of the
//! front ends; this module never sees a pool or a front end. `http.rs`
//! serves events that arrive over HTTP (both planes), `worker.rs` runs the
//! attempts, `record.rs` keeps the journal on disk.

mod http;
mod index;
mod record;
mod worker;

pub use http::Front;
use record::Committer;
pub use record::{AttemptError, InvocationRecord, Journal, Status};

/// Most new invocations made durable by one sync.
const COMMIT_BATCH: usize = 256;

use crate::clock::unix_ms;
use crate::config::InvocationsConfig;
use crate::metrics::AsyncFigures;
use crate::registry::{FunctionName, Registry};
use crate::status::ErrorCode;
use bytes::Bytes;
use index::State;
use parking_lot::Mutex;
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio::sync::Notify;

/// Why an invocation was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The queue is full.
    #[error("the async invocation queue is full ({0} invocations)")]
    QueueFull(u32),
    /// Stored payloads and results are at `max_stored_bytes`.
    #[error("async invocations hold all the storage they may ({0} bytes)")]
    StorageFull(u64),
    /// The function does not take async invocations from the data plane.
    #[error("this function does not take async invocations here (its `async` setting is off)")]
    NotAsync,
    /// The idempotency key was used for another request.
    #[error(
        "Idempotency-Key {key:?} was used for invocation {id} with another function or payload"
    )]
    Conflict {
        /// The key.
        key: String,
        /// The invocation it belongs to.
        id: String,
    },
    /// A bad key or destination.
    #[error("{0}")]
    BadRequest(String),
    /// Writing the invocation failed.
    #[error("storing the invocation: {0}")]
    Store(#[from] std::io::Error),
}

impl SubmitError {
    /// The error code clients see.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::QueueFull(_) | Self::StorageFull(_) => ErrorCode::Overloaded,
            Self::NotAsync => ErrorCode::BadRequest,
            Self::Conflict { .. } => ErrorCode::Conflict,
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Store(_) => ErrorCode::Internal,
        }
    }
}

/// An invocation to accept.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    /// The event function.
    pub function: String,
    /// The payload.
    pub payload: Bytes,
    /// The caller's `Content-Type`.
    pub content_type: Option<String>,
    /// The caller's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// Invoked with the result on success.
    pub on_success: Option<String>,
    /// Invoked with the error when the invocation is dead.
    pub on_failure: Option<String>,
    /// The trigger that fired it.
    pub fired: Option<crate::host::Fired>,
}

/// An accepted invocation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Accepted {
    /// Its id.
    pub id: String,
    /// Where it stands now.
    pub status: Status,
    /// `true` when an earlier request with the same idempotency key
    /// created it.
    pub repeated: bool,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    succeeded: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
}

/// The async invocation service of one server.
pub struct Invocations {
    journal: Journal,
    /// Group commit of new invocations.
    committer: Committer,
    config: InvocationsConfig,
    state: Mutex<State>,
    wake: Notify,
    registry: Arc<Registry>,
    counters: Counters,
    /// This node's id in a cluster: it ends every invocation id.
    node: Option<String>,
}

impl std::fmt::Debug for Invocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocations").finish_non_exhaustive()
    }
}

const MAX_KEY_LEN: usize = 255;

/// Characters of an id before its node: 11 hex digits of time, 16 random.
const ID_STEM_LEN: usize = 27;

/// A new invocation id: time and randomness, then `-{node}` in cluster mode
/// (the node that owns it, and answers for it).
fn new_id(node: Option<&str>) -> String {
    let mut random = [0u8; 8];
    let _ = getrandom::fill(&mut random);
    let stem = format!("{:011x}{}", unix_ms(), hex::encode(random));
    match node {
        Some(node) => format!("{stem}-{node}"),
        None => stem,
    }
}

/// The node an invocation id names (`None`: an id made outside cluster
/// mode, or no id of floe's).
pub fn owner_of(id: &str) -> Option<&str> {
    let (stem, rest) = (id.get(..ID_STEM_LEN)?, id.get(ID_STEM_LEN..)?);
    let node = rest.strip_prefix('-')?;
    (stem.bytes().all(|b| b.is_ascii_hexdigit()) && crate::config::valid_node_id(node))
        .then_some(node)
}

impl Invocations {
    /// Opens the store in `data_dir` and loads every invocation in it:
    /// queued and running ones (cut short by a stop or crash) queue again.
    /// Invocations run on `registry`'s functions; in a cluster, `node` is
    /// this node's id.
    pub fn open(
        data_dir: &std::path::Path,
        config: InvocationsConfig,
        registry: Arc<Registry>,
        node: Option<String>,
    ) -> std::io::Result<Self> {
        let journal = Journal::open(data_dir)?;
        let (records, removed) = journal.load()?;
        if !removed.is_empty() {
            tracing::warn!(files = ?removed, "removed unacknowledged or damaged invocation files");
        }
        let mut state = State::default();
        let mut requeued = 0;
        let mut stale_payloads = Vec::new();
        for mut record in records {
            if let Some(key) = &record.idempotency_key {
                state
                    .keys
                    .insert((record.function.clone(), key.clone()), record.id.clone());
            }
            if record.status.is_final() {
                // Written by a server that kept payloads, or cut short
                // between the two writes: the payload goes now.
                stale_payloads.push(record.id.clone());
                state.add_finished(&record);
                continue;
            }
            if record.status == Status::Running {
                // Cut short by a stop or crash: it runs again, unless that
                // was its last attempt (an event that crashes the server
                // must not crash it forever).
                record.status = if record.attempts >= config.max_attempts {
                    record.error = Some(AttemptError {
                        code: "interrupted".to_owned(),
                        message: "the server stopped during the last attempt".to_owned(),
                    });
                    Status::Dead
                } else {
                    Status::Queued
                };
                record.next_attempt_at_ms = None;
            }
            if record.status == Status::Queued {
                requeued += 1;
                state.pending += 1;
                let due = record.next_attempt_at_ms.unwrap_or(0);
                state.ready.insert((due, record.id.clone()));
            } else if record.status.is_final() {
                // The last attempt was cut short: dead now.
                stale_payloads.push(record.id.clone());
                journal.update(&record)?;
                state.add_finished(&record);
                continue;
            }
            state.stored_bytes += record.payload_bytes;
            state.active.insert(record.id.clone(), record);
        }
        for id in &stale_payloads {
            journal.remove_payload(id)?;
        }
        if requeued > 0 {
            tracing::info!(invocations = requeued, "async invocations queued again");
        }
        let committer = Committer::start(journal.clone(), COMMIT_BATCH)?;
        Ok(Self {
            journal,
            committer,
            config,
            state: Mutex::new(state),
            wake: Notify::new(),
            registry,
            counters: Counters::default(),
            node,
        })
    }

    /// Starts the workers.
    pub fn start(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for _ in 0..self.config.workers {
            let this = Arc::downgrade(self);
            tasks.push(tokio::spawn(worker::worker(this)));
        }
        tasks.push(tokio::spawn(worker::janitor(Arc::downgrade(self))));
        tasks
    }

    /// Accepts an invocation: stores it durably, then queues it.
    pub async fn submit(&self, submission: Submission) -> Result<Accepted, SubmitError> {
        if let Some(key) = &submission.idempotency_key
            && (key.is_empty()
                || key.len() > MAX_KEY_LEN
                || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
        {
            return Err(SubmitError::BadRequest(format!(
                "Idempotency-Key must be 1-{MAX_KEY_LEN} printable ASCII characters"
            )));
        }
        for dest in [&submission.on_success, &submission.on_failure]
            .into_iter()
            .flatten()
        {
            if let Some(topic) = dest.strip_prefix(worker::MQTT_DESTINATION) {
                crate::config::check_topic(topic)
                    .map_err(|e| SubmitError::BadRequest(format!("destination {dest:?}: {e}")))?;
            } else if FunctionName::new(dest).is_err() {
                return Err(SubmitError::BadRequest(format!(
                    "destination {dest:?} is neither a function name nor mqtt://topic"
                )));
            }
        }
        let digest = hex::encode(Sha256::digest(&submission.payload));
        let now = unix_ms();
        let record = {
            let mut state = self.state.lock();
            if let Some(key) = &submission.idempotency_key {
                let k = (submission.function.clone(), key.clone());
                if let Some(id) = state.keys.get(&k) {
                    let first = match state.active.get(id) {
                        Some(r) => Some((r.payload_sha256.as_str(), r.status)),
                        None => state
                            .finished
                            .get(id)
                            .map(|f| (f.payload_sha256.as_str(), f.status)),
                    };
                    if let Some((sha, status)) = first {
                        if sha != digest {
                            return Err(SubmitError::Conflict {
                                key: key.clone(),
                                id: id.clone(),
                            });
                        }
                        return Ok(Accepted {
                            id: id.clone(),
                            status,
                            repeated: true,
                        });
                    }
                }
            }
            if state.pending >= self.config.max_queued {
                return Err(SubmitError::QueueFull(self.config.max_queued));
            }
            let max_bytes = self.config.max_stored_bytes.bytes();
            let size = submission.payload.len() as u64;
            if state.stored_bytes.saturating_add(size) > max_bytes {
                return Err(SubmitError::StorageFull(max_bytes));
            }
            let record = InvocationRecord {
                id: new_id(self.node.as_deref()),
                function: submission.function.clone(),
                status: Status::Queued,
                attempts: 0,
                created_at_ms: now,
                updated_at_ms: now,
                next_attempt_at_ms: None,
                idempotency_key: submission.idempotency_key.clone(),
                payload_sha256: digest,
                payload_bytes: submission.payload.len() as u64,
                content_type: submission.content_type.clone(),
                on_success: submission.on_success.clone(),
                on_failure: submission.on_failure.clone(),
                error: None,
                result_bytes: None,
                destination_invocation: None,
                fired: submission.fired.clone(),
            };
            // Counted (and its key taken) before it is written, so that a
            // concurrent repeat or a full queue is decided here.
            state.pending += 1;
            state.stored_bytes += size;
            if let Some(key) = &record.idempotency_key {
                state
                    .keys
                    .insert((record.function.clone(), key.clone()), record.id.clone());
            }
            state.active.insert(record.id.clone(), record.clone());
            record
        };
        let stored = self
            .committer
            .commit(record.clone(), submission.payload.clone())
            .await;
        let mut state = self.state.lock();
        if let Err(e) = stored {
            state.pending -= 1;
            state.stored_bytes = state.stored_bytes.saturating_sub(record.payload_bytes);
            state.active.remove(&record.id);
            if let Some(key) = &record.idempotency_key {
                state.keys.remove(&(record.function.clone(), key.clone()));
            }
            return Err(SubmitError::Store(e));
        }
        state.ready.insert((0, record.id.clone()));
        drop(state);
        self.counters.accepted.fetch_add(1, Relaxed);
        self.wake.notify_one();
        Ok(Accepted {
            id: record.id,
            status: Status::Queued,
            repeated: false,
        })
    }

    /// One invocation: from memory while it is queued or running, from disk
    /// once it finished.
    pub async fn get(&self, id: &str) -> Option<InvocationRecord> {
        {
            let state = self.state.lock();
            if let Some(record) = state.active.get(id) {
                return Some(record.clone());
            }
            if !state.finished.contains_key(id) {
                return None;
            }
        }
        let journal = self.journal.clone();
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || journal.read(&id).ok())
            .await
            .ok()
            .flatten()
    }

    /// A succeeded invocation's result.
    pub async fn result(&self, id: &str) -> Option<Vec<u8>> {
        let record = self.get(id).await?;
        if record.status != Status::Succeeded {
            return None;
        }
        let journal = self.journal.clone();
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || journal.result(&id).ok())
            .await
            .ok()
            .flatten()
    }

    /// Invocations, newest first, filtered by status and by their
    /// function's name (`function` says which to keep), at most `limit`.
    /// Finished ones are read from disk.
    pub async fn list(
        &self,
        status: Option<Status>,
        function: impl Fn(&str) -> bool,
        limit: usize,
    ) -> Vec<InvocationRecord> {
        let (mut list, finished) = {
            let state = self.state.lock();
            let active: Vec<InvocationRecord> = state
                .active
                .values()
                .filter(|r| status.is_none_or(|s| r.status == s))
                .filter(|r| function(&r.function))
                .cloned()
                .collect();
            let mut finished = state.finished_ids(status, &function);
            finished.truncate(limit);
            (active, finished)
        };
        let journal = self.journal.clone();
        let read = tokio::task::spawn_blocking(move || {
            finished
                .iter()
                .filter_map(|id| journal.read(id).ok())
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        list.extend(read);
        list.sort_by(|a, b| b.id.cmp(&a.id));
        list.truncate(limit);
        list
    }

    /// Invocations queued or running.
    pub fn depth(&self) -> u32 {
        self.state.lock().pending
    }

    /// The async invocation figures, for `/metrics`.
    pub fn figures(&self) -> AsyncFigures {
        let c = &self.counters;
        let dead_letters = self.state.lock().dead;
        AsyncFigures {
            queue_depth: self.depth(),
            dead_letters,
            accepted: c.accepted.load(Relaxed),
            succeeded: c.succeeded.load(Relaxed),
            retried: c.retried.load(Relaxed),
            dead: c.dead.load(Relaxed),
        }
    }
}
