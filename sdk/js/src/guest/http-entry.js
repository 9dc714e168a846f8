// The component's exports for an HTTP function (`floe:app` is the author's
// module).
import * as app from 'floe:app';
import { httpHandlerOf } from './http.js';
import { lifecycleOf } from './lifecycle.js';

export const incomingHandler = httpHandlerOf(app);
export const lifecycle = lifecycleOf(app);
