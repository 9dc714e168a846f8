// {{name}}: an event function. Bytes in (a Uint8Array), bytes out.

import { InvalidInput } from 'floe-sdk';

export function handle(payload, ctx) {
  if (payload.length === 0) {
    throw new InvalidInput('empty payload');
  }
  return `${ctx.function} got ${payload.length} bytes\n`;
}
