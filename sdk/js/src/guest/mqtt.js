// `floe-sdk/mqtt`: publishing MQTT messages through the function's durable
// outbox (`floe:function/mqtt`, store-and-forward). Only event functions may
// import it. A module that imports this (or `floe-sdk/trigger`) is built for
// the `-sources` worlds, which import both event-source interfaces; one that
// imports neither imports neither.
//
//   import { publish, PublishError } from 'floe-sdk/mqtt';
//   publish('alerts/s1', 'too hot');                          // QoS 1
//   publish('readings/s1', bytes, { qos: 0, retain: true });
//
// `publish` returns once the message is on disk; floe sends it to the broker
// (the function's `publish` setting, else the broker of its first MQTT
// trigger) as soon as the broker takes it, in order per topic, across
// outages and restarts. Errors are thrown as `PublishError` with a `kind`:
// 'not-configured', 'invalid', 'outbox-full' or 'failed'; nothing was
// stored then.

import * as wit from 'floe:function/mqtt@0.1.0';
import { toBytes } from 'floe-sdk';

/** QoS 0: the broker may drop it (floe still keeps it until it is sent). */
export const AT_MOST_ONCE = 0;
/** QoS 1: floe keeps it until the broker acknowledged it. */
export const AT_LEAST_ONCE = 1;

const WORDS = {
  'not-configured': 'no broker to publish to',
  invalid: 'invalid message',
  'outbox-full': 'outbox full',
  failed: 'publishing failed',
};

/** Why a message was not queued (nothing was stored). */
export class PublishError extends Error {
  constructor(kind, message) {
    super(`${WORDS[kind] ?? kind}: ${message}`);
    this.name = 'PublishError';
    this.kind = kind;
  }
}

function qosOf(qos) {
  if (qos === 0 || qos === 'at-most-once') {
    return 'at-most-once';
  }
  if (qos === 1 || qos === 'at-least-once') {
    return 'at-least-once';
  }
  throw new TypeError(`publish: qos must be 0 or 1, not ${JSON.stringify(qos)}`);
}

/**
 * Queues `payload` for `topic`: bytes as they are, a string as UTF-8,
 * anything else as JSON. Returns once the message is in the outbox.
 */
export function publish(topic, payload, { qos = AT_LEAST_ONCE, retain = false } = {}) {
  if (typeof topic !== 'string') {
    throw new TypeError('publish: the topic must be a string');
  }
  const level = qosOf(qos);
  const bytes = toBytes(payload);
  try {
    wit.publish(topic, bytes, level, Boolean(retain));
  } catch (error) {
    // `result<_, publish-error>`: the error variant comes as the payload.
    const reason = error?.payload;
    if (reason?.tag) {
      throw new PublishError(reason.tag, reason.val);
    }
    throw error;
  }
}
