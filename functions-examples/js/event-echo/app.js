// An event function on binary payloads: answers the payload reversed, byte
// by byte (bytes stay bytes, valid UTF-8 or not). An empty payload is invalid
// input; the payload `fail` makes it fail; `context` answers its context.

import { InvalidInput } from 'floe-sdk';

const decoder = new TextDecoder();

export function handle(payload, ctx) {
  if (payload.length === 0) {
    throw new InvalidInput('empty payload');
  }
  const text = payload.length <= 16 ? decoder.decode(payload) : '';
  if (text === 'fail') {
    throw new Error('asked to fail');
  }
  if (text === 'context') {
    return {
      function: ctx.function,
      version: ctx.version,
      content_type: ctx.contentType,
      remaining_ms_positive: ctx.remainingMs() > 0,
    };
  }
  return payload.slice().reverse();
}
