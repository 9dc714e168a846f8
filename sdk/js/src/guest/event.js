// Adapts `floe:function/event` to the author's `handle(payload, ctx)`.

import { InvalidInput, describe, toBytes } from 'floe-sdk';

// `sources` holds what the event-source modules give the context: `trigger`
// (from `floe-sdk/trigger`) when the module is built for the `-sources`
// worlds.
export function eventHandlerOf(app, sources = {}) {
  const handle = app.handle;
  return {
    async handle(context, payload) {
      const ctx = toContext(context, sources);
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

function toContext(context, sources) {
  const deadlineMs = Number(context.deadlineMs);
  const requestId = context.requestId;
  const readTrigger = sources.trigger;
  return Object.freeze({
    requestId,
    function: context.function,
    version: Number(context.version),
    deadlineMs,
    memoryLimit: Number(context.memoryLimit),
    contentType: context.contentType ?? null,
    /** Milliseconds left before floe stops the invocation. */
    remainingMs() {
      return Math.max(0, deadlineMs - Date.now());
    },
    /**
     * The trigger that started the invocation (see `floe-sdk/trigger`), or
     * null. Needs the module to import `floe-sdk/trigger` or `floe-sdk/mqtt`.
     */
    trigger() {
      if (!readTrigger) {
        throw new Error(
          'ctx.trigger() needs the module to import floe-sdk/trigger (or floe-sdk/mqtt): ' +
            "add `import { trigger } from 'floe-sdk/trigger'`",
        );
      }
      return readTrigger(requestId);
    },
  });
}
