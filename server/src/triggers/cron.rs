//! A cron trigger: sleeps until the schedule's next time, then submits a
//! durable async invocation keyed by the scheduled time, and records that
//! time. After downtime, missed runs are skipped or made up for once.
//!
//! A run is never doubled: the next time is always after the last one
//! fired, the last one is kept on disk, and the invocation's idempotency
//! key (`floe-cron-{trigger}-{time}`) makes a repeat after a crash between
//! the two writes return the first invocation.

use super::marks::CronMark;
use super::{Shared, TriggerState, TriggerStatus};
use crate::clock::unix_ms;
use crate::config::{CronSpec, Missed, parse_schedule, parse_time_zone};
use crate::host::Fired;
use crate::invocations::{Submission, SubmitError};
use bytes::Bytes;
use jiff::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Waits for a full queue at most this long before the run is missed.
const SUBMIT_PATIENCE: Duration = Duration::from_secs(30);

pub(super) async fn run(
    shared: Arc<Shared>,
    function: String,
    spec: CronSpec,
    status: Arc<TriggerStatus>,
    stop: CancellationToken,
) {
    let (schedule, zone) = match (
        parse_schedule(&spec.schedule),
        parse_time_zone(&spec.time_zone),
    ) {
        (Ok(s), Ok(z)) => (s, z),
        (Err(e), _) | (_, Err(e)) => {
            status.set(TriggerState::Failed { error: e });
            return;
        }
    };
    let kept = shared
        .marks
        .cron(&function, &spec.name)
        .filter(|m| m.schedule == spec.schedule && m.time_zone == spec.time_zone);
    // The time to go on from: the last run fired, or now for a new trigger.
    let mut after = Timestamp::now().to_zoned(zone.clone());
    if let Some(mark) = &kept
        && let Ok(last) = Timestamp::from_millisecond(mark.last_ms as i64)
    {
        status
            .last_fired_ms
            .store(mark.last_ms, std::sync::atomic::Ordering::Relaxed);
        let last = last.to_zoned(zone.clone());
        let due = schedule.find_next_occurrence(&last, false).ok();
        let now = Timestamp::now().to_zoned(zone.clone());
        if let Some(due) = due
            && due <= now
            && shared.owns(&format!("{function}\n{}", spec.name)).await
        {
            let missed_last = schedule.find_previous_occurrence(&now, true).ok();
            match (spec.missed, missed_last) {
                (Missed::Once, Some(missed)) => {
                    tracing::info!(function, trigger = %spec.name, first_missed = %due, last_missed = %missed, "cron runs were missed: running once for them");
                    fire(&shared, &function, &spec, &status, &missed).await;
                    status
                        .caught_up
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    after = missed;
                }
                _ => {
                    tracing::info!(function, trigger = %spec.name, first_missed = %due, "cron runs were missed: skipped");
                    status
                        .skipped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }
    loop {
        let next = match schedule.find_next_occurrence(&after, false) {
            Ok(next) => next,
            Err(e) => {
                status.set(TriggerState::Failed {
                    error: format!("no next time for {:?}: {e}", spec.schedule),
                });
                return;
            }
        };
        let next_ms = next.timestamp().as_millisecond().max(0) as u64;
        status.set(TriggerState::Scheduled { next_ms });
        // Sleep on the wall clock: re-check after each wake, so that a
        // clock change (or an early wake) never fires a run early.
        loop {
            let now = unix_ms();
            if now >= next_ms {
                break;
            }
            let wait = Duration::from_millis(next_ms - now);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
        after = next.clone();
        if !shared.owns(&format!("{function}\n{}", spec.name)).await {
            // Another node of the cluster fires this one.
            continue;
        }
        let lateness = unix_ms().saturating_sub(next_ms);
        shared.jitter.record(lateness);
        fire(&shared, &function, &spec, &status, &next).await;
    }
}

/// Submits the run due at `at`, then records it as fired.
async fn fire(
    shared: &Shared,
    function: &str,
    spec: &CronSpec,
    status: &TriggerStatus,
    at: &jiff::Zoned,
) {
    let at_ms = at.timestamp().as_millisecond().max(0) as u64;
    let payload = serde_json::json!({
        "trigger": spec.name,
        "schedule": spec.schedule,
        "scheduled": at.timestamp().to_string(),
        "scheduled_ms": at_ms,
    });
    let submission = Submission {
        function: function.to_owned(),
        payload: Bytes::from(payload.to_string()),
        content_type: Some("application/json".into()),
        idempotency_key: Some(format!("floe-cron-{}-{at_ms}", spec.name)),
        on_success: None,
        on_failure: None,
        fired: Some(Fired::Cron {
            name: spec.name.clone(),
            schedule: spec.schedule.clone(),
            time_zone: spec.time_zone.clone(),
            scheduled_ms: at_ms,
        }),
    };
    let started = std::time::Instant::now();
    let mut wait = Duration::from_millis(50);
    let accepted = loop {
        match shared.invocations.submit(submission.clone()).await {
            Ok(accepted) => break Some(accepted),
            Err(e @ (SubmitError::QueueFull(_) | SubmitError::StorageFull(_)))
                if started.elapsed() < SUBMIT_PATIENCE =>
            {
                tracing::debug!(function, trigger = %spec.name, error = %e, "cron run waits for room in the queue");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::warn!(function, trigger = %spec.name, scheduled = %at, error = %e, "a cron run could not be queued: missed");
                status
                    .failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                break None;
            }
        }
    };
    if let Some(accepted) = &accepted {
        tracing::debug!(function, trigger = %spec.name, scheduled = %at, invocation = %accepted.id, "cron run queued");
        status.record_fired(at_ms);
    }
    let mark = CronMark {
        schedule: spec.schedule.clone(),
        time_zone: spec.time_zone.clone(),
        last_ms: at_ms,
    };
    let marks = shared.marks.clone();
    let (function, name) = (function.to_owned(), spec.name.clone());
    let written =
        tokio::task::spawn_blocking(move || marks.set_cron(&function, &name, &mark)).await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::error!(trigger = %spec.name, "recording a cron run failed; its idempotency key still keeps it from running twice");
    }
}
