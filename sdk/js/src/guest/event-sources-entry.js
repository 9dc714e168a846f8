// The component's exports for an event function that uses event sources
// (`floe-sdk/trigger` or `floe-sdk/mqtt`): as `event-entry.js`, and the
// context's `trigger()` reads the invocation's trigger.
import * as app from 'floe:app';
import { eventHandlerOf } from './event.js';
import { lifecycleOf } from './lifecycle.js';
import { trigger } from './trigger.js';

export const event = eventHandlerOf(app, { trigger });
export const lifecycle = lifecycleOf(app);
