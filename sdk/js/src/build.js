// Builds a floe function written in JavaScript into a WebAssembly component.
//
// 1. esbuild bundles the author's module (and what it imports, npm packages
//    included) behind an entry that adapts floe's exports to it; syntax and
//    import errors come out here, naming file, line and column.
// 2. componentize-js compiles the bundle with the StarlingMonkey engine for
//    the world of the function's kind (`floe:js/http` or `floe:js/event`),
//    with the optional imports the module uses (`-gpu`, `-config`, and for
//    event functions `-sources`: see wit/js.wit).
// 3. A `floe:hooks` custom section lists the hooks the module exports, so
//    floe calls only those.

import { componentize } from '@bytecodealliance/componentize-js';
import * as esbuild from 'esbuild';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const guest = join(here, 'guest');
const wit = resolve(here, '..', 'wit');

/** The hooks a module may export, and their names in `floe:hooks`. */
const HOOKS = { init: 'init', preFreeze: 'pre_freeze', preStop: 'pre_stop' };

/** The event-source interfaces, and the SDK modules that import them. */
const SOURCES = { 'floe:function/trigger': 'floe-sdk/trigger', 'floe:function/mqtt': 'floe-sdk/mqtt' };

/** A build that cannot go on; the message says why (file:line where known). */
export class BuildError extends Error {
  constructor(message) {
    super(message);
    this.name = 'BuildError';
  }
}

// `floe-sdk` always means this SDK's guest module, and `floe:app` the
// author's module; `wasi:` imports are the component's.
function resolver(source) {
  return {
    name: 'floe',
    setup(build) {
      build.onResolve({ filter: /^floe-sdk$/ }, () => ({ path: join(guest, 'floe.js') }));
      build.onResolve({ filter: /^floe-sdk\/gpu$/ }, () => ({ path: join(guest, 'gpu.js') }));
      build.onResolve({ filter: /^floe-sdk\/config$/ }, () => ({ path: join(guest, 'config.js') }));
      build.onResolve({ filter: /^floe-sdk\/trigger$/ }, () => ({ path: join(guest, 'trigger.js') }));
      build.onResolve({ filter: /^floe-sdk\/mqtt$/ }, () => ({ path: join(guest, 'mqtt.js') }));
      build.onResolve({ filter: /^floe:app$/ }, () => ({ path: source }));
      build.onResolve({ filter: /^(wasi:|floe:function\/)/ }, (args) => ({
        path: args.path,
        external: true,
      }));
    },
  };
}

function esbuildOptions(source, entry) {
  return {
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    mainFields: ['module', 'main'],
    conditions: ['workerd', 'worker', 'browser'],
    write: false,
    metafile: true,
    logLevel: 'silent',
    // Data files a function ships, imported as text, bytes or JSON.
    loader: { '.txt': 'text', '.csv': 'text', '.html': 'text', '.bin': 'binary', '.wasm': 'binary' },
    plugins: [resolver(source)],
  };
}

function located(failure) {
  const messages = failure.errors ?? [];
  if (messages.length === 0) {
    return failure.message;
  }
  return messages
    .map((m) =>
      m.location
        ? `${m.location.file}:${m.location.line}:${m.location.column + 1}: error: ${m.text}\n` +
          `    ${m.location.lineText}`
        : `error: ${m.text}`,
    )
    .join('\n');
}

async function bundle(source, entry) {
  try {
    return await esbuild.build(esbuildOptions(source, entry));
  } catch (failure) {
    throw new BuildError(located(failure));
  }
}

/** What the module at `source` exports: its kind and its hooks. */
export async function inspect(source) {
  const result = await bundle(source, source);
  const output = Object.values(result.metafile.outputs)[0];
  const exports = new Set(output?.exports ?? []);
  const http = exports.has('fetch') || exports.has('default');
  const event = exports.has('handle');
  if (http && event) {
    throw new BuildError(
      `${source}: exports both a fetch handler and \`handle\`: a function is either ` +
        'an HTTP function (fetch) or an event function (handle)',
    );
  }
  if (!http && !event) {
    throw new BuildError(
      `${source}: exports no handler: export \`fetch(request)\` (or \`default { fetch }\`) ` +
        'for an HTTP function, or `handle(payload, ctx)` for an event function',
    );
  }
  const hooks = Object.keys(HOOKS).filter((name) => exports.has(name));
  const imported = Object.values(result.metafile.inputs).flatMap((input) =>
    input.imports.map((i) => i.path),
  );
  const imports = (prefix) => imported.some((path) => path.startsWith(prefix));
  // A module that uses floe-sdk/gpu imports floe:function/gpu.
  const gpu = imports('floe:function/gpu');
  // One that uses floe-sdk/config imports wasi:config/store.
  const config = imports('wasi:config/');
  // One that uses floe-sdk/trigger or floe-sdk/mqtt imports both event-source
  // interfaces (one flag, not two: fewer worlds).
  const used = Object.keys(SOURCES).filter((prefix) => imports(prefix));
  const sources = used.length > 0;
  if (http && sources) {
    const names = used.map((prefix) => `${SOURCES[prefix]} (${prefix})`).join(' and ');
    throw new BuildError(
      `${source}: an HTTP function imports ${names}, which only event functions may ` +
        'use (triggers invoke event functions): export `handle(payload, ctx)` rather ' +
        'than a fetch handler',
    );
  }
  return { kind: http ? 'http' : 'event', hooks, gpu, config, sources };
}

/**
 * The world a module of this shape is built for: `floe:js/{kind}`, then
 * `-gpu`, `-config` and `-sources` for the optional imports it uses.
 */
export function worldOf({ kind, gpu = false, config = false, sources = false }) {
  return `floe:js/${kind}${gpu ? '-gpu' : ''}${config ? '-config' : ''}${sources ? '-sources' : ''}`;
}

/** A custom section named `name` holding `text`, to append to a component. */
export function customSection(name, text) {
  const encoder = new TextEncoder();
  const nameBytes = encoder.encode(name);
  const data = encoder.encode(text);
  const payload = [...leb128(nameBytes.length), ...nameBytes, ...data];
  return Uint8Array.from([0, ...leb128(payload.length), ...payload]);
}

function leb128(value) {
  const bytes = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) {
      byte |= 0x80;
    }
    bytes.push(byte);
  } while (value !== 0);
  return bytes;
}

/**
 * Builds `source` into a component at `output`. Returns the kind, the hooks,
 * the size in bytes and the time taken in milliseconds.
 */
export async function build({ source, output, debug = false }) {
  const started = performance.now();
  const app = resolve(source);
  const shape = await inspect(app);
  // An event function that uses event sources gets the entry whose
  // context reads the trigger (`ctx.trigger()`).
  const entry = join(guest, `${shape.kind}${shape.sources ? '-sources' : ''}-entry.js`);
  const bundled = await bundle(app, entry);
  const work = await mkdtemp(join(tmpdir(), 'floe-js-'));
  try {
    const bundlePath = join(work, 'function.js');
    await writeFile(bundlePath, bundled.outputFiles[0].contents);
    let component;
    try {
      ({ component } = await componentize({
        sourcePath: bundlePath,
        witPath: wit,
        worldName: worldOf(shape),
        debugBuild: debug,
      }));
    } catch (error) {
      throw new BuildError(`componentize-js failed: ${error?.message ?? error}`);
    }
    const section = customSection('floe:hooks', shape.hooks.map((h) => HOOKS[h]).join(' '));
    const target = resolve(output);
    await mkdir(dirname(target), { recursive: true });
    const bytes = new Uint8Array(component.length + section.length);
    bytes.set(component, 0);
    bytes.set(section, component.length);
    await writeFile(target, bytes);
    return {
      ...shape,
      output: target,
      size: bytes.length,
      ms: Math.round(performance.now() - started),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
