// The `floe-sdk` module a JavaScript function imports (inside the component).
//
// A function is an ES module. What it exports decides what it is:
//
//   // HTTP function: a fetch-style handler (or `export default { fetch }`).
//   export async function fetch(request) {
//     return new Response('hello\n');
//   }
//
//   // Event function: bytes in, bytes out.
//   export function handle(payload, ctx) {
//     return payload;
//   }
//
//   // Optional lifecycle hooks.
//   export function init() {}       // once, before any request (snapshotted at deploy)
//   export function preFreeze() {}  // the instance is about to be parked
//   export function preStop() {}    // the instance is about to be stopped
//
// This module holds what handlers use beside the web APIs the engine has
// (Request, Response, Headers, URL, fetch, TextEncoder, crypto, timers).

/**
 * Thrown by an event handler for a payload it cannot accept: the caller gets
 * 400 with the message, and an asynchronous invocation is not retried.
 */
export class InvalidInput extends Error {
  constructor(message) {
    super(message);
    this.name = 'InvalidInput';
  }
}

/** A JSON response: `json({ ok: true })`, `json(data, { status: 201 })`. */
export function json(data, init = {}) {
  const headers = new Headers(init.headers ?? {});
  if (!headers.has('content-type')) {
    headers.set('content-type', 'application/json');
  }
  return new Response(JSON.stringify(data), { ...init, headers });
}

const encoder = new TextEncoder();

/**
 * What a handler may return, as a Response: a Response as it is; a string
 * as text; bytes as an octet stream; `undefined` as 204; anything else as
 * JSON.
 */
export function toResponse(value) {
  if (value instanceof Response) {
    return value;
  }
  if (value === undefined || value === null) {
    return new Response(null, { status: 204 });
  }
  if (typeof value === 'string') {
    return new Response(value, {
      headers: { 'content-type': 'text/plain; charset=utf-8' },
    });
  }
  const bytes = asBytes(value);
  if (bytes) {
    return new Response(bytes, {
      headers: { 'content-type': 'application/octet-stream' },
    });
  }
  return json(value);
}

/**
 * What an event handler may return, as bytes: bytes as they are, a string as
 * UTF-8, `undefined` as nothing, anything else as JSON.
 */
export function toBytes(value) {
  if (value === undefined || value === null) {
    return new Uint8Array(0);
  }
  if (typeof value === 'string') {
    return encoder.encode(value);
  }
  return asBytes(value) ?? encoder.encode(JSON.stringify(value));
}

function asBytes(value) {
  if (value instanceof Uint8Array) {
    return value;
  }
  if (value instanceof ArrayBuffer) {
    return new Uint8Array(value);
  }
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  return null;
}

/** An error's words, for floe's logs and error answers. */
export function describe(error) {
  if (error instanceof Error) {
    return `${error.name}: ${error.message}`;
  }
  return String(error);
}
