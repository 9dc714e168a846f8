//! The workers: each takes the next due invocation, runs one attempt
//! through the [`crate::invoke`] layer, and records what happened (done,
//! retried after a backoff, or dead, with its destinations invoked).

use super::{AttemptError, InvocationRecord, Invocations, Status, Submission};
use crate::clock::unix_ms;
use crate::invoke::{Call, EventReply, InvokeError, RequestId, event_status};
use crate::status::ErrorCode;

/// A destination that publishes the result to an MQTT topic.
pub(super) const MQTT_DESTINATION: &str = "mqtt://";
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

impl Invocations {
    /// Takes the next due invocation, marking it running; or says how long
    /// until one is due.
    fn next_due(&self) -> Result<InvocationRecord, Option<Duration>> {
        let mut state = self.state.lock();
        let now = unix_ms();
        let Some((due, id)) = state.ready.first().cloned() else {
            return Err(None);
        };
        if due > now {
            return Err(Some(Duration::from_millis(due - now)));
        }
        state.ready.pop_first();
        let Some(record) = state.active.get_mut(&id) else {
            return Err(Some(Duration::ZERO));
        };
        record.status = Status::Running;
        record.attempts += 1;
        record.updated_at_ms = now;
        record.next_attempt_at_ms = None;
        Ok(record.clone())
    }

    /// Stores the new state of `record` (after an attempt). A finished
    /// invocation's payload is deleted, and the oldest finished ones go when
    /// there are too many or they hold too many bytes.
    async fn settle(&self, record: InvocationRecord, result: Option<Vec<u8>>) {
        let journal = self.journal.clone();
        let stored = {
            let record = record.clone();
            tokio::task::spawn_blocking(move || {
                if let Some(bytes) = &result {
                    journal.put_result(&record.id, bytes)?;
                }
                journal.update(&record)?;
                if record.status.is_final() {
                    journal.remove_payload(&record.id)?;
                }
                Ok::<_, std::io::Error>(())
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
        {
            let mut state = self.state.lock();
            if record.status.is_final() {
                state.pending -= 1;
                state.active.remove(&record.id);
                state.stored_bytes = state.stored_bytes.saturating_sub(record.payload_bytes);
                state.add_finished(&record);
            } else {
                let due = record.next_attempt_at_ms.unwrap_or(0);
                state.ready.insert((due, record.id.clone()));
                state.active.insert(record.id.clone(), record);
            }
        }
        self.wake.notify_one();
        // Past `max_finished` or `max_stored_bytes`, the oldest go now.
        self.remove(self.expire()).await;
    }

    /// Deletes the files of `expired` invocations.
    pub(super) async fn remove(&self, expired: Vec<String>) {
        if expired.is_empty() {
            return;
        }
        let n = expired.len();
        let journal = self.journal.clone();
        let removed = tokio::task::spawn_blocking(move || {
            expired.iter().try_for_each(|id| journal.remove(id))
        })
        .await;
        if !matches!(removed, Ok(Ok(()))) {
            tracing::warn!("removing finished invocations failed; their files stay");
        }
        tracing::debug!(invocations = n, "let finished invocations go");
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
        let now = unix_ms();
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
        if let Some(topic) = dest.strip_prefix(MQTT_DESTINATION) {
            return self.publish_result(record, topic, payload).await;
        }
        let submission = Submission {
            function: dest.to_owned(),
            payload,
            content_type,
            idempotency_key: Some(format!("floe-destination-{}", record.id)),
            on_success: None,
            on_failure: None,
            fired: None,
        };
        match self.submit(submission).await {
            Ok(accepted) => Some(accepted.id),
            Err(e) => {
                tracing::warn!(invocation = %record.id, destination = dest, error = %e, "invoking the destination failed");
                None
            }
        }
    }

    /// Publishes a result to an `mqtt://topic` destination through the
    /// function's outbox (QoS 1); `mqtt://topic` as the destination's id,
    /// or `None` (logged) when it was refused.
    async fn publish_result(
        &self,
        record: &InvocationRecord,
        topic: &str,
        payload: Bytes,
    ) -> Option<String> {
        let Some(function) = self.registry.get(&record.function) else {
            tracing::warn!(invocation = %record.id, "the function is gone: its result is not published");
            return None;
        };
        if function.pool.settings().publish_broker().is_none() {
            tracing::warn!(invocation = %record.id, function = %record.function, "an mqtt:// destination, but the function has no broker to publish to");
            return None;
        }
        let outbox = match self.registry.engine().outboxes().get(&record.function) {
            Ok(outbox) => outbox,
            Err(e) => {
                tracing::error!(invocation = %record.id, error = %e, "opening the outbox failed");
                return None;
            }
        };
        match outbox.publish(topic.to_owned(), payload, 1, false).await {
            Ok(()) => Some(format!("{MQTT_DESTINATION}{topic}")),
            Err(e) => {
                tracing::warn!(invocation = %record.id, topic, error = %e, "publishing the result failed");
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
        let Some(function) = self.registry.get(&record.function) else {
            return Err(fail(ErrorCode::NotFound, "no such function".into(), true));
        };
        if !function.runnable.prepared.handles_events() {
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
        let request_id = RequestId::known(&record.id);
        let call = Call::new(&function, &request_id, Instant::now());
        let reply = call
            .event(&payload, record.content_type.clone(), record.fired.as_ref())
            .await;
        call.finish(event_status(&reply));
        match reply {
            Ok(EventReply::Output(bytes)) => Ok(bytes),
            Ok(EventReply::InvalidInput(message)) => {
                Err(fail(ErrorCode::InvalidInput, message, false))
            }
            Ok(EventReply::Failed(message)) => Err(fail(ErrorCode::FunctionError, message, true)),
            Err(e) => Err(error_of(&e)),
        }
    }

    /// Forgets the finished invocations older than `retention`, and the
    /// oldest ones past `max_finished` or `max_stored_bytes`; their ids, to
    /// delete from disk.
    pub(super) fn expire(&self) -> Vec<String> {
        let cutoff = unix_ms().saturating_sub(self.config.retention.0.as_millis() as u64);
        let mut state = self.state.lock();
        let expired = state.to_prune(
            cutoff,
            self.config.max_finished as usize,
            self.config.max_stored_bytes.bytes(),
        );
        for id in &expired {
            // The key is forgotten with it (found by id in the key map).
            let key = state
                .keys
                .iter()
                .find(|(_, v)| *v == id)
                .map(|((_, k), _)| k.clone());
            state.remove_finished(id, key.as_deref());
        }
        expired
    }
}

fn error_of(e: &InvokeError) -> (AttemptError, bool) {
    (
        AttemptError {
            code: e.code().as_str().to_owned(),
            message: e.public_message().to_owned(),
        },
        true,
    )
}

pub(super) async fn worker(this: Weak<Invocations>) {
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

pub(super) async fn janitor(this: Weak<Invocations>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(service) = this.upgrade() else {
            return;
        };
        let expired = service.expire();
        service.remove(expired).await;
    }
}
