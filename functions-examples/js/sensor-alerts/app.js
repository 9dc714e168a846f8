// Sensor alerts on a gateway: readings arrive over MQTT, alerts go out over
// MQTT, and a summary goes to an HTTP endpoint on a schedule. The JavaScript
// twin of the Rust `sensor-alerts`: it answers, publishes and posts the same
// bytes, through floe-sdk/trigger, floe-sdk/mqtt and floe-sdk/config.
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
//
// JSON is written as the Rust example's serde_json writes it: keys in order,
// no spaces, numbers as f64 (`40.0` where `JSON.stringify` would write `40`,
// `0.00001`, `1e-6`, `1e+16`), a number that is not finite as `null`.

import { InvalidInput } from 'floe-sdk';
import { get } from 'floe-sdk/config';
import { publish } from 'floe-sdk/mqtt';
import { trigger } from 'floe-sdk/trigger';

// What Rust's `str::trim` takes off: the Unicode White_Space characters
// (String.prototype.trim differs: it keeps U+0085 and takes U+FEFF).
const SPACE = '[\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const TRIM = new RegExp(`^${SPACE}+|${SPACE}+$`, 'g');
// What Rust's `f64::from_str` reads.
const F64 = /^[+-]?(?:(inf|infinity)|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?)$/i;
// What Rust's `usize::from_str` reads (a wasm32 `usize`: up to 2^32 - 1).
const USIZE = /^\+?[0-9]+$/;
const USIZE_MAX = 2 ** 32 - 1;
// serde_json's nesting limit: deeper documents are not JSON to it.
const MAX_DEPTH = 127;
const SURROGATE = /[\ud800-\udfff]/;

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** `text.trim().parse::<f64>().ok()`, `null` for `None`. */
function parseF64(text) {
  if (text === null || text === undefined) {
    return null;
  }
  const t = text.replace(TRIM, '');
  const m = F64.exec(t);
  if (m === null) {
    return null;
  }
  if (m[1] !== undefined) {
    return t.startsWith('-') ? -Infinity : Infinity;
  }
  return /nan/i.test(t) ? NaN : Number(t);
}

/** `text.trim().parse::<usize>().ok()`, `null` for `None`. */
function parseUsize(text) {
  if (text === null || text === undefined) {
    return null;
  }
  const t = text.replace(TRIM, '');
  if (!USIZE.test(t)) {
    return null;
  }
  const n = Number(t);
  return n <= USIZE_MAX ? n : null;
}

/** A finite, positive `x` as its shortest digits and exponent:
 * `x == d[0].d[1..] * 10 ** e`. */
function decimal(x) {
  const [mantissa, exp] = x.toExponential().split('e');
  return [mantissa.replace('.', ''), Number(exp)];
}

function fixed(digits, e) {
  if (e >= digits.length - 1) {
    return digits + '0'.repeat(e - digits.length + 1);
  }
  if (e >= 0) {
    return `${digits.slice(0, e + 1)}.${digits.slice(e + 1)}`;
  }
  return `0.${'0'.repeat(-e - 1)}${digits}`;
}

/** `x` as serde_json writes an f64: `40.0`, `0.5`, `0.00001`, `1e-6`,
 * `1.5e+16`; `null` when it is not finite. */
function jsonNumber(x) {
  if (!Number.isFinite(x)) {
    return 'null';
  }
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) {
    return `${sign}0.0`;
  }
  const [digits, e] = decimal(Math.abs(x));
  if (e >= -5 && e <= 15) {
    const text = fixed(digits, e);
    return sign + (text.includes('.') ? text : `${text}.0`);
  }
  const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${mantissa}e${e >= 0 ? '+' : '-'}${Math.abs(e)}`;
}

/** `x` as Rust's `{}` writes an f64: `40`, `40.5`, `0.0000001`, `NaN`,
 * `inf`. */
function display(x) {
  if (Number.isNaN(x)) {
    return 'NaN';
  }
  if (!Number.isFinite(x)) {
    return x > 0 ? 'inf' : '-inf';
  }
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) {
    return `${sign}0`;
  }
  return sign + fixed(...decimal(Math.abs(x)));
}

/** Rust's order of `String`s: by code point (UTF-16 code units differ
 * above U+FFFF). */
function byCodePoint(a, b) {
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < x.length && i < y.length; i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) {
      return d;
    }
  }
  return x.length - y.length;
}

function average(sensor) {
  if (sensor.readings.length === 0) {
    return 0;
  }
  let total = -0; // summed in order, as Rust's `Iterator::sum` does
  for (const value of sensor.readings) {
    total += value;
  }
  return total / sensor.readings.length;
}

// The state of every sensor seen, kept by the instance between invocations:
// id → { readings, alerting }.
const sensors = new Map();

function threshold() {
  return parseF64(get('threshold')) ?? 40;
}

function windowSize() {
  return Math.max(parseUsize(get('window')) ?? 5, 1);
}

/** `sensors/{id}/temperature` → `id`. */
function sensorOf(topic) {
  const levels = topic.split('/');
  return levels.length >= 2 && levels[0] === 'sensors' && levels[1] !== '' ? levels[1] : null;
}

function reading(topic, value) {
  const sensor = sensorOf(topic);
  if (sensor === null) {
    throw new InvalidInput(`${topic}: not sensors/{id}/...`);
  }
  if (value === null) {
    throw new InvalidInput('a reading is a number');
  }
  const limit = threshold();
  const keep = windowSize();
  let state = sensors.get(sensor);
  if (state === undefined) {
    state = { readings: [], alerting: false };
    sensors.set(sensor, state);
  }
  state.readings.push(value);
  while (state.readings.length > keep) {
    state.readings.shift();
  }
  const avg = average(state);
  const crossed = avg > limit && !state.alerting;
  state.alerting = avg > limit;
  if (!crossed) {
    return 'ok';
  }
  const body = `{"average":${jsonNumber(avg)},"sensor":${JSON.stringify(sensor)},"threshold":${jsonNumber(limit)}}`;
  publish(`alerts/${sensor}`, body, { qos: 1, retain: false });
  return `alert ${sensor} ${display(avg)}`;
}

async function summary() {
  const url = get('summary_url');
  if (url === undefined) {
    throw new Error('the summary_url variable is not set');
  }
  const token = get('token');
  if (token === undefined) {
    throw new Error('the token secret is not set');
  }
  const entries = [...sensors.keys()].sort(byCodePoint).map((id) => {
    const s = sensors.get(id);
    return (
      `${JSON.stringify(id)}:{"alerting":${s.alerting},` +
      `"average":${jsonNumber(average(s))},"readings":${s.readings.length}}`
    );
  });
  let response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: `{"sensors":{${entries.join(',')}}}`,
    });
  } catch (e) {
    throw new Error(`posting the summary: ${e?.message ?? e}`);
  }
  if (response.status < 200 || response.status > 299) {
    throw new Error(`the summary endpoint answered ${response.status}`);
  }
  return 'summary sent';
}

function utf8(payload) {
  try {
    return decoder.decode(payload);
  } catch {
    return null;
  }
}

/** Whether serde_json takes what JSON.parse took: no number out of range
 * (`1e400`), no string with a lone surrogate (`"\ud800"`), no nesting
 * deeper than 127. */
function serdeAccepts(value, depth = 0) {
  if (typeof value === 'number') {
    return Number.isFinite(value);
  }
  if (typeof value === 'string') {
    return !SURROGATE.test(value.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''));
  }
  if (value !== null && typeof value === 'object') {
    if (depth >= MAX_DEPTH) {
      return false;
    }
    return Object.entries(value).every(
      ([k, v]) => (Array.isArray(value) || serdeAccepts(k)) && serdeAccepts(v, depth + 1),
    );
  }
  return true;
}

/** The payload as serde_json reads a JSON document, or `undefined` when it
 * is not one. */
function jsonDocument(payload) {
  const text = utf8(payload);
  if (text === null) {
    return undefined;
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return serdeAccepts(value) ? value : undefined;
}

export async function handle(payload, ctx) {
  const fired = trigger(ctx);
  if (fired === null) {
    // Invoked by hand: `{"topic": "sensors/s1/temperature", "value": 41}`
    // is a reading; anything else sends the summary now.
    const doc = jsonDocument(payload);
    if (doc !== null && typeof doc === 'object' && !Array.isArray(doc) && Object.hasOwn(doc, 'topic')) {
      const topic = typeof doc.topic === 'string' ? doc.topic : '';
      return reading(topic, typeof doc.value === 'number' ? doc.value : null);
    }
    return summary();
  }
  if (fired.kind === 'mqtt') {
    return reading(fired.topic, parseF64(utf8(payload)));
  }
  return summary();
}
