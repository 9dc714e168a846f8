// An event function that says what started it, and publishes on demand: the
// JavaScript twin of the Rust `trigger-probe`, through floe-sdk/trigger and
// floe-sdk/mqtt.
//
// - Every invocation answers (and prints, as `probe saw {json}`) a JSON
//   document: the request id, the trigger (`null` over HTTP or the API,
//   else `{"kind": "cron" | "mqtt", ...}`), the payload as text and its
//   content type.
// - The payload `publish N TOPIC [QOS]` publishes `N` messages to `TOPIC`
//   (payloads `0` to `N-1`, QoS 1 unless `QOS` is 0) and answers how many
//   were queued, and the first error, if one stopped it.
// - The payload `fail` fails the invocation (so it is retried); `sleep:N`
//   answers after N milliseconds.

import { trigger } from 'floe-sdk/trigger';
import { publish, PublishError } from 'floe-sdk/mqtt';

const decoder = new TextDecoder();

// The trigger as the Rust probe writes it (snake_case fields).
function triggerJson(fired) {
  if (fired === null) {
    return null;
  }
  if (fired.kind === 'cron') {
    return {
      kind: 'cron',
      name: fired.name,
      schedule: fired.schedule,
      time_zone: fired.timeZone,
      scheduled_ms: fired.scheduledMs,
    };
  }
  if (fired.kind === 'mqtt') {
    return {
      kind: 'mqtt',
      name: fired.name,
      topic: fired.topic,
      qos: fired.qos,
      retain: fired.retain,
      user_properties: fired.userProperties,
    };
  }
  return { kind: fired.kind };
}

function publishMany(command) {
  const [count, topic = 'probe/out', qos] = command.split(/\s+/).filter((w) => w !== '');
  const n = Number.parseInt(count ?? '', 10) || 0;
  let published = 0;
  let error = null;
  for (let i = 0; i < n; i++) {
    try {
      publish(topic, String(i), { qos: qos === '0' ? 0 : 1 });
      published += 1;
    } catch (e) {
      if (!(e instanceof PublishError)) {
        throw e;
      }
      error = e.message;
      break;
    }
  }
  return { published, error };
}

export async function handle(payload, ctx) {
  const text = decoder.decode(payload);
  if (text === 'fail') {
    throw new Error('asked to fail');
  }
  if (text.startsWith('sleep:')) {
    const ms = Number(text.slice('sleep:'.length));
    if (Number.isFinite(ms)) {
      await new Promise((resolve) => setTimeout(resolve, ms));
    }
  }
  if (text.startsWith('publish ')) {
    return publishMany(text.slice('publish '.length));
  }
  const seen = {
    request_id: ctx.requestId,
    trigger: triggerJson(trigger(ctx)),
    payload: text,
    content_type: ctx.contentType,
  };
  // `ctx.trigger()` reads the same.
  if (JSON.stringify(ctx.trigger()) !== JSON.stringify(trigger(ctx))) {
    throw new Error('ctx.trigger() and trigger(ctx) disagree');
  }
  console.log(`probe saw ${JSON.stringify(seen)}`);
  return seen;
}
