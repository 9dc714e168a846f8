//! Async invocation of event functions: accepted durably, run later by a
//! pool of workers, retried with backoff, and dead-lettered when out of
//! attempts.
//!
//! Guarantees:
//! - `202 Accepted` is sent only after the payload and the record are on
//!   disk (written atomically and synced), so an accepted invocation
//!   survives SIGKILL and power loss and runs after the restart.
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
//! - The queue is bounded (`max_queued`); past it, `503 overloaded`.
//!   Finished invocations are kept for `retention`.

mod record;

pub use record::{AttemptError, InvocationRecord, Journal, Status};

use crate::config::InvocationsConfig;
use crate::dataplane::DataPlane;
use crate::pool::{EventReply, InvokeError};
use crate::status::ErrorCode;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// Why an invocation was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The queue is full.
    #[error("the async invocation queue is full ({0} invocations)")]
    QueueFull(u32),
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
            Self::QueueFull(_) => ErrorCode::Overloaded,
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

#[derive(Default)]
struct State {
    records: HashMap<String, InvocationRecord>,
    /// Queued invocations by due time.
    ready: BTreeSet<(u64, String)>,
    /// (function, key) → id.
    keys: HashMap<(String, String), String>,
    /// Queued and running.
    pending: u32,
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
    config: InvocationsConfig,
    state: Mutex<State>,
    wake: Notify,
    dataplane: OnceLock<Weak<DataPlane>>,
    counters: Counters,
}

impl std::fmt::Debug for Invocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocations").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

const MAX_KEY_LEN: usize = 255;

fn new_id() -> String {
    let mut random = [0u8; 8];
    let _ = getrandom::fill(&mut random);
    format!("{:011x}{}", now_ms(), hex::encode(random))
}

impl Invocations {
    /// Opens the store in `data_dir` and loads every invocation in it:
    /// queued and running ones (cut short by a stop or crash) queue again.
    pub fn open(data_dir: &std::path::Path, config: InvocationsConfig) -> std::io::Result<Self> {
        let journal = Journal::open(data_dir)?;
        let (records, removed) = journal.load()?;
        if !removed.is_empty() {
            tracing::warn!(files = ?removed, "removed unacknowledged or damaged invocation files");
        }
        let mut state = State::default();
        let mut requeued = 0;
        for mut record in records {
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
            }
            if let Some(key) = &record.idempotency_key {
                state
                    .keys
                    .insert((record.function.clone(), key.clone()), record.id.clone());
            }
            state.records.insert(record.id.clone(), record);
        }
        if requeued > 0 {
            tracing::info!(invocations = requeued, "async invocations queued again");
        }
        Ok(Self {
            journal,
            config,
            state: Mutex::new(state),
            wake: Notify::new(),
            dataplane: OnceLock::new(),
            counters: Counters::default(),
        })
    }

    /// Starts the workers, which invoke functions through `dataplane`.
    pub fn start(self: &Arc<Self>, dataplane: &Arc<DataPlane>) -> Vec<tokio::task::JoinHandle<()>> {
        let _ = self.dataplane.set(Arc::downgrade(dataplane));
        let mut tasks = Vec::new();
        for _ in 0..self.config.workers {
            let this = Arc::downgrade(self);
            tasks.push(tokio::spawn(worker(this)));
        }
        tasks.push(tokio::spawn(janitor(Arc::downgrade(self))));
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
            if crate::registry::FunctionName::new(dest).is_err() {
                return Err(SubmitError::BadRequest(format!(
                    "destination {dest:?} is not a function name"
                )));
            }
        }
        let digest = hex::encode(Sha256::digest(&submission.payload));
        let now = now_ms();
        let record = {
            let mut state = lock(&self.state);
            if let Some(key) = &submission.idempotency_key {
                let k = (submission.function.clone(), key.clone());
                if let Some(id) = state.keys.get(&k) {
                    let first = &state.records[id];
                    if first.payload_sha256 != digest {
                        return Err(SubmitError::Conflict {
                            key: key.clone(),
                            id: id.clone(),
                        });
                    }
                    return Ok(Accepted {
                        id: id.clone(),
                        status: first.status,
                        repeated: true,
                    });
                }
            }
            if state.pending >= self.config.max_queued {
                return Err(SubmitError::QueueFull(self.config.max_queued));
            }
            let record = InvocationRecord {
                id: new_id(),
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
            };
            // Counted (and its key taken) before it is written, so that a
            // concurrent repeat or a full queue is decided here.
            state.pending += 1;
            if let Some(key) = &record.idempotency_key {
                state
                    .keys
                    .insert((record.function.clone(), key.clone()), record.id.clone());
            }
            state.records.insert(record.id.clone(), record.clone());
            record
        };
        let journal = self.journal.clone();
        let stored = {
            let record = record.clone();
            let payload = submission.payload.clone();
            tokio::task::spawn_blocking(move || journal.create(&record, &payload))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r)
        };
        let mut state = lock(&self.state);
        if let Err(e) = stored {
            state.pending -= 1;
            state.records.remove(&record.id);
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

    /// One invocation.
    pub fn get(&self, id: &str) -> Option<InvocationRecord> {
        lock(&self.state).records.get(id).cloned()
    }

    /// A succeeded invocation's result.
    pub async fn result(&self, id: &str) -> Option<Vec<u8>> {
        let record = self.get(id)?;
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

    /// Invocations, newest first, filtered by status and function, at most
    /// `limit`.
    pub fn list(
        &self,
        status: Option<Status>,
        function: Option<&str>,
        limit: usize,
    ) -> Vec<InvocationRecord> {
        let state = lock(&self.state);
        let mut list: Vec<InvocationRecord> = state
            .records
            .values()
            .filter(|r| status.is_none_or(|s| r.status == s))
            .filter(|r| function.is_none_or(|f| r.function == f))
            .cloned()
            .collect();
        list.sort_by(|a, b| b.id.cmp(&a.id));
        list.truncate(limit);
        list
    }

    /// Invocations queued or running.
    pub fn depth(&self) -> u32 {
        lock(&self.state).pending
    }

    /// The Prometheus text of the async invocation figures.
    pub fn render_metrics(&self) -> String {
        let c = &self.counters;
        let dead_stored = lock(&self.state)
            .records
            .values()
            .filter(|r| r.status == Status::Dead)
            .count();
        format!(
            "# HELP floe_async_queue_depth Async invocations queued or running.\n\
             # TYPE floe_async_queue_depth gauge\n\
             floe_async_queue_depth {}\n\
             # HELP floe_async_dead_letters Dead invocations kept.\n\
             # TYPE floe_async_dead_letters gauge\n\
             floe_async_dead_letters {dead_stored}\n\
             # HELP floe_async_invocations_total Async invocations, by what happened.\n\
             # TYPE floe_async_invocations_total counter\n\
             floe_async_invocations_total{{event=\"accepted\"}} {}\n\
             floe_async_invocations_total{{event=\"succeeded\"}} {}\n\
             floe_async_invocations_total{{event=\"retried\"}} {}\n\
             floe_async_invocations_total{{event=\"dead\"}} {}\n",
            self.depth(),
            c.accepted.load(Relaxed),
            c.succeeded.load(Relaxed),
            c.retried.load(Relaxed),
            c.dead.load(Relaxed),
        )
    }

    /// Takes the next due invocation, marking it running; or says how long
    /// until one is due.
    fn next_due(&self) -> Result<InvocationRecord, Option<Duration>> {
        let mut state = lock(&self.state);
        let now = now_ms();
        let Some((due, id)) = state.ready.first().cloned() else {
            return Err(None);
        };
        if due > now {
            return Err(Some(Duration::from_millis(due - now)));
        }
        state.ready.pop_first();
        let Some(record) = state.records.get_mut(&id) else {
            return Err(Some(Duration::ZERO));
        };
        record.status = Status::Running;
        record.attempts += 1;
        record.updated_at_ms = now;
        record.next_attempt_at_ms = None;
        Ok(record.clone())
    }

    /// Stores the new state of `record` (after an attempt).
    async fn settle(&self, record: InvocationRecord, result: Option<Vec<u8>>) {
        let journal = self.journal.clone();
        let stored = {
            let record = record.clone();
            tokio::task::spawn_blocking(move || {
                if let Some(bytes) = &result {
                    journal.put_result(&record.id, bytes)?;
                }
                journal.update(&record)
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
        };
        if let Err(e) = stored {
            // The record on disk still says queued: it runs again after a
            // restart (at least once).
            tracing::error!(invocation = %record.id, error = %e, "storing an invocation's outcome failed");
        }
        let mut state = lock(&self.state);
        if record.status.is_final() {
            state.pending -= 1;
        } else {
            let due = record.next_attempt_at_ms.unwrap_or(0);
            state.ready.insert((due, record.id.clone()));
        }
        state.records.insert(record.id.clone(), record);
        drop(state);
        self.wake.notify_one();
    }

    /// Runs one attempt of `record` and settles it. The attempt is on disk
    /// before it starts, so that attempts cut short by a crash count.
    async fn attempt(self: &Arc<Self>, mut record: InvocationRecord) {
        let journal = self.journal.clone();
        let running = record.clone();
        let stored = tokio::task::spawn_blocking(move || journal.update(&running)).await;
        if !matches!(stored, Ok(Ok(()))) {
            tracing::warn!(invocation = %record.id, "recording the start of an attempt failed");
        }
        let outcome = self.run(&record).await;
        let now = now_ms();
        record.updated_at_ms = now;
        let mut result = None;
        match outcome {
            Ok(bytes) => {
                record.status = Status::Succeeded;
                record.error = None;
                record.result_bytes = Some(bytes.len() as u64);
                self.counters.succeeded.fetch_add(1, Relaxed);
                if let Some(dest) = record.on_success.clone() {
                    record.destination_invocation = self
                        .forward(&record, &dest, Bytes::from(bytes.clone()), None)
                        .await;
                }
                result = Some(bytes);
            }
            Err((error, retryable)) => {
                let age = Duration::from_millis(now.saturating_sub(record.created_at_ms));
                let out_of_attempts = record.attempts >= self.config.max_attempts;
                let too_old = age >= self.config.max_age.0;
                tracing::warn!(invocation = %record.id, function = %record.function, attempt = record.attempts, code = %error.code, message = %error.message, "async invocation attempt failed");
                record.error = Some(error);
                if retryable && !out_of_attempts && !too_old {
                    let backoff = self.backoff(record.attempts);
                    record.status = Status::Queued;
                    record.next_attempt_at_ms = Some(now + backoff.as_millis() as u64);
                    self.counters.retried.fetch_add(1, Relaxed);
                } else {
                    record.status = Status::Dead;
                    self.counters.dead.fetch_add(1, Relaxed);
                    if let Some(dest) = record.on_failure.clone() {
                        let report = serde_json::json!({
                            "invocation": record.id,
                            "function": record.function,
                            "attempts": record.attempts,
                            "error": record.error,
                        });
                        record.destination_invocation = self
                            .forward(
                                &record,
                                &dest,
                                Bytes::from(report.to_string()),
                                Some("application/json".to_owned()),
                            )
                            .await;
                    }
                }
            }
        }
        self.settle(record, result).await;
    }

    /// Submits a destination invocation; its id, or `None` (logged) when it
    /// was refused. Keyed by the source invocation, so a repeat after a
    /// crash does not invoke the destination twice.
    async fn forward(
        &self,
        record: &InvocationRecord,
        dest: &str,
        payload: Bytes,
        content_type: Option<String>,
    ) -> Option<String> {
        let submission = Submission {
            function: dest.to_owned(),
            payload,
            content_type,
            idempotency_key: Some(format!("floe-destination-{}", record.id)),
            on_success: None,
            on_failure: None,
        };
        match self.submit(submission).await {
            Ok(accepted) => Some(accepted.id),
            Err(e) => {
                tracing::warn!(invocation = %record.id, destination = dest, error = %e, "invoking the destination failed");
                None
            }
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let base = self.config.retry_base.0;
        let factor = 1u32 << attempts.saturating_sub(1).min(20);
        base.saturating_mul(factor).min(self.config.retry_max.0)
    }

    /// Runs `record`'s function once. The error says whether to retry.
    async fn run(&self, record: &InvocationRecord) -> Result<Vec<u8>, (AttemptError, bool)> {
        let fail = |code: ErrorCode, message: String, retry: bool| {
            (
                AttemptError {
                    code: code.as_str().to_owned(),
                    message,
                },
                retry,
            )
        };
        let Some(dataplane) = self.dataplane.get().and_then(Weak::upgrade) else {
            return Err(fail(
                ErrorCode::Unavailable,
                "the server is stopping".into(),
                true,
            ));
        };
        let Some(function) = dataplane.registry().get(&record.function) else {
            return Err(fail(ErrorCode::NotFound, "no such function".into(), true));
        };
        if function.runnable.prepared.event.is_none() {
            return Err(fail(
                ErrorCode::BadRequest,
                "the function does not export floe:function/event".into(),
                false,
            ));
        }
        let journal = self.journal.clone();
        let id = record.id.clone();
        let payload = tokio::task::spawn_blocking(move || journal.payload(&id))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|e| {
                fail(
                    ErrorCode::Internal,
                    format!("reading the payload: {e}"),
                    false,
                )
            })?;
        let start = Instant::now();
        let reply = dataplane
            .run_event(
                &function,
                &record.id,
                &payload,
                record.content_type.clone(),
                start,
            )
            .await;
        function.metrics.record(
            match &reply {
                Ok(EventReply::Output(_)) => http::StatusCode::OK,
                Ok(EventReply::InvalidInput(_)) => http::StatusCode::BAD_REQUEST,
                Ok(EventReply::Failed(_)) => http::StatusCode::INTERNAL_SERVER_ERROR,
                Err(e) => ErrorCode::from(e).status(),
            },
            start.elapsed(),
        );
        match reply {
            Ok(EventReply::Output(bytes)) => Ok(bytes),
            Ok(EventReply::InvalidInput(message)) => {
                Err(fail(ErrorCode::InvalidInput, message, false))
            }
            Ok(EventReply::Failed(message)) => Err(fail(ErrorCode::FunctionError, message, true)),
            Err(e) => Err(error_of(&e)),
        }
    }

    /// Removes finished invocations older than `retention`.
    fn expire(&self) -> Vec<String> {
        let cutoff = now_ms().saturating_sub(self.config.retention.0.as_millis() as u64);
        let mut state = lock(&self.state);
        let expired: Vec<String> = state
            .records
            .values()
            .filter(|r| r.status.is_final() && r.updated_at_ms < cutoff)
            .map(|r| r.id.clone())
            .collect();
        for id in &expired {
            if let Some(r) = state.records.remove(id)
                && let Some(key) = r.idempotency_key
            {
                state.keys.remove(&(r.function, key));
            }
        }
        expired
    }
}

fn error_of(e: &InvokeError) -> (AttemptError, bool) {
    (
        AttemptError {
            code: ErrorCode::from(e).as_str().to_owned(),
            message: crate::dataplane::public_message(e).to_owned(),
        },
        true,
    )
}

async fn worker(this: Weak<Invocations>) {
    loop {
        let Some(service) = this.upgrade() else {
            return;
        };
        match service.next_due() {
            Ok(record) => service.attempt(record).await,
            Err(wait) => {
                let wake = service.wake.notified();
                tokio::pin!(wake);
                wake.as_mut().enable();
                let wait = wait.unwrap_or(Duration::from_secs(60));
                let _ = tokio::time::timeout(wait, wake).await;
            }
        }
    }
}

async fn janitor(this: Weak<Invocations>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(service) = this.upgrade() else {
            return;
        };
        let expired = service.expire();
        let journal = service.journal.clone();
        drop(service);
        if expired.is_empty() {
            continue;
        }
        let n = expired.len();
        let removed = tokio::task::spawn_blocking(move || {
            expired.iter().try_for_each(|id| journal.remove(id))
        })
        .await;
        if !matches!(removed, Ok(Ok(()))) {
            tracing::warn!("removing expired invocations failed; retrying later");
        }
        tracing::debug!(invocations = n, "expired finished invocations");
    }
}
