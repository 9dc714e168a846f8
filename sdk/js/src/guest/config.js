// `floe-sdk/config`: the function's variables and secrets, read through
// `wasi:config/store`. A module that imports this is built for the
// `-config` worlds, so its component imports the interface; one that does
// not, does not.
//
//   import { get, all } from 'floe-sdk/config';
//   const threshold = Number(get('threshold') ?? '40');
//   const token = get('api_token');          // undefined when not set
//
// Variables are set with `floe config NAME --var KEY=VALUE`, secrets with
// `--secret KEY=@FILE`. Changing them stops the function's instances, so a
// value read once (at module level or in `init`) stays right. While `init`
// runs for the deploy-time snapshot the store is empty, and reading it makes
// floe run `init` in every instance instead.

import * as store from 'wasi:config/store@0.2.0-rc.1';

/** The variable or secret `key`, or `undefined` when there is none. */
export function get(key) {
  const value = store.get(key);
  return value === null ? undefined : value;
}

/** Every variable and secret, as an object by key. */
export function all() {
  return Object.fromEntries(store.getAll());
}
