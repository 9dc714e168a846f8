//! What the service keeps in memory: the whole record of every queued or
//! running invocation, and only a small entry per finished one (its record
//! stays on disk), with the bytes stored on disk counted so that
//! `max_stored_bytes` and `max_finished` can be held.

use super::{InvocationRecord, Status};
use std::collections::{BTreeSet, HashMap};

/// What is kept in memory of a finished invocation.
#[derive(Debug, Clone)]
pub(super) struct Finished {
    pub(super) function: String,
    pub(super) status: Status,
    pub(super) payload_sha256: String,
    /// Bytes its files hold on disk (the result; the payload is deleted
    /// when it finishes).
    pub(super) bytes: u64,
    finished_ms: u64,
}

/// The in-memory state of the service.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Queued and running invocations.
    pub(super) active: HashMap<String, InvocationRecord>,
    /// Finished invocations, by id.
    pub(super) finished: HashMap<String, Finished>,
    /// Finished invocations, oldest first.
    finished_order: BTreeSet<(u64, String)>,
    /// Queued invocations by due time.
    pub(super) ready: BTreeSet<(u64, String)>,
    /// (function, key) → id.
    pub(super) keys: HashMap<(String, String), String>,
    /// Queued and running.
    pub(super) pending: u32,
    /// Bytes of payloads and results on disk.
    pub(super) stored_bytes: u64,
    /// Dead invocations kept.
    pub(super) dead: u64,
}

impl State {
    /// Adds a finished invocation (at startup, or when it finishes).
    pub(super) fn add_finished(&mut self, record: &InvocationRecord) {
        let bytes = record.result_bytes.unwrap_or(0);
        self.stored_bytes += bytes;
        if record.status == Status::Dead {
            self.dead += 1;
        }
        self.finished_order
            .insert((record.updated_at_ms, record.id.clone()));
        self.finished.insert(
            record.id.clone(),
            Finished {
                function: record.function.clone(),
                status: record.status,
                payload_sha256: record.payload_sha256.clone(),
                bytes,
                finished_ms: record.updated_at_ms,
            },
        );
    }

    /// Forgets a finished invocation; its idempotency key too.
    pub(super) fn remove_finished(&mut self, id: &str, key: Option<&str>) {
        if let Some(f) = self.finished.remove(id) {
            self.finished_order.remove(&(f.finished_ms, id.to_owned()));
            self.stored_bytes = self.stored_bytes.saturating_sub(f.bytes);
            if f.status == Status::Dead {
                self.dead = self.dead.saturating_sub(1);
            }
            if let Some(key) = key {
                self.keys.remove(&(f.function, key.to_owned()));
            }
        }
    }

    /// The oldest finished invocations to remove: those finished before
    /// `cutoff_ms`, then as many more as it takes to keep at most
    /// `max_finished` and `max_stored_bytes`.
    pub(super) fn to_prune(
        &self,
        cutoff_ms: u64,
        max_finished: usize,
        max_bytes: u64,
    ) -> Vec<String> {
        let mut count = self.finished.len();
        let mut bytes = self.stored_bytes;
        let mut out = Vec::new();
        for (finished_ms, id) in &self.finished_order {
            if *finished_ms >= cutoff_ms && count <= max_finished && bytes <= max_bytes {
                break;
            }
            count -= 1;
            bytes = bytes.saturating_sub(self.finished.get(id).map_or(0, |f| f.bytes));
            out.push(id.clone());
        }
        out
    }

    /// Ids of finished invocations, newest first, with status `status`
    /// (any when `None`) and a function `function` keeps.
    pub(super) fn finished_ids(
        &self,
        status: Option<Status>,
        function: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut ids: Vec<String> = self
            .finished
            .iter()
            .filter(|(_, f)| status.is_none_or(|s| f.status == s))
            .filter(|(_, f)| function(&f.function))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, status: Status, at: u64, result: u64) -> InvocationRecord {
        InvocationRecord {
            id: id.to_owned(),
            function: "f".to_owned(),
            status,
            attempts: 1,
            created_at_ms: at,
            updated_at_ms: at,
            next_attempt_at_ms: None,
            idempotency_key: None,
            payload_sha256: String::new(),
            payload_bytes: 0,
            content_type: None,
            on_success: None,
            on_failure: None,
            error: None,
            result_bytes: Some(result),
            destination_invocation: None,
            fired: None,
        }
    }

    #[test]
    fn the_oldest_finished_go_first_by_age_count_and_bytes() {
        let mut s = State::default();
        s.add_finished(&record("a", Status::Succeeded, 10, 100));
        s.add_finished(&record("b", Status::Dead, 20, 0));
        s.add_finished(&record("c", Status::Succeeded, 30, 100));
        assert_eq!((s.stored_bytes, s.dead), (200, 1));
        assert!(s.to_prune(0, 10, 1000).is_empty());
        assert_eq!(s.to_prune(25, 10, 1000), ["a", "b"]);
        assert_eq!(s.to_prune(0, 1, 1000), ["a", "b"]);
        assert_eq!(s.to_prune(0, 10, 150), ["a"]);
        s.remove_finished("b", None);
        assert_eq!((s.finished.len(), s.dead), (2, 0));
        assert_eq!(s.finished_ids(None, |f| f == "f"), ["c", "a"]);
    }
}
