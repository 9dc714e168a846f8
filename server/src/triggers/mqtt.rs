//! An MQTT trigger: one MQTT 5 connection that subscribes to the trigger's
//! topic filters and turns each message into an invocation.
//!
//! - **QoS 1**: the message becomes a durable async invocation, and floe
//!   acknowledges it to the broker only once the invocation is on disk
//!   (acknowledgements go in the order messages arrived). A SIGKILL before
//!   that leaves the message unacknowledged in the broker's session (floe
//!   connects with a persistent session), so the broker sends it again:
//!   at least once. When the invocation queue is full, floe retries and
//!   does not acknowledge meanwhile; the broker stops sending past the
//!   receive maximum and keeps the rest.
//! - **QoS 0**: the message is invoked at once, without a disk write (at
//!   most once, as MQTT means it), at most `events.receive_maximum` at a
//!   time; past that, floe stops reading the connection.

use super::{Shared, TriggerState, TriggerStatus};
use crate::clock::unix_ms;
use crate::config::MqttSpec;
use crate::host::Fired;
use crate::invocations::{Submission, SubmitError};
use crate::invoke::{Call, RequestId, event_status};
use crate::mqtt::{Connect, backoff};
use futures::StreamExt as _;
use futures::stream::FuturesOrdered;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish};
use rumqttc::v5::mqttbytes::{QoS, v5::SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long the broker keeps the session (and unacknowledged messages)
/// while floe is away: a day.
const SESSION_EXPIRY_SECS: u32 = 24 * 3600;

pub(super) async fn run(
    shared: Arc<Shared>,
    function: String,
    spec: MqttSpec,
    connect: Connect,
    status: Arc<TriggerStatus>,
    stop: CancellationToken,
) {
    let fingerprint = {
        let mut topics = spec.topics.clone();
        topics.sort();
        format!(
            "{}|{}|{}|{}",
            spec.broker.broker,
            connect.client_id,
            topics.join(","),
            spec.qos
        )
    };
    let mut clean = shared.marks.session(&function, &spec.name).as_deref() != Some(&fingerprint);
    let qos0 = Arc::new(Semaphore::new(usize::from(shared.events.receive_maximum)));
    let mut failures = 0u32;
    loop {
        status.set(TriggerState::Connecting {
            error: status.last_error(),
        });
        let session = Session {
            shared: &shared,
            function: &function,
            spec: &spec,
            status: &status,
            qos0: &qos0,
        };
        let error = tokio::select! {
            () = stop.cancelled() => return,
            error = session.run(&connect, &fingerprint, &mut clean, &mut failures) => error,
        };
        failures += 1;
        let wait = backoff(&shared.events, failures);
        tracing::warn!(function, trigger = %spec.name, broker = %spec.broker.broker, error = %error, retry_in = ?wait, "MQTT trigger disconnected");
        status.set(TriggerState::Connecting { error: Some(error) });
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

struct Session<'a> {
    shared: &'a Arc<Shared>,
    function: &'a str,
    spec: &'a MqttSpec,
    status: &'a Arc<TriggerStatus>,
    qos0: &'a Arc<Semaphore>,
}

impl Session<'_> {
    /// One connection; why it ended.
    async fn run(
        &self,
        connect: &Connect,
        fingerprint: &str,
        clean: &mut bool,
        failures: &mut u32,
    ) -> String {
        let mut options = match connect.options(&self.shared.events) {
            Ok(options) => options,
            Err(e) => return format!("TLS: {e}"),
        };
        options.set_clean_start(*clean);
        options.set_session_expiry_interval(Some(SESSION_EXPIRY_SECS));
        options.set_manual_acks(true);
        let receive_maximum = self.shared.events.receive_maximum;
        options.set_receive_maximum(Some(receive_maximum));
        let (client, mut eventloop) =
            AsyncClient::new(options, usize::from(receive_maximum) * 2 + 16);
        let mut queued = FuturesOrdered::new();
        loop {
            let event = tokio::select! {
                Some((publish, stored)) = queued.next(), if !queued.is_empty() => {
                    let publish: Publish = publish;
                    if stored && client.try_ack(&publish).is_err() {
                        return "the MQTT client's request queue is full".into();
                    }
                    continue;
                }
                event = eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    *failures = 0;
                    let qos = if self.spec.qos == 0 {
                        QoS::AtMostOnce
                    } else {
                        QoS::AtLeastOnce
                    };
                    // In a cluster the nodes share the subscription: the
                    // broker hands each message to one of them.
                    let group = self.shared.node().map(|_| {
                        format!("floe:{}:{}", self.function, self.spec.name)
                            .replace(['/', '+', '#'], "_")
                    });
                    let filters = self.spec.topics.iter().map(|t| {
                        let filter = match &group {
                            Some(group) => format!("$share/{group}/{t}"),
                            None => t.clone(),
                        };
                        Filter::new(filter, qos)
                    });
                    if let Err(e) = client.try_subscribe_many(filters) {
                        return format!("subscribing: {e}");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused: Vec<String> = self
                        .spec
                        .topics
                        .iter()
                        .zip(&ack.return_codes)
                        .filter(|(_, code)| !matches!(code, SubscribeReasonCode::Success(_)))
                        .map(|(topic, code)| format!("{topic} ({code:?})"))
                        .collect();
                    if !refused.is_empty() {
                        self.status.set(TriggerState::Failed {
                            error: format!(
                                "the broker refused to subscribe to {}",
                                refused.join(", ")
                            ),
                        });
                        return format!("subscriptions refused: {}", refused.join(", "));
                    }
                    self.status.set(TriggerState::Connected);
                    tracing::info!(function = self.function, trigger = %self.spec.name, "MQTT trigger subscribed");
                    if *clean {
                        *clean = false;
                        let marks = self.shared.marks.clone();
                        let (f, t, fp) = (
                            self.function.to_owned(),
                            self.spec.name.clone(),
                            fingerprint.to_owned(),
                        );
                        let _ = tokio::task::spawn_blocking(move || marks.set_session(&f, &t, &fp))
                            .await;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    self.status.received.fetch_add(1, Relaxed);
                    if publish.qos == QoS::AtMostOnce {
                        self.invoke_now(publish).await;
                    } else {
                        queued.push_back(self.queue(publish));
                    }
                }
                Ok(Event::Incoming(Packet::Disconnect(d))) => {
                    return format!("the broker disconnected: {:?}", d.reason_code);
                }
                Ok(_) => {}
                Err(e) => return e.to_string(),
            }
        }
    }

    fn fired(&self, publish: &Publish) -> (Fired, Option<String>) {
        let (user_properties, content_type) = match &publish.properties {
            Some(p) => (p.user_properties.clone(), p.content_type.clone()),
            None => (Vec::new(), None),
        };
        let fired = Fired::Mqtt {
            name: self.spec.name.clone(),
            topic: String::from_utf8_lossy(&publish.topic).into_owned(),
            qos: match publish.qos {
                QoS::AtMostOnce => 0,
                _ => 1,
            },
            retain: publish.retain,
            user_properties,
        };
        (fired, content_type)
    }

    /// A QoS 1 message: stored as an async invocation. Resolves to the
    /// message and whether it was stored (then it is acknowledged).
    fn queue(&self, publish: Publish) -> impl Future<Output = (Publish, bool)> + use<> {
        let (fired, content_type) = self.fired(&publish);
        let submission = Submission {
            function: self.function.to_owned(),
            payload: publish.payload.clone(),
            content_type,
            idempotency_key: None,
            on_success: None,
            on_failure: None,
            fired: Some(fired),
        };
        let shared = self.shared.clone();
        let status = self.status.clone();
        async move {
            let mut wait = Duration::from_millis(20);
            loop {
                match shared.invocations.submit(submission.clone()).await {
                    Ok(_) => {
                        status.record_fired(unix_ms());
                        if status.is_held() {
                            status.set(TriggerState::Connected);
                        }
                        return (publish, true);
                    }
                    Err(e @ (SubmitError::QueueFull(_) | SubmitError::StorageFull(_))) => {
                        // Not acknowledged: the broker keeps it (and, past
                        // the receive maximum, the ones after it).
                        status.set(TriggerState::Held {
                            reason: e.to_string(),
                        });
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(1));
                    }
                    Err(e) => {
                        tracing::error!(trigger = %status.name, error = %e, "an MQTT message could not be queued; it is not acknowledged");
                        status.failed.fetch_add(1, Relaxed);
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(1));
                    }
                }
            }
        }
    }

    /// A QoS 0 message: invoked now, without a disk write.
    async fn invoke_now(&self, publish: Publish) {
        let Ok(permit) = self.qos0.clone().acquire_owned().await else {
            return;
        };
        let (fired, content_type) = self.fired(&publish);
        let shared = self.shared.clone();
        let status = self.status.clone();
        let function = self.function.to_owned();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(function) = shared.registry.get(&function) else {
                status.failed.fetch_add(1, Relaxed);
                return;
            };
            let id = super::new_request_id();
            let request_id = RequestId::known(&id);
            let call = Call::new(&function, &request_id, Instant::now());
            let reply = call
                .event(&publish.payload, content_type, Some(&fired))
                .await;
            call.finish(event_status(&reply));
            status.record_fired(unix_ms());
            if !matches!(reply, Ok(crate::invoke::EventReply::Output(_))) {
                status.failed.fetch_add(1, Relaxed);
            }
        });
    }
}
