// `floe-sdk/trigger`: what started an invocation, a cron schedule or an MQTT
// message, through `floe:function/trigger`. Only event functions may import
// it. A module that imports this (or `floe-sdk/mqtt`) is built for the
// `-sources` worlds, which import both event-source interfaces; one that
// imports neither imports neither.
//
//   import { trigger } from 'floe-sdk/trigger';
//   export function handle(payload, ctx) {
//     const fired = trigger(ctx);       // or ctx.trigger()
//     if (fired?.kind === 'mqtt') { /* fired.topic, fired.qos, ... */ }
//     if (fired?.kind === 'cron') { /* fired.scheduledMs, ... */ }
//   }
//
// `null` when the invocation came over HTTP or the API. An MQTT message is
// `{ kind: 'mqtt', name, topic, qos, retain, userProperties }` (the payload
// is the event's payload, its MQTT 5 content type the context's
// `contentType`); a cron run is `{ kind: 'cron', name, schedule, timeZone,
// scheduledMs }`.

import * as wit from 'floe:function/trigger@0.1.0';

/**
 * The trigger behind an invocation: `ctx` is the event context (or its
 * `requestId`). `null` when no trigger started it.
 */
export function trigger(ctx) {
  const requestId = typeof ctx === 'string' ? ctx : ctx?.requestId;
  if (typeof requestId !== 'string') {
    throw new TypeError('trigger(ctx): pass the event context (or its requestId)');
  }
  return fromWit(wit.get(requestId));
}

function fromWit(fired) {
  // An absent option may come as `undefined` or `null`.
  if (fired == null) {
    return null;
  }
  const { tag, val } = fired;
  if (tag === 'cron') {
    return Object.freeze({
      kind: 'cron',
      name: val.name,
      schedule: val.schedule,
      timeZone: val.timeZone,
      scheduledMs: Number(val.scheduledMs),
    });
  }
  if (tag === 'mqtt') {
    return Object.freeze({
      kind: 'mqtt',
      name: val.name,
      topic: val.topic,
      qos: Number(val.qos),
      retain: Boolean(val.retain),
      userProperties: val.userProperties.map(([key, value]) => [key, value]),
    });
  }
  // A kind this SDK does not know yet (a newer server).
  return Object.freeze({ kind: String(tag) });
}
