// Types of `floe-sdk/trigger`: what started an invocation (event functions
// only; importing it builds the function for the `-sources` worlds).

import type { Context } from './index';

/** A cron schedule fired. */
export interface CronRun {
  readonly kind: 'cron';
  /** The trigger's name (unique within the function). */
  readonly name: string;
  /** The schedule, as configured (a cron expression). */
  readonly schedule: string;
  /** The time zone the schedule is read in (an IANA name, or `UTC`). */
  readonly timeZone: string;
  /**
   * When the run was due, in milliseconds since the Unix epoch (after
   * downtime with `missed = "once"`, the last time missed).
   */
  readonly scheduledMs: number;
}

/**
 * An MQTT message arrived on a subscribed topic. Its payload is the event's
 * payload; its MQTT 5 content type, if any, the context's `contentType`.
 */
export interface MqttMessage {
  readonly kind: 'mqtt';
  /** The trigger's name (unique within the function). */
  readonly name: string;
  /** The topic it was published to (never a wildcard). */
  readonly topic: string;
  /**
   * The QoS it was delivered with: 0, or 1 (at least once: it may arrive
   * twice; deduplicate on the context's `requestId` or on the data).
   */
  readonly qos: 0 | 1;
  /** The broker's retain flag. */
  readonly retain: boolean;
  /** Its MQTT 5 user properties, in order, as `[key, value]` pairs. */
  readonly userProperties: Array<[string, string]>;
}

/** What started an invocation. */
export type Trigger = CronRun | MqttMessage;

/**
 * The trigger behind the invocation of `ctx` (the event context, or its
 * `requestId`): `null` when it came over HTTP or the API.
 */
export function trigger(ctx: Context | string): Trigger | null;
