// {{name}}: an HTTP function. It takes a web Request and returns a Response.

export async function fetch(request) {
  const url = new URL(request.url);
  return new Response(`hello from {{name}}, path=${url.pathname}\n`, {
    headers: { 'content-type': 'text/plain; charset=utf-8' },
  });
}
