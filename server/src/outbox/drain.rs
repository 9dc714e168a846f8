//! The drainer of one outbox: connects to the broker, sends waiting
//! messages in order, lets them go as the broker takes them, and reconnects
//! with backoff when the connection fails.

use super::{FunctionOutbox, LinkState};
use crate::config::EventsConfig;
use crate::mqtt::{Connect, backoff};
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the mark is written while messages flow.
const MARK_EVERY: Duration = Duration::from_millis(100);

pub(super) async fn drain(
    outbox: Arc<FunctionOutbox>,
    connect: Connect,
    events: EventsConfig,
    stop: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let error = tokio::select! {
            () = stop.cancelled() => return,
            error = session(&outbox, &connect, &events, &mut failures) => error,
        };
        failures += 1;
        let wait = backoff(&events, failures);
        tracing::warn!(function = %outbox.function, broker = %connect.address.host, port = connect.address.port, error = %error, retry_in = ?wait, "outbox connection to the broker failed");
        outbox.set_link(LinkState::Connecting { error: Some(error) });
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One connection: sends until it fails; why it ended.
async fn session(
    outbox: &Arc<FunctionOutbox>,
    connect: &Connect,
    events: &EventsConfig,
    failures: &mut u32,
) -> String {
    let mut options = match connect.options(events) {
        Ok(options) => options,
        Err(e) => return format!("TLS: {e}"),
    };
    let window = events.outbox_inflight as usize;
    options.set_clean_start(true);
    options.set_outgoing_inflight_upper_limit(u16::try_from(window).unwrap_or(u16::MAX));
    let (client, mut eventloop) = AsyncClient::new(options, window * 2 + 8);
    // Sent, waiting for the event loop to say which packet id it got.
    let mut written: VecDeque<(u64, u8)> = VecDeque::new();
    // Packet id -> message, waiting for the broker's PUBACK.
    let mut unacked: HashMap<u16, u64> = HashMap::new();
    let mut cursor = 0u64;
    let mut connected = false;
    let mut dirty = false;
    let mut last_mark = Instant::now();
    loop {
        if connected {
            while written.len() + unacked.len() < window {
                let Some(message) = outbox.next_from(cursor) else {
                    break;
                };
                let qos = if message.qos == 0 {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                };
                if client
                    .try_publish(message.topic, qos, message.retain, message.payload)
                    .is_err()
                {
                    break;
                }
                written.push_back((message.seq, message.qos));
                cursor = message.seq + 1;
            }
        }
        if dirty
            && (last_mark.elapsed() >= MARK_EVERY || (written.is_empty() && unacked.is_empty()))
        {
            let outbox = outbox.clone();
            match tokio::task::spawn_blocking(move || outbox.mark()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "writing the outbox mark failed"),
                Err(e) => tracing::error!(error = %e, "writing the outbox mark failed"),
            }
            dirty = false;
            last_mark = Instant::now();
        }
        let event = tokio::select! {
            () = outbox.wake.notified() => continue,
            () = tokio::time::sleep(MARK_EVERY), if dirty => continue,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                connected = true;
                *failures = 0;
                outbox.set_link(LinkState::Connected);
                tracing::info!(function = %outbox.function, "outbox connected to the broker");
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let Some((seq, qos)) = written.pop_front() else {
                    continue;
                };
                if qos == 0 {
                    outbox.taken(seq);
                    dirty = true;
                } else {
                    unacked.insert(pkid, seq);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some(seq) = unacked.remove(&ack.pkid) {
                    use rumqttc::v5::mqttbytes::v5::PubAckReason as R;
                    if !matches!(ack.reason, R::Success | R::NoMatchingSubscribers) {
                        // The broker will not take it: kept messages would
                        // block the topic forever.
                        tracing::warn!(function = %outbox.function, reason = ?ack.reason, "the broker refused an outbox message; it is dropped");
                    }
                    outbox.taken(seq);
                    dirty = true;
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
