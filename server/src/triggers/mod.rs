//! Event sources: functions' cron and MQTT triggers, and the brokers their
//! outboxes drain to.
//!
//! The service follows the registry: whenever what serves changes (a
//! deploy, a reconfiguration, a rollback, a deletion) it compares each
//! active function's `triggers` with the running ones, starts the new,
//! stops the removed, and restarts the changed (a changed secret named by
//! `password_secret` counts). Each trigger is one task ([`cron`],
//! [`mqtt`]) with a [`TriggerStatus`] that the function view and
//! `/metrics` show. Triggers invoke through [`crate::invocations`]
//! (durably) or, for MQTT QoS 0, through [`crate::invoke`] directly.
//!
//! A trigger on a function that is not an event function does not start;
//! its status says why.
//!
//! In cluster mode every node runs every function's triggers, and they
//! share the work: a cron run fires on the one node that ranks highest for
//! the trigger among the live nodes (rendezvous hashing), and an MQTT
//! trigger subscribes through an MQTT 5 shared subscription
//! (`$share/{group}/{filter}`), so the broker hands each message to one
//! node. Client ids end in `@{node}`, so nodes never take each other's
//! sessions. Outboxes are per node.

mod cron;
mod marks;
mod mqtt;

use crate::clock::unix_ms;
use crate::cluster::Cluster;
use crate::config::{BrokerSpec, EventsConfig, TriggerSpec};
use crate::invocations::Invocations;
use crate::metrics::{EventFigures, OutboxRow, TriggerRow};
use crate::mqtt::Connect;
use crate::registry::Registry;
use marks::Marks;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio_util::sync::CancellationToken;

/// Where a trigger stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TriggerState {
    /// Starting.
    Starting,
    /// A cron trigger waits for its next time.
    Scheduled {
        /// The next time, ms since the Unix epoch.
        next_ms: u64,
    },
    /// An MQTT trigger is connecting, or waits to reconnect.
    Connecting {
        /// Why the last attempt failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// An MQTT trigger is connected and subscribed.
    Connected,
    /// An MQTT trigger holds messages unacknowledged: the invocation queue
    /// is full.
    Held {
        /// Why.
        reason: String,
    },
    /// The trigger cannot run (a refused subscription, not an event
    /// function); it stays so until it is configured again.
    Failed {
        /// Why.
        error: String,
    },
}

/// A running trigger's figures.
#[derive(Debug)]
pub struct TriggerStatus {
    /// The trigger's name.
    pub name: String,
    /// `cron` or `mqtt`.
    pub kind: &'static str,
    state: Mutex<TriggerState>,
    /// Invocations it started (cron runs queued, messages queued or
    /// invoked).
    pub fired: AtomicU64,
    /// MQTT messages received.
    pub received: AtomicU64,
    /// Runs or messages that failed to be queued (or QoS 0 invocations that
    /// failed).
    pub failed: AtomicU64,
    /// Times a cron trigger skipped missed runs after downtime.
    pub skipped: AtomicU64,
    /// Times a cron trigger ran once for missed runs after downtime.
    pub caught_up: AtomicU64,
    /// The last fire time (a cron run's scheduled time; an MQTT message's
    /// arrival), ms since the Unix epoch.
    pub last_fired_ms: AtomicU64,
}

impl TriggerState {
    /// The state's name, as in the view.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Scheduled { .. } => "scheduled",
            Self::Connecting { .. } => "connecting",
            Self::Connected => "connected",
            Self::Held { .. } => "held",
            Self::Failed { .. } => "failed",
        }
    }
}

impl TriggerStatus {
    fn new(name: &str, kind: &'static str, state: TriggerState) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            state: Mutex::new(state),
            fired: AtomicU64::new(0),
            received: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            caught_up: AtomicU64::new(0),
            last_fired_ms: AtomicU64::new(0),
        }
    }

    fn set(&self, state: TriggerState) {
        *self.state.lock() = state;
    }

    /// The state now.
    pub fn state(&self) -> TriggerState {
        self.state.lock().clone()
    }

    fn last_error(&self) -> Option<String> {
        match &*self.state.lock() {
            TriggerState::Connecting { error } => error.clone(),
            _ => None,
        }
    }

    fn is_held(&self) -> bool {
        matches!(&*self.state.lock(), TriggerState::Held { .. })
    }

    fn record_fired(&self, at_ms: u64) {
        self.fired.fetch_add(1, Relaxed);
        self.last_fired_ms.store(at_ms, Relaxed);
    }

    /// The view of it.
    pub fn view(&self) -> TriggerView {
        let last = self.last_fired_ms.load(Relaxed);
        TriggerView {
            name: self.name.clone(),
            kind: self.kind,
            state: self.state(),
            fired: self.fired.load(Relaxed),
            received: self.received.load(Relaxed),
            failed: self.failed.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            caught_up: self.caught_up.load(Relaxed),
            last_fired_ms: (last > 0).then_some(last),
        }
    }
}

/// What the function view says of a trigger.
#[derive(Clone, Debug, Serialize)]
pub struct TriggerView {
    /// Its name.
    pub name: String,
    /// `cron` or `mqtt`.
    pub kind: &'static str,
    /// Where it stands.
    #[serde(flatten)]
    pub state: TriggerState,
    /// Invocations it started.
    pub fired: u64,
    /// MQTT messages received.
    pub received: u64,
    /// Runs or messages it failed to queue or invoke.
    pub failed: u64,
    /// Times missed runs were skipped after downtime (`missed = "skip"`).
    pub skipped: u64,
    /// Times one run was made for missed ones (`missed = "once"`).
    pub caught_up: u64,
    /// The last fire time, ms since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_fired_ms: Option<u64>,
}

/// Late firing of cron runs, for `/metrics`: a histogram in milliseconds.
#[derive(Debug, Default)]
struct Jitter {
    /// Counts of runs at most 1, 5, 10, 50, 100, 500, 1000 ms late, and more.
    buckets: [AtomicU64; 8],
    sum_ms: AtomicU64,
}

/// The upper bounds of [`Jitter`]'s buckets, in ms.
const JITTER_BOUNDS_MS: [u64; 7] = [1, 5, 10, 50, 100, 500, 1000];

impl Jitter {
    fn record(&self, late_ms: u64) {
        let i = JITTER_BOUNDS_MS
            .iter()
            .position(|b| late_ms <= *b)
            .unwrap_or(JITTER_BOUNDS_MS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ms.fetch_add(late_ms, Relaxed);
    }

    /// Runs per bucket (the last past every bound), and the sum in ms.
    fn per_bucket(&self) -> ([u64; 8], u64) {
        let mut counts = [0u64; 8];
        for (count, bucket) in counts.iter_mut().zip(&self.buckets) {
            *count = bucket.load(Relaxed);
        }
        (counts, self.sum_ms.load(Relaxed))
    }
}

/// What the trigger tasks share.
struct Shared {
    registry: Arc<Registry>,
    invocations: Arc<Invocations>,
    events: EventsConfig,
    marks: Marks,
    jitter: Jitter,
    /// This node's part in a cluster: cron runs fire on one node, MQTT
    /// subscriptions are shared between the nodes.
    cluster: Option<Arc<Cluster>>,
    /// The live nodes last seen (kept when etcd does not answer).
    nodes: Mutex<Vec<String>>,
}

impl Shared {
    /// This node's id in a cluster.
    fn node(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.id())
    }

    /// Whether this node fires the run of `key` (a function's trigger): in a
    /// cluster, the node that ranks highest for it among the live nodes
    /// (rendezvous hashing: every node computes the same owner, and only
    /// the runs of a node that comes or goes move). Outside one, always.
    async fn owns(&self, key: &str) -> bool {
        let Some(cluster) = &self.cluster else {
            return true;
        };
        let me = cluster.id();
        match tokio::time::timeout(std::time::Duration::from_secs(2), cluster.nodes()).await {
            Ok(Ok(nodes)) => {
                *self.nodes.lock() = nodes.into_iter().map(|n| n.id).collect();
            }
            _ => tracing::debug!(
                key,
                "the node list is not available: using the last one seen"
            ),
        }
        let nodes = self.nodes.lock().clone();
        owner(&nodes, key).is_none_or(|owner| owner == me)
    }
}

/// The node of `nodes` that ranks highest for `key`.
fn owner<'a>(nodes: &'a [String], key: &str) -> Option<&'a str> {
    use sha2::{Digest as _, Sha256};
    nodes
        .iter()
        .max_by_key(|node| Sha256::digest(format!("{node}\n{key}").as_bytes()))
        .map(String::as_str)
}

struct Running {
    spec: TriggerSpec,
    connect: Option<Connect>,
    status: Arc<TriggerStatus>,
    stop: CancellationToken,
}

/// The triggers of every function on this node.
pub struct Triggers {
    shared: Arc<Shared>,
    running: Mutex<HashMap<(String, String), Running>>,
    /// Functions whose outbox was given a broker.
    publishing: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Triggers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Triggers").finish_non_exhaustive()
    }
}

/// A request id for an invocation that no HTTP request carried.
fn new_request_id() -> String {
    let mut random = [0u8; 8];
    let _ = getrandom::fill(&mut random);
    format!("{:011x}{}", unix_ms(), hex::encode(random))
}

impl Triggers {
    /// The service over `registry`'s functions, invoking through
    /// `invocations`; marks are kept in `data_dir`.
    pub fn new(
        registry: Arc<Registry>,
        invocations: Arc<Invocations>,
        events: EventsConfig,
        data_dir: &std::path::Path,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                registry,
                invocations,
                events,
                marks: Marks::new(data_dir),
                jitter: Jitter::default(),
                nodes: Mutex::new(cluster.iter().map(|c| c.id().to_owned()).collect()),
                cluster,
            }),
            running: Mutex::new(HashMap::new()),
            publishing: Mutex::new(HashSet::new()),
        }
    }

    /// Follows the registry until `stop`: reconciles now and after each
    /// change.
    pub fn start(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let mut changes = self.shared.registry.subscribe();
        tokio::spawn(async move {
            loop {
                this.reconcile();
                tokio::select! {
                    () = stop.cancelled() => break,
                    changed = changes.changed() => if changed.is_err() { break },
                }
            }
            this.stop_all();
        })
    }

    /// Stops every trigger and outbox drainer.
    pub fn stop_all(&self) {
        for (_, running) in self.running.lock().drain() {
            running.stop.cancel();
        }
        self.shared.registry.engine().outboxes().stop();
    }

    /// How to reach `broker` for `function`; `role` names the connection in
    /// the default client id: `floe:{function}:{trigger}` for a trigger,
    /// `floe:{function}/publish` for the outbox (`:` and `/` appear in no
    /// function or trigger name), and `@{node}` after it in a cluster.
    fn connect(&self, function: &str, role: &str, broker: &BrokerSpec) -> Option<Connect> {
        let address = broker.address().ok()?;
        let password = match &broker.password_secret {
            Some(secret) => {
                let value = self.shared.registry.secret(function, secret);
                if value.is_none() {
                    tracing::warn!(function, secret = %secret, "the broker password secret does not open; connecting without it");
                }
                value
            }
            None => None,
        };
        Some(Connect {
            username: broker.username.clone().or_else(|| address.username.clone()),
            address,
            client_id: {
                let id = broker
                    .client_id
                    .clone()
                    .unwrap_or_else(|| format!("floe:{function}{role}"));
                match self.shared.node() {
                    Some(node) => format!("{id}@{node}"),
                    None => id,
                }
            },
            password,
        })
    }

    /// Brings the running triggers and outbox brokers in line with the
    /// active functions' settings.
    pub fn reconcile(&self) {
        let functions = self.shared.registry.active();
        let mut wanted: HashMap<(String, String), (TriggerSpec, Option<Connect>, bool)> =
            HashMap::new();
        let mut publishing = HashSet::new();
        for function in &functions {
            let name = function.name.as_str();
            let settings = function.pool.settings();
            let events = function.runnable.prepared.handles_events();
            for spec in &settings.triggers {
                let connect = match spec {
                    TriggerSpec::Mqtt(m) => self.connect(name, &format!(":{}", m.name), &m.broker),
                    TriggerSpec::Cron(_) => None,
                };
                wanted.insert(
                    (name.to_owned(), spec.name().to_owned()),
                    (spec.clone(), connect, events),
                );
            }
            if let Some(broker) = settings.publish_broker() {
                let connect = self.connect(name, "/publish", broker);
                self.shared
                    .registry
                    .engine()
                    .outboxes()
                    .set_broker(name, connect);
                publishing.insert(name.to_owned());
            }
        }
        {
            let mut was = self.publishing.lock();
            for gone in was.difference(&publishing) {
                self.shared
                    .registry
                    .engine()
                    .outboxes()
                    .set_broker(gone, None);
            }
            *was = publishing;
        }
        let mut running = self.running.lock();
        running.retain(|key, r| {
            let keep = wanted
                .get(key)
                .is_some_and(|(spec, connect, _)| *spec == r.spec && *connect == r.connect);
            if !keep {
                r.stop.cancel();
                tracing::info!(function = %key.0, trigger = %key.1, "trigger stopped");
            }
            keep
        });
        for (key, (spec, connect, events)) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            let stop = CancellationToken::new();
            let kind = match spec {
                TriggerSpec::Cron(_) => "cron",
                TriggerSpec::Mqtt(_) => "mqtt",
            };
            let status = Arc::new(TriggerStatus::new(&key.1, kind, TriggerState::Starting));
            if !events {
                status.set(TriggerState::Failed {
                    error: "the function does not export floe:function/event: triggers invoke \
                            event functions"
                        .into(),
                });
            } else {
                let (shared, function) = (self.shared.clone(), key.0.clone());
                match (&spec, &connect) {
                    (TriggerSpec::Cron(c), _) => {
                        tokio::spawn(cron::run(
                            shared,
                            function,
                            c.clone(),
                            status.clone(),
                            stop.clone(),
                        ));
                    }
                    (TriggerSpec::Mqtt(m), Some(connect)) => {
                        tokio::spawn(mqtt::run(
                            shared,
                            function,
                            m.clone(),
                            connect.clone(),
                            status.clone(),
                            stop.clone(),
                        ));
                    }
                    (TriggerSpec::Mqtt(m), None) => status.set(TriggerState::Failed {
                        error: format!("{:?} is not a broker URL", m.broker.broker),
                    }),
                }
                tracing::info!(function = %key.0, trigger = %key.1, kind, "trigger started");
            }
            running.insert(
                key,
                Running {
                    spec,
                    connect,
                    status,
                    stop,
                },
            );
        }
    }

    /// The views of `function`'s triggers, in name order.
    pub fn views_of(&self, function: &str) -> Vec<TriggerView> {
        let mut views: Vec<TriggerView> = self
            .running
            .lock()
            .iter()
            .filter(|((f, _), _)| f == function)
            .map(|(_, r)| r.status.view())
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }

    /// Every trigger's view with its function, for `/metrics`.
    pub fn all_views(&self) -> Vec<(String, TriggerView)> {
        let mut views: Vec<(String, TriggerView)> = self
            .running
            .lock()
            .iter()
            .map(|((f, _), r)| (f.clone(), r.status.view()))
            .collect();
        views.sort_by(|a, b| (&a.0, &a.1.name).cmp(&(&b.0, &b.1.name)));
        views
    }

    /// `function`'s outbox figures, if it has an outbox.
    pub fn outbox_of(&self, function: &str) -> Option<crate::outbox::OutboxFigures> {
        self.shared
            .registry
            .engine()
            .outboxes()
            .figures_of(function)
    }

    /// Triggers' and outboxes' figures, for `/metrics`.
    pub fn figures(&self) -> EventFigures {
        let triggers = self
            .all_views()
            .into_iter()
            .map(|(function, v)| TriggerRow {
                function,
                trigger: v.name,
                kind: v.kind,
                state: v.state.name(),
                fired: v.fired,
                received: v.received,
                failed: v.failed,
            })
            .collect();
        let outboxes = self
            .shared
            .registry
            .engine()
            .outboxes()
            .figures()
            .into_iter()
            .map(|o| OutboxRow {
                function: o.function,
                depth: o.depth,
                bytes: o.bytes,
                oldest_age_seconds: o.oldest_age_ms as f64 / 1000.0,
                sent: o.sent,
                refused: o.refused_full,
                connected: o.link == crate::outbox::LinkState::Connected,
            })
            .collect();
        let (per_bucket, sum_ms) = self.shared.jitter.per_bucket();
        let mut cron_lateness: Vec<(f64, u64)> = JITTER_BOUNDS_MS
            .iter()
            .map(|ms| *ms as f64 / 1000.0)
            .chain([f64::INFINITY])
            .zip(per_bucket)
            .collect();
        cron_lateness.truncate(JITTER_BOUNDS_MS.len() + 1);
        EventFigures {
            triggers,
            outboxes,
            cron_lateness,
            cron_lateness_sum: sum_ms as f64 / 1000.0,
        }
    }
}

impl Drop for Triggers {
    fn drop(&mut self) {
        for running in self.running.get_mut().values() {
            running.stop.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_picks_the_same_owner_and_work_is_spread() {
        let nodes: Vec<String> = ["node-1", "node-2", "node-3"].map(String::from).to_vec();
        let mut reversed = nodes.clone();
        reversed.reverse();
        let mut per_node: HashMap<&str, usize> = HashMap::new();
        for i in 0..300 {
            let key = format!("f{i}\ntick");
            let owner = owner(&nodes, &key);
            assert_eq!(owner, self::owner(&reversed, &key), "order does not matter");
            *per_node.entry(owner.unwrap_or_default()).or_default() += 1;
        }
        assert_eq!(per_node.len(), 3, "{per_node:?}");
        assert!(per_node.values().all(|n| *n > 50), "{per_node:?}");
        // A node leaving moves only its own keys.
        let two = &nodes[..2];
        for i in 0..300 {
            let key = format!("f{i}\ntick");
            let before = owner(&nodes, &key);
            if before != Some("node-3") {
                assert_eq!(owner(two, &key), before);
            }
        }
        assert_eq!(owner(&[], "k"), None);
    }
}
