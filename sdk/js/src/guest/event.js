// Adapts `floe:function/event` to the author's `handle(payload, ctx)`.

import { InvalidInput, describe, toBytes } from 'floe-sdk';

export function eventHandlerOf(app) {
  const handle = app.handle;
  return {
    async handle(context, payload) {
      const ctx = toContext(context);
      try {
        return toBytes(await handle(payload, ctx));
      } catch (error) {
        // `result<list<u8>, error>`: what is thrown is the error variant.
        if (error instanceof InvalidInput) {
          throw { tag: 'invalid-input', val: error.message };
        }
        console.error(`floe: handle threw ${error instanceof Error ? error.stack : error}`);
        throw { tag: 'failed', val: describe(error) };
      }
    },
  };
}

function toContext(context) {
  const deadlineMs = Number(context.deadlineMs);
  return Object.freeze({
    requestId: context.requestId,
    function: context.function,
    version: Number(context.version),
    deadlineMs,
    memoryLimit: Number(context.memoryLimit),
    contentType: context.contentType ?? null,
    /** Milliseconds left before floe stops the invocation. */
    remainingMs() {
      return Math.max(0, deadlineMs - Date.now());
    },
  });
}
