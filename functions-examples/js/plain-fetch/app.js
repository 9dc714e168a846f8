// A JavaScript HTTP function written for plain componentize-js (the
// StarlingMonkey fetch event, as jco and other JS toolchains build it), not
// for floe's SDK. Such a component answers only the first request of an
// instance; floe notices and gives it a fresh instance per request.
addEventListener('fetch', (event) =>
  event.respondWith(
    new Response(`hello from plain componentize-js, ${new URL(event.request.url).pathname}\n`, {
      headers: { 'content-type': 'text/plain' },
    }),
  ),
);
