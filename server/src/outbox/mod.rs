//! Store-and-forward MQTT publishing: each function that publishes has a
//! durable outbox, and one connection to its broker that drains it.
//!
//! - A message is appended to the outbox log and synced before `publish`
//!   returns to the guest: it survives a broker outage and a SIGKILL.
//! - The drainer sends messages in outbox order (so in order per topic) with
//!   at most `outbox_inflight` unacknowledged, and lets a message go when
//!   the broker acknowledged it (QoS 1) or when it was written to the
//!   connection (QoS 0). After a lost connection or a crash, what was not
//!   acknowledged is sent again: at least once.
//! - A full outbox (`outbox_max_messages`, `outbox_max_bytes`) refuses the
//!   publish with `outbox-full`; nothing is dropped.
//!
//! The outbox does not know about functions' settings: the triggers service
//! tells it each function's broker ([`Outboxes::set_broker`]).

mod drain;
mod log;

pub use log::Message;

use crate::clock::unix_ms;
use crate::config::{EventsConfig, check_topic};
use crate::mqtt::Connect;
use bytes::Bytes;
use log::Log;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Why a message was not queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The topic or payload is not allowed.
    #[error("{0}")]
    Invalid(String),
    /// The outbox is at one of its limits.
    #[error("the outbox is full: {0}")]
    Full(String),
    /// Writing failed.
    #[error("storing the message: {0}")]
    Store(#[from] std::io::Error),
}

/// Where an outbox's connection stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum LinkState {
    /// No broker is configured for it.
    #[default]
    Unconfigured,
    /// Connecting (or waiting to reconnect, with the last error).
    Connecting {
        /// Why the last attempt failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Connected to the broker.
    Connected,
}

/// The figures of one outbox, for views and `/metrics`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OutboxFigures {
    /// The function.
    pub function: String,
    /// Messages waiting.
    pub depth: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Age of the oldest waiting message, in ms (0 when none waits).
    pub oldest_age_ms: u64,
    /// Messages the broker took since the server started.
    pub sent: u64,
    /// Publishes refused because the outbox was full.
    pub refused_full: u64,
    /// The connection.
    pub link: LinkState,
}

#[derive(Debug, Default)]
struct Pending {
    messages: BTreeMap<u64, Message>,
    /// Messages and bytes queued or being written.
    count: u64,
    bytes: u64,
}

/// The outbox of one function.
#[derive(Debug)]
pub struct FunctionOutbox {
    function: String,
    log: Arc<Mutex<Log>>,
    next_seq: Mutex<u64>,
    pending: Mutex<Pending>,
    events: EventsConfig,
    /// New messages (for the drainer).
    wake: Notify,
    link: Mutex<LinkState>,
    sent: AtomicU64,
    refused_full: AtomicU64,
}

impl FunctionOutbox {
    /// Queues a message durably. Returns once it is on disk.
    pub async fn publish(
        self: &Arc<Self>,
        topic: String,
        payload: Bytes,
        qos: u8,
        retain: bool,
    ) -> Result<(), PublishError> {
        check_topic(&topic).map_err(PublishError::Invalid)?;
        let max = self.events.max_message_bytes;
        if payload.len() as u64 > max.0 {
            return Err(PublishError::Invalid(format!(
                "the payload is {} bytes, more than {max} (events.max_message_bytes)",
                payload.len()
            )));
        }
        if qos > 1 {
            return Err(PublishError::Invalid("qos is 0 or 1".into()));
        }
        let size = (topic.len() + payload.len()) as u64;
        {
            let mut pending = self.pending.lock();
            let (max_n, max_b) = (
                u64::from(self.events.outbox_max_messages),
                self.events.outbox_max_bytes.0,
            );
            if pending.count >= max_n || pending.bytes.saturating_add(size) > max_b {
                self.refused_full.fetch_add(1, Relaxed);
                return Err(PublishError::Full(format!(
                    "{} messages, {} bytes wait for the broker (events.outbox_max_messages \
                     {max_n}, outbox_max_bytes {})",
                    pending.count, pending.bytes, self.events.outbox_max_bytes
                )));
            }
            pending.count += 1;
            pending.bytes += size;
        }
        let this = self.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut log = this.log.lock();
            let message = {
                let mut next = this.next_seq.lock();
                let seq = *next;
                *next += 1;
                Message {
                    seq,
                    queued_at_ms: unix_ms(),
                    topic,
                    payload,
                    qos,
                    retain,
                }
            };
            log.append(std::slice::from_ref(&message))?;
            // Under the log's lock: the drainer sees messages in log order.
            this.pending.lock().messages.insert(message.seq, message);
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        if let Err(e) = written {
            let mut pending = self.pending.lock();
            pending.count -= 1;
            pending.bytes = pending.bytes.saturating_sub(size);
            return Err(PublishError::Store(e));
        }
        self.wake.notify_one();
        Ok(())
    }

    /// The first waiting message at or after `seq`.
    fn next_from(&self, seq: u64) -> Option<Message> {
        self.pending
            .lock()
            .messages
            .range(seq..)
            .next()
            .map(|(_, m)| m.clone())
    }

    /// The broker took `seq`: it goes.
    fn taken(&self, seq: u64) {
        let mut pending = self.pending.lock();
        if let Some(m) = pending.messages.remove(&seq) {
            pending.count -= 1;
            pending.bytes = pending.bytes.saturating_sub(m.size());
            self.sent.fetch_add(1, Relaxed);
        }
    }

    /// Writes the mark: everything before the first waiting message was
    /// taken. Blocking.
    fn mark(&self) -> std::io::Result<()> {
        let mut log = self.log.lock();
        let (first, rest) = {
            let pending = self.pending.lock();
            let first = pending.messages.keys().next().copied();
            let rest: Vec<Message> = if first.is_some() {
                pending.messages.values().cloned().collect()
            } else {
                Vec::new()
            };
            (first, rest)
        };
        let through = match first {
            Some(seq) => seq - 1,
            None => *self.next_seq.lock() - 1,
        };
        log.mark_sent(through, &rest)
    }

    fn set_link(&self, state: LinkState) {
        *self.link.lock() = state;
    }

    /// Its figures.
    pub fn figures(&self) -> OutboxFigures {
        let pending = self.pending.lock();
        let oldest = pending.messages.values().next().map(|m| m.queued_at_ms);
        OutboxFigures {
            function: self.function.clone(),
            depth: pending.messages.len() as u64,
            bytes: pending.bytes,
            oldest_age_ms: oldest.map_or(0, |at| unix_ms().saturating_sub(at)),
            sent: self.sent.load(Relaxed),
            refused_full: self.refused_full.load(Relaxed),
            link: self.link.lock().clone(),
        }
    }
}

struct Entry {
    outbox: Arc<FunctionOutbox>,
    /// The broker its drainer connects to, and the drainer's stop.
    drainer: Option<(Connect, CancellationToken)>,
}

/// Every function's outbox.
pub struct Outboxes {
    dir: PathBuf,
    tmp: PathBuf,
    events: EventsConfig,
    open: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for Outboxes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outboxes").finish_non_exhaustive()
    }
}

impl Outboxes {
    /// The outboxes under `data_dir`.
    pub fn new(data_dir: &std::path::Path, events: EventsConfig) -> Self {
        Self {
            dir: data_dir.join("outbox"),
            tmp: data_dir.join("tmp"),
            events,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// `function`'s outbox, opened (and loaded from disk) on first use.
    pub fn get(&self, function: &str) -> std::io::Result<Arc<FunctionOutbox>> {
        let mut open = self.open.lock();
        if let Some(entry) = open.get(function) {
            return Ok(entry.outbox.clone());
        }
        let opened = Log::open(&self.dir.join(function), &self.tmp)?;
        if !opened.pending.is_empty() {
            tracing::info!(
                function,
                messages = opened.pending.len(),
                "outbox messages wait for the broker"
            );
        }
        let mut pending = Pending::default();
        for m in opened.pending {
            pending.count += 1;
            pending.bytes += m.size();
            pending.messages.insert(m.seq, m);
        }
        let outbox = Arc::new(FunctionOutbox {
            function: function.to_owned(),
            log: Arc::new(Mutex::new(opened.log)),
            next_seq: Mutex::new(opened.next_seq),
            pending: Mutex::new(pending),
            events: self.events.clone(),
            wake: Notify::new(),
            link: Mutex::new(LinkState::Unconfigured),
            sent: AtomicU64::new(0),
            refused_full: AtomicU64::new(0),
        });
        open.insert(
            function.to_owned(),
            Entry {
                outbox: outbox.clone(),
                drainer: None,
            },
        );
        Ok(outbox)
    }

    /// Sets the broker `function`'s outbox drains to (`None`: none; its
    /// messages wait). A changed broker restarts the drainer.
    pub fn set_broker(&self, function: &str, connect: Option<Connect>) {
        if connect.is_none() && !self.open.lock().contains_key(function) {
            return;
        }
        let outbox = match self.get(function) {
            Ok(outbox) => outbox,
            Err(e) => {
                tracing::error!(function, error = %e, "opening the outbox failed");
                return;
            }
        };
        let mut open = self.open.lock();
        let Some(entry) = open.get_mut(function) else {
            return;
        };
        if entry.drainer.as_ref().map(|(c, _)| c) == connect.as_ref() {
            return;
        }
        if let Some((_, stop)) = entry.drainer.take() {
            stop.cancel();
        }
        match connect {
            Some(connect) => {
                let stop = CancellationToken::new();
                outbox.set_link(LinkState::Connecting { error: None });
                tokio::spawn(drain::drain(
                    outbox,
                    connect.clone(),
                    self.events.clone(),
                    stop.clone(),
                ));
                entry.drainer = Some((connect, stop));
            }
            None => outbox.set_link(LinkState::Unconfigured),
        }
    }

    /// Functions whose outboxes are open.
    pub fn functions(&self) -> Vec<String> {
        self.open.lock().keys().cloned().collect()
    }

    /// `function`'s outbox figures, if it has an outbox open.
    pub fn figures_of(&self, function: &str) -> Option<OutboxFigures> {
        let outbox = self.open.lock().get(function)?.outbox.clone();
        Some(outbox.figures())
    }

    /// Every open outbox's figures, in function order.
    pub fn figures(&self) -> Vec<OutboxFigures> {
        let outboxes: Vec<Arc<FunctionOutbox>> = self
            .open
            .lock()
            .values()
            .map(|e| e.outbox.clone())
            .collect();
        let mut figures: Vec<OutboxFigures> = outboxes.iter().map(|o| o.figures()).collect();
        figures.sort_by(|a, b| a.function.cmp(&b.function));
        figures
    }

    /// Stops every drainer (at shutdown).
    pub fn stop(&self) {
        for entry in self.open.lock().values_mut() {
            if let Some((_, stop)) = entry.drainer.take() {
                stop.cancel();
            }
        }
    }
}
