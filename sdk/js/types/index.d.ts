// Types of the `floe-sdk` module and of the exports floe looks for.

import type { Trigger } from './trigger';

/** Thrown by an event handler for a payload it cannot accept (400). */
export class InvalidInput extends Error {
  constructor(message: string);
}

/** A JSON response (`content-type: application/json` unless set). */
export function json(data: unknown, init?: ResponseInit): Response;

/** What a handler may return, as a Response. */
export function toResponse(value: HandlerResult): Response;

/** What an event handler may return, as bytes. */
export function toBytes(value: EventResult): Uint8Array;

/** An error's words. */
export function describe(error: unknown): string;

/** What an HTTP handler may return: text, bytes, JSON-able data, or nothing (204). */
export type HandlerResult = Response | string | Uint8Array | ArrayBuffer | ArrayBufferView | object | null | undefined;

/** What an event handler may return: bytes, text (UTF-8), JSON-able data, or nothing. */
export type EventResult = Uint8Array | ArrayBuffer | ArrayBufferView | string | object | null | undefined;

/** What floe tells an event handler about one invocation. */
export interface Context {
  /** The invocation's id (the caller's `x-request-id`, or one floe made). */
  readonly requestId: string;
  /** The function's name. */
  readonly function: string;
  /** The version serving the invocation. */
  readonly version: number;
  /** When the invocation must be done, in milliseconds since the Unix epoch. */
  readonly deadlineMs: number;
  /** The instance's memory limit, in bytes. */
  readonly memoryLimit: number;
  /** The `Content-Type` the caller sent, or null. */
  readonly contentType: string | null;
  /** Milliseconds left before floe stops the invocation. */
  remainingMs(): number;
  /**
   * The trigger that started the invocation, or null (see
   * `floe-sdk/trigger`). Throws unless the module imports `floe-sdk/trigger`
   * or `floe-sdk/mqtt`.
   */
  trigger(): Trigger | null;
}

/** An HTTP function: `export async function fetch(request) {...}`. */
export type FetchHandler = (request: Request) => HandlerResult | Promise<HandlerResult>;

/** An event function: `export function handle(payload, ctx) {...}`. */
export type EventHandler = (payload: Uint8Array, ctx: Context) => EventResult | Promise<EventResult>;

/** A lifecycle hook: `init`, `preFreeze` or `preStop`. */
export type Hook = () => void | Promise<void>;
