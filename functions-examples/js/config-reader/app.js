// Reads the function's variables and secrets (`floe config NAME --var
// greeting=hi --secret api_token=@token.txt`), through floe-sdk/config.
//
// - `GET /` answers `{greeting} from config-reader`; `init` read the
//   `greeting` variable once (so floe runs `init` per instance, not in a
//   snapshot);
// - `GET /var/KEY` answers the variable KEY (404 without it);
// - `GET /secret/KEY?expect=VALUE` answers whether the secret KEY equals
//   VALUE, and its length: a function should not echo its secrets;
// - `GET /keys` answers every name, one a line.

import { get, all } from 'floe-sdk/config';

let greeting = 'hello';

export function init() {
  greeting = get('greeting') ?? 'hello';
}

export function preStop() {
  console.log(`config-reader pre-stop greeting=${greeting}`);
}

function text(status, body) {
  return new Response(body, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } });
}

export async function fetch(request) {
  const url = new URL(request.url);
  const path = url.pathname;
  if (path === '/') {
    return text(200, `${greeting} from config-reader\n`);
  }
  if (path === '/keys') {
    return text(200, Object.keys(all()).sort().join('\n') + '\n');
  }
  if (path.startsWith('/var/')) {
    const key = path.slice('/var/'.length);
    const value = get(key);
    return value === undefined ? text(404, `no variable ${key}\n`) : text(200, `${value}\n`);
  }
  if (path.startsWith('/secret/')) {
    const key = path.slice('/secret/'.length);
    const value = get(key);
    if (value === undefined) {
      return text(404, `no secret ${key}\n`);
    }
    const expect = url.searchParams.get('expect') ?? '';
    return text(200, `match=${value === expect} len=${value.length}\n`);
  }
  return text(404, 'no such route\n');
}
