// Sensor alerts on a gateway: readings arrive over MQTT, alerts go out over
// MQTT, and a summary goes to an HTTP endpoint on a schedule (the JavaScript
// twin of the Rust `sensor-alerts`, on floe-sdk/trigger, floe-sdk/mqtt and
// floe-sdk/config).
//
// Deploy it with two triggers (see the README):
// - an MQTT trigger on `sensors/+/temperature`: each message is a reading,
//   its payload a number (`21.5`). The function keeps the last `window`
//   readings of each sensor (state that lives in the reused instance) and,
//   when their average crosses `threshold` upwards, publishes
//   `{"average": ..., "sensor": ..., "threshold": ...}` to `alerts/{sensor}`
//   (QoS 1, through the durable outbox). It publishes again only after the
//   average went back under the threshold.
// - a cron trigger: it POSTs `{"sensors": {id: {"alerting": bool,
//   "average": a, "readings": n}}}` to `summary_url` with `Authorization:
//   Bearer {token}`, the `token` being a secret. A missing variable or an
//   answer other than 2xx fails the invocation, so that it is retried.
//
// Invoked by hand (no trigger), `{"topic": "sensors/s1/temperature",
// "value": 41}` is a reading; anything else sends the summary now.
//
// Variables: `threshold` (default 40), `window` (default 5), `summary_url`.
// Secret: `token`. Keep `max_instances=1` so that one instance sees every
// reading (the window is per instance).

import { InvalidInput } from 'floe-sdk';
import { get } from 'floe-sdk/config';
import { publish } from 'floe-sdk/mqtt';
import { trigger } from 'floe-sdk/trigger';

/** Per sensor: its last readings, and whether it is alerting. */
const sensors = new Map();

function setting(key, fallback, parse) {
  const value = parse((get(key) ?? '').trim());
  return Number.isFinite(value) ? value : fallback;
}

function average(state) {
  if (state.readings.length === 0) return 0;
  return state.readings.reduce((a, b) => a + b, 0) / state.readings.length;
}

function reading(topic, text) {
  const [root, sensor] = topic.split('/');
  if (root !== 'sensors' || !sensor) {
    throw new InvalidInput(`${topic}: not sensors/{id}/...`);
  }
  const value = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(value)) {
    throw new InvalidInput('a reading is a number');
  }
  const threshold = setting('threshold', 40, Number);
  const window = Math.max(setting('window', 5, (v) => Number.parseInt(v, 10)), 1);
  if (!sensors.has(sensor)) sensors.set(sensor, { readings: [], alerting: false });
  const state = sensors.get(sensor);
  state.readings.push(value);
  while (state.readings.length > window) state.readings.shift();
  const avg = average(state);
  const crossed = avg > threshold && !state.alerting;
  state.alerting = avg > threshold;
  if (!crossed) return 'ok';
  publish(`alerts/${sensor}`, { sensor, average: avg, threshold }, { qos: 1 });
  return `alert ${sensor} ${avg}`;
}

async function summary() {
  const url = get('summary_url');
  if (url === undefined) throw new Error('the summary_url variable is not set');
  const token = get('token');
  if (token === undefined) throw new Error('the token secret is not set');
  const report = {};
  for (const id of [...sensors.keys()].sort()) {
    const state = sensors.get(id);
    report[id] = { readings: state.readings.length, average: average(state), alerting: state.alerting };
  }
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ sensors: report }),
  });
  if (!response.ok) {
    throw new Error(`the summary endpoint answered ${response.status}`);
  }
  return 'summary sent';
}

export async function handle(payload, ctx) {
  const fired = trigger(ctx);
  const text = new TextDecoder().decode(payload);
  if (fired?.kind === 'mqtt') return reading(fired.topic, text);
  if (fired === null) {
    let doc = null;
    try {
      doc = JSON.parse(text);
    } catch {
      // Not JSON: the summary.
    }
    if (doc !== null && typeof doc === 'object' && 'topic' in doc) {
      return reading(String(doc.topic), String(doc.value));
    }
  }
  return summary();
}
