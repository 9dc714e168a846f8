#!/usr/bin/env node
// `floe-js build app.js -o app.wasm`: builds a floe function written in
// JavaScript into a WebAssembly component (see build.js).

import { parseArgs } from 'node:util';
import { basename, extname } from 'node:path';
import { BuildError, build } from './build.js';

const USAGE = `usage: floe-js build SOURCE [-o OUTPUT] [--debug]

Builds the JavaScript module SOURCE into a floe function component.
What it exports decides its kind: fetch(request) (or default { fetch }) for
an HTTP function, handle(payload, ctx) for an event function; init,
preFreeze and preStop are its optional lifecycle hooks.

  -o, --output FILE  the component to write (default: SOURCE with .wasm)
  --debug            use the engine's debug build (names in stack traces)
`;

async function main(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        output: { type: 'string', short: 'o' },
        debug: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    process.stderr.write(`floe-js: ${error.message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const [command, source, ...rest] = positionals;
  if (command !== 'build' || !source || rest.length > 0) {
    process.stderr.write(USAGE);
    return 2;
  }
  const output = values.output ?? `${basename(source, extname(source))}.wasm`;
  try {
    const built = await build({ source, output, debug: values.debug });
    const hooks = built.hooks.length > 0 ? built.hooks.join(', ') : 'none';
    process.stderr.write(
      `floe-js: built ${built.output} (${built.kind} function, hooks: ${hooks}, ` +
        `${(built.size / 1e6).toFixed(1)} MB, ${(built.ms / 1000).toFixed(1)} s)\n`,
    );
    return 0;
  } catch (error) {
    if (error instanceof BuildError) {
      process.stderr.write(`${error.message}\nfloe-js: build failed\n`);
      return 1;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv.slice(2));
