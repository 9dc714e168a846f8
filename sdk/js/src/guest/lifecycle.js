// floe's lifecycle hooks, from the author's `init`, `preFreeze` and
// `preStop` exports. The build lists the ones the module has in the
// component's `floe:hooks` section, so floe never calls the no-ops here.

import { describe } from 'floe-sdk';

export function lifecycleOf(app) {
  return {
    async init() {
      if (typeof app.init !== 'function') {
        return;
      }
      try {
        await app.init();
      } catch (error) {
        // `result<_, string>`: what is thrown is the error's message.
        throw describe(error);
      }
    },
    async preFreeze() {
      await runHook('preFreeze', app.preFreeze);
    },
    async preStop() {
      await runHook('preStop', app.preStop);
    },
  };
}

// A hook that throws is reported and the instance carries on: floe counts a
// hook that traps against the instance, and an exception is not worth that.
async function runHook(name, hook) {
  if (typeof hook !== 'function') {
    return;
  }
  try {
    await hook();
  } catch (error) {
    console.error(`floe: ${name} threw ${describe(error)}`);
  }
}
