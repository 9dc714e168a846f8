// Adapts `wasi:http/incoming-handler` to the author's fetch-style handler.
//
// The handler is called with a web `Request` and its answer is written to
// the response as it streams. Exporting `incomingHandler` (rather than using
// the engine's `fetch` event) lets one instance serve request after request.

import {
  Fields,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from 'wasi:http/types@0.2.10';
import { describe, toResponse } from 'floe-sdk';

// The most one blocking write may take.
const CHUNK = 4096;
// Response headers the host sets itself and refuses from a guest.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'host',
]);
const encoder = new TextEncoder();

export function httpHandlerOf(app) {
  const fetch = handlerOf(app);
  return {
    async handle(incoming, outparam) {
      let response;
      try {
        response = toResponse(await fetch(toRequest(incoming)));
      } catch (error) {
        console.error(`floe: fetch threw ${error instanceof Error ? error.stack : error}`);
        response = new Response(`the function threw: ${describe(error)}\n`, {
          status: 500,
          headers: { 'content-type': 'text/plain; charset=utf-8' },
        });
      }
      await send(response, outparam);
    },
  };
}

function handlerOf(app) {
  if (typeof app.fetch === 'function') {
    return app.fetch;
  }
  const exported = app.default;
  if (exported && typeof exported.fetch === 'function') {
    return (request) => exported.fetch(request);
  }
  if (typeof exported === 'function') {
    return exported;
  }
  return () => {
    throw new Error('the module exports no fetch handler');
  };
}

function methodOf(incoming) {
  const method = incoming.method();
  return method.tag === 'other' ? method.val : method.tag.toUpperCase();
}

function toRequest(incoming) {
  const method = methodOf(incoming);
  const fields = incoming.headers();
  const headers = new Headers();
  const decoder = new TextDecoder('latin1');
  for (const [name, value] of fields.entries()) {
    headers.append(name, decoder.decode(value));
  }
  const scheme = incoming.scheme();
  const protocol = scheme?.tag === 'HTTPS' ? 'https' : 'http';
  const authority = incoming.authority() || headers.get('host') || 'localhost';
  const url = `${protocol}://${authority}${incoming.pathWithQuery() ?? '/'}`;
  const body = readBody(incoming);
  const init = { method, headers };
  if (body.length > 0 && method !== 'GET' && method !== 'HEAD') {
    init.body = body;
  }
  return new Request(url, init);
}

function readBody(incoming) {
  const body = incoming.consume();
  const stream = body.stream();
  const parts = [];
  let length = 0;
  for (;;) {
    let part;
    try {
      part = stream.blockingRead(65536n);
    } catch (error) {
      if (error?.payload?.tag === 'closed') {
        break;
      }
      throw error;
    }
    parts.push(part);
    length += part.length;
  }
  stream[Symbol.dispose]();
  body[Symbol.dispose]();
  if (parts.length === 1) {
    return parts[0];
  }
  const all = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}

async function send(response, outparam) {
  const entries = [];
  for (const [name, value] of response.headers) {
    if (!HOP_BY_HOP.has(name)) {
      entries.push([name, encoder.encode(value)]);
    }
  }
  let fields;
  try {
    fields = Fields.fromList(entries);
  } catch (error) {
    // A header the host refuses (an invalid name or value): say so rather
    // than trap, which would cost the instance.
    console.error(`floe: the response has a header the host refuses: ${describe(error)}`);
    return send(
      new Response('the function answered with an invalid header\n', { status: 500 }),
      outparam,
    );
  }
  const outgoing = new OutgoingResponse(fields);
  outgoing.setStatusCode(response.status);
  const body = outgoing.body();
  ResponseOutparam.set(outparam, { tag: 'ok', val: outgoing });
  const stream = body.write();
  try {
    if (response.body) {
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          break;
        }
        const bytes = typeof value === 'string' ? encoder.encode(value) : value;
        for (let at = 0; at < bytes.length; at += CHUNK) {
          stream.blockingWriteAndFlush(bytes.subarray(at, at + CHUNK));
        }
      }
    }
  } finally {
    stream[Symbol.dispose]();
  }
  OutgoingBody.finish(body, undefined);
}
