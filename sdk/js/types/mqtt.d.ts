// Types of `floe-sdk/mqtt`: publishing MQTT messages through the function's
// durable outbox (event functions only; importing it builds the function for
// the `-sources` worlds).

/** QoS 0: the broker may drop it (floe still keeps it until it is sent). */
export const AT_MOST_ONCE: 0;
/** QoS 1: floe keeps it until the broker acknowledged it. */
export const AT_LEAST_ONCE: 1;

/** The quality of service asked of the broker. */
export type Qos = 0 | 1 | 'at-most-once' | 'at-least-once';

/** Why a message was not queued. */
export type PublishErrorKind = 'not-configured' | 'invalid' | 'outbox-full' | 'failed';

/** Thrown by `publish` when the message was not queued (nothing was stored). */
export class PublishError extends Error {
  /**
   * `not-configured`: no `publish` setting and no MQTT trigger;
   * `invalid`: an empty or wildcard topic, or a payload over the server's
   * limit; `outbox-full`: the broker has been away (try later, or fail the
   * invocation so that it is retried); `failed`: storing it failed.
   */
  readonly kind: PublishErrorKind;
  constructor(kind: PublishErrorKind, message: string);
}

export interface PublishOptions {
  /** 1 (at least once) unless given. */
  qos?: Qos;
  /** Ask the broker to retain it (false unless given). */
  retain?: boolean;
}

/**
 * Queues `payload` for `topic` (bytes as they are, a string as UTF-8,
 * anything else as JSON); returns once it is on disk, before it reached the
 * broker. Throws `PublishError`.
 */
export function publish(
  topic: string,
  payload: Uint8Array | ArrayBuffer | ArrayBufferView | string | object,
  options?: PublishOptions,
): void;
