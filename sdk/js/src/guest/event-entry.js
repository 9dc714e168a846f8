// The component's exports for an event function (`floe:app` is the author's
// module).
import * as app from 'floe:app';
import { eventHandlerOf } from './event.js';
import { lifecycleOf } from './lifecycle.js';

export const event = eventHandlerOf(app);
export const lifecycle = lifecycleOf(app);
