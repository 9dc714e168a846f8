// Hello world: an HTTP function in JavaScript. The handler takes a web
// Request and returns a Response, like a fetch handler in a service worker.

export async function fetch(request) {
  const url = new URL(request.url);
  return new Response(`hello from javascript, path=${url.pathname}${url.search}\n`, {
    headers: { 'content-type': 'text/plain; charset=utf-8' },
  });
}
