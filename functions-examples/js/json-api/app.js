// A JSON API with routing, over an in-memory notes store (one per instance):
//
//   GET    /notes       200, the notes
//   POST   /notes       201, the new note ({"text": "..."}; 400 otherwise)
//   GET    /notes/{id}  200, or 404
//   DELETE /notes/{id}  204, or 404
//
// Another method on these paths answers 405 with `allow`; any other path 404.

import { json } from 'floe-sdk';

const notes = new Map();
let nextId = 1;

const routes = [
  {
    pattern: /^\/notes\/?$/,
    methods: {
      GET: () => json([...notes.values()]),
      POST: async (request) => {
        let body;
        try {
          body = await request.json();
        } catch {
          return json({ error: 'the body is not JSON' }, { status: 400 });
        }
        if (typeof body?.text !== 'string') {
          return json({ error: '"text" must be a string' }, { status: 400 });
        }
        const note = { id: nextId++, text: body.text };
        notes.set(note.id, note);
        return json(note, { status: 201 });
      },
    },
  },
  {
    pattern: /^\/notes\/(\d+)$/,
    methods: {
      GET: (_request, id) =>
        notes.has(id) ? json(notes.get(id)) : json({ error: 'not found' }, { status: 404 }),
      DELETE: (_request, id) =>
        notes.delete(id)
          ? new Response(null, { status: 204 })
          : json({ error: 'not found' }, { status: 404 }),
    },
  },
];

export async function fetch(request) {
  const { pathname } = new URL(request.url);
  for (const route of routes) {
    const match = route.pattern.exec(pathname);
    if (!match) {
      continue;
    }
    const handler = route.methods[request.method];
    if (!handler) {
      return json(
        { error: `${request.method} is not allowed here` },
        { status: 405, headers: { allow: Object.keys(route.methods).join(', ') } },
      );
    }
    return handler(request, match[1] === undefined ? undefined : Number(match[1]));
  }
  return json({ error: 'no route' }, { status: 404 });
}
